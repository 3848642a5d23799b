"""The `quittance` command."""

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from quittance.config import Settings
from quittance.db.migrate import upgrade
from quittance.db.uow import Database
from quittance.runtime import tune_garbage_collector

app = typer.Typer(help="Quittance: a self-hosted payment-invoice server.", no_args_is_help=True)
merchant_app = typer.Typer(help="Manage merchants.", no_args_is_help=True)
key_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
rates_app = typer.Typer(help="Manage exchange rates.", no_args_is_help=True)
app.add_typer(merchant_app, name="merchant")
app.add_typer(key_app, name="key")
app.add_typer(rates_app, name="rates")
console = Console(stderr=True)


def _settings() -> Settings:
    """Read the settings, or stop with a sentence saying what to set."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            message = str(error["msg"]).removeprefix("Value error, ")
            console.print(f"[red]configuration: {field}: {message}[/red]")
        console.print(
            "Set the QUITTANCE_* variables above; for a local try-out, "
            "QUITTANCE_ENV=development (which `make run` sets)."
        )
        raise typer.Exit(2) from None


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = _settings()
    upgrade(settings.database_url)
    console.print(f"[green]migrated[/green] {_safe_url(settings.database_url)}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    worker: Annotated[bool, typer.Option(help="Run the background worker in-process")] = True,
) -> None:
    """Migrate, then serve the API (and run the worker in the same process)."""
    import uvicorn

    from quittance.app import create_app
    from quittance.jobs.worker import Worker
    from quittance.logging_setup import configure

    settings = _settings()
    configure(settings.log_level)
    upgrade(settings.database_url)
    db = Database(settings.database_url)
    background = None
    if worker and settings.embedded_worker:
        background = Worker(db, settings)
        background.start_thread()
    application = create_app(settings, db)
    tune_garbage_collector()
    try:
        uvicorn.run(
            application,
            host=host,
            port=port,
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=10,
        )
    finally:
        if background is not None:
            background.stop()
        db.dispose()


@app.command("worker")
def run_worker() -> None:
    """Run the background worker alone (for scale-out; any number may run)."""
    from quittance.jobs.worker import Worker
    from quittance.logging_setup import configure

    settings = _settings()
    configure(settings.log_level)
    db = Database(settings.database_url, pool_size=4)
    background = Worker(db, settings)
    tune_garbage_collector()
    signal.signal(signal.SIGTERM, lambda *_: background.stop())
    signal.signal(signal.SIGINT, lambda *_: background.stop())
    background.run()
    db.dispose()


@merchant_app.command("create")
def merchant_create(name: Annotated[str, typer.Option(help="The merchant's name")]) -> None:
    """Create a merchant; its id is the last line printed."""
    from quittance.merchant.service import create_merchant

    db = Database(_settings().database_url, pool_size=1)
    with db.write() as session:
        merchant = create_merchant(session, name)
    console.print(f"created merchant [bold]{merchant.name}[/bold]")
    print(merchant.id)


@key_app.command("create")
def key_create(
    merchant: Annotated[str, typer.Option(help="The merchant's id (mer_…)")],
    mode: Annotated[str, typer.Option(help="test or live")] = "test",
    publishable: Annotated[bool, typer.Option(help="A publishable key")] = False,
) -> None:
    """Create an API key; the key is the last line printed, and is shown only this once."""
    from quittance.domain.errors import QuittanceError
    from quittance.merchant.service import create_api_key

    if mode not in ("test", "live"):
        console.print("[red]--mode must be test or live[/red]")
        raise typer.Exit(2)
    db = Database(_settings().database_url, pool_size=1)
    try:
        with db.write() as session:
            _, plain = create_api_key(
                session, merchant, livemode=mode == "live", publishable=publishable
            )
    except QuittanceError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    console.print(f"created {mode} key for {merchant}; it is shown only this once:")
    print(plain)


@rates_app.command("import")
def rates_import(
    file: Annotated[Path, typer.Argument(help="A CSV file: a header base,quote,rate, then rows")],
    merchant: Annotated[str, typer.Option(help="The merchant's id (mer_…)")],
    mode: Annotated[str, typer.Option(help="test or live")] = "test",
) -> None:
    """Import exchange rates from a CSV file, all in one transaction or none.

    Each row adds a rate (one base unit is worth `rate` quote units); the newest of a pair
    applies. A bad line stops the import with its line number, and nothing is imported.
    """
    from quittance.domain.errors import QuittanceError
    from quittance.merchant.service import get_merchant
    from quittance.pricing.service import import_rates

    if mode not in ("test", "live"):
        console.print("[red]--mode must be test or live[/red]")
        raise typer.Exit(2)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        console.print(f"[red]cannot read {file}: {exc}[/red]")
        raise typer.Exit(2) from None
    db = Database(_settings().database_url, pool_size=1)
    try:
        with db.write() as session:
            get_merchant(session, merchant)
            count = import_rates(session, merchant, mode == "live", text)
    except QuittanceError as exc:
        console.print(f"[red]{file}: {exc.message} Nothing was imported.[/red]")
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    console.print(f"imported {count} exchange rate(s) for {merchant} ({mode})")
    print(count)


@app.command()
def demo() -> None:
    """Create the demo merchant (once) and print a new test key with a first API call."""
    from quittance.merchant.service import DEMO_NAME, create_api_key, create_merchant, demo_merchant

    settings = _settings()
    upgrade(settings.database_url)
    db = Database(settings.database_url, pool_size=1)
    with db.write() as session:
        merchant = demo_merchant(session) or create_merchant(session, DEMO_NAME, is_demo=True)
        _, plain = create_api_key(session, merchant.id, livemode=False)
    base = settings.public_base_url
    console.print(f"demo merchant [bold]{merchant.name}[/bold] ({merchant.id})")
    console.print("your first call:")
    print(
        f"curl -s {base}/v1/invoices -H 'Authorization: Bearer {plain}' "
        "-H 'Content-Type: application/json' "
        '-d \'{"amount": 1999, "currency": "EUR", "reference": "order-1"}\''
    )
    print(f"test key: {plain}")
    print(plain)


@app.command()
def verify() -> None:
    """Check every ledger invariant and print a reconciliation.

    Exits 0 when the books hold, 1 on any violation, 2 when the check itself could not run.
    """
    from rich.table import Table

    from quittance.ledger.verify import verify as check

    db = Database(_settings().database_url, pool_size=1)
    try:
        with db.read() as session:
            report = check(session)
    except Exception as exc:  # a check that cannot run is not a violation
        console.print(f"[red]verify could not run: {exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        db.dispose()
    out = Console(width=160)
    table = Table(title="Reconciliation (minor units)")
    # The exchange column only appears when some merchant's money was converted.
    exchanged = any(row.exchange for row in report.reconciliation)
    columns = ["merchant", "mode", "currency", "received", "refunded", "commission", "net"]
    for column in [*columns, "exchange"] if exchanged else columns:
        table.add_column(column, justify="right" if column not in ("merchant", "mode") else "left")
    for row in report.reconciliation:
        money = (row.received, row.refunded, row.commission, row.net)
        cells = [row.merchant_id, "live" if row.livemode else "test", row.currency]
        cells += [str(amount) for amount in money]
        table.add_row(*cells, *([str(row.exchange)] if exchanged else []))
    out.print(table)
    if report.ok:
        out.print("[green]ledger verified: no violation[/green]")
        return
    out.print(f"[red]{len(report.violations)} violation(s):[/red]")
    for violation in report.violations:
        # Plain print: one line each, never wrapped, so the ids can be searched for.
        print(f"{violation.rule}: {violation.subject}: {violation.message}")
    raise typer.Exit(1)


@app.command()
def statuses() -> None:
    """Print the invoice status document (the source of docs/invoice-statuses.md)."""
    from quittance.docs import status_document

    sys.stdout.write(status_document())


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    app()
