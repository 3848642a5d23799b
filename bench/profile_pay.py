"""Where a lifecycle's units of work spend their CPU, in-process, without HTTP.

Creates invoices and pays them with the succeeding sandbox card by calling the same service
functions the routes run: the create unit, the pay's first unit (the attempt), the provider
call and the pay's second unit (the answer), each unit alone in its own `Database.write()`
with held-back inserts, as a batch of one. Prints the calling thread's CPU time per step (mean
and median, microseconds) after a warm-up; `--cprofile SORT` profiles the measured
lifecycles too. Each unit pays its own commit here, which group commit shares in the server.
As in the server, the attempt starts from the invoice its create kept, and the answer from
the rows the attempt wrote (PostgreSQL: `invoice/kept.py`, `payment.service.record_call`).

    .venv/bin/python bench/profile_pay.py --database sqlite --count 1000
    .venv/bin/python bench/profile_pay.py --database postgresql --cprofile tottime
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from invoices import DEFAULT_PG_ADMIN_URL, postgres_database

CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}


@contextlib.contextmanager
def database_url(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'quittance.db'}"
        return
    admin = os.environ.get("QUITTANCE_BENCH_POSTGRES_URL", DEFAULT_PG_ADMIN_URL)
    with postgres_database(admin) as database:
        if database is None:
            raise SystemExit("PostgreSQL is not reachable")
        yield database.url


def lifecycle_steps(url: str, workdir: Path) -> Callable[[dict[str, list[float]]], None]:
    """Migrate, create a merchant, and return one timed lifecycle."""
    from quittance.auth.dependencies import Caller
    from quittance.config import Settings
    from quittance.db.migrate import upgrade
    from quittance.db.rows import defer_writes, flush_deferred
    from quittance.db.uow import Database
    from quittance.invoice import kept as kept_invoices
    from quittance.invoice import service as invoices
    from quittance.invoice.schemas import InvoiceCreate, render_invoice
    from quittance.merchant.service import create_merchant
    from quittance.payment import service as payments
    from quittance.payment.schemas import PayRequest, render_payment

    upgrade(url)
    settings = Settings(
        database_url=url, base_url="http://127.0.0.1", env="test", embedded_worker=False,
        sandbox_path=str(workdir / "sandbox.db"),
    )  # fmt: skip
    db = Database(url)
    with db.write() as session:
        merchant = create_merchant(session, "Profile Shop")
    caller = Caller(merchant.id, False, "key_profile", False)
    invoice = InvoiceCreate.model_validate({"amount": 1999, "currency": "EUR"})
    pay = PayRequest.model_validate({"payment_method": {"type": "card", "card": CARD}})
    base_url = settings.public_base_url

    def unit(work: Callable[[Any], Any]) -> Any:
        with db.write() as session:
            defer_writes(session)
            result = work(session)
            flush_deferred(session, commit=True)
        return result

    def one(times: dict[str, list[float]]) -> None:
        started = time.thread_time()
        document = unit(lambda s: invoices.create_invoice(s, caller, invoice, base_url))
        created = time.thread_time()
        kept = kept_invoices.take(caller.merchant_id, caller.livemode, document["id"])
        attempt = unit(
            lambda s: payments.start_attempt(s, caller, document["id"], pay, settings, kept=kept)
        )
        attempted = time.thread_time()
        call = payments.call_provider(attempt, settings)
        called = time.thread_time()
        recorded = unit(
            lambda s: payments.record_call(s, attempt, call, settings, kept=attempt.rows)
        )
        answer = render_payment(recorded.payment)
        answer["invoice"] = recorded.invoice_document or render_invoice(recorded.invoice, base_url)
        done = time.thread_time()
        if answer["status"] != "succeeded":
            raise SystemExit(f"the payment is {answer['status']}, not succeeded")
        for step, seconds in (
            ("create", created - started),
            ("attempt", attempted - created),
            ("provider", called - attempted),
            ("answer", done - called),
        ):
            times.setdefault(step, []).append(seconds)  # fmt: skip

    return one


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--count", type=int, default=1000, help="measured lifecycles")
    parser.add_argument("--warmup", type=int, default=100, help="lifecycles thrown away first")
    parser.add_argument("--cprofile", metavar="SORT", help="profile, sorted by SORT (tottime…)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="quittance-profile-") as tmp:
        workdir = Path(tmp)
        with database_url(options.database, workdir) as url:
            one = lifecycle_steps(url, workdir)
            times: dict[str, list[float]] = {}
            for _ in range(options.warmup):
                one(times)
            times.clear()
            profile = cProfile.Profile() if options.cprofile else None
            if profile is not None:
                profile.enable()
            for _ in range(options.count):
                one(times)
            if profile is not None:
                profile.disable()
                pstats.Stats(profile, stream=sys.stdout).sort_stats(options.cprofile).print_stats(
                    40
                )
    print(f"{options.database}: thread CPU per step over {options.count} lifecycles (µs)")
    total = 0.0
    for step, seconds in times.items():
        mean = statistics.fmean(seconds) * 1e6
        total += mean
        print(f"  {step:9s} mean {mean:7.0f}  median {statistics.median(seconds) * 1e6:7.0f}")
    print(f"  {'lifecycle':9s} mean {total:7.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
