"""Card numbers and security codes are never kept: not in the database, the sandbox's store,
or the server's debug logs.

A real `quittance serve` process (`QUITTANCE_LOG_LEVEL=DEBUG`, stdout and stderr captured to a
file) runs on a fresh database of its own, per backend. Cards are attached,
refused and used to pay (saved default, saved declined, inline, inline declined); then the raw
bytes of every SQLite file (main, WAL and shared memory, before and after a checkpoint) and
of the sandbox store, every value of every table (SQLite and PostgreSQL), and the log are
searched for each card number (digits only, in groups of four, and as sent) and each
security code (as a token of its own, since a short code can occur inside a longer one).
"""

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import inspect, text

from quittance.db.engine import build_engine
from quittance.db.migrate import upgrade
from quittance.db.uow import Database
from tests.conftest import PG_ADMIN_URL, LiveServer, _pg_conninfo, start_server, stop_server
from tests.factories import MerchantFactory

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Card:
    number: str  # as sent
    cvc: str

    @property
    def digits(self) -> str:
        return self.number.replace(" ", "")

    def forms(self) -> set[str]:
        """The ways the number could be written down."""
        digits = self.digits
        grouped = " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
        return {digits, grouped, self.number}


DEFAULT = Card("4242 4242 4242 4242", "737")  # saved, the default: pays with an empty body
SAVED = Card("5555555555554444", "9571")  # saved, then detached
SAVED_DECLINED = Card("4000 0000 0000 0002", "8314")  # saved, declined when it pays
INLINE = Card("3782 822463 10005", "4913")  # inline, succeeds
INLINE_DECLINED = Card("4000000000009995", "2864")  # inline, insufficient funds
REFUSED = Card("4242 4242 4242 4241", "6028")  # fails the Luhn check: never tokenised
INVALID = Card("5555 5555 5555 4444", "3719")  # a body refused by validation (month 13)
CARDS = (DEFAULT, SAVED, SAVED_DECLINED, INLINE, INLINE_DECLINED, REFUSED, INVALID)


def _card_body(card: Card, *, exp_month: int = 12, **extra: Any) -> dict[str, Any]:
    return {"type": "card",
            "card": {"number": card.number, "exp_month": exp_month, "exp_year": 2034,
                     "cvc": card.cvc}, **extra}  # fmt: skip


def leaks(haystack: bytes) -> list[str]:
    """Return every card number or security code found in `haystack`."""
    found = [form for card in CARDS for form in sorted(card.forms()) if form.encode() in haystack]
    for card in CARDS:
        # A code counts when it stands alone: not inside an id, a hash, a token or a number.
        pattern = rb"(?<![0-9A-Za-z])" + card.cvc.encode() + rb"(?![0-9A-Za-z])"
        if re.search(pattern, haystack):
            found.append(f"cvc {card.cvc}")
    return found


def serve(database_url: str, sandbox_path: Path, log_path: Path) -> LiveServer:
    """Start `python -m quittance serve` with DEBUG logs, stdout and stderr in `log_path`."""
    return start_server(
        database_url,
        log_path,
        QUITTANCE_LOG_LEVEL="DEBUG",
        QUITTANCE_SANDBOX_PATH=str(sandbox_path),
        QUITTANCE_EMBEDDED_WORKER="true",
        QUITTANCE_WORKER_INTERVAL="0.2",
    )


@pytest.fixture
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database holding nothing but what this test does."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'scan.db'}"
        upgrade(url)
        yield url
        return
    name = f"quittance_scan_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_pg_conninfo(PG_ADMIN_URL), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = _pg_conninfo(PG_ADMIN_URL).rpartition("/")
    url = f"{base}/{name}"
    upgrade(url)
    yield url
    with psycopg.connect(_pg_conninfo(PG_ADMIN_URL), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run_the_flow(url: str, key: str) -> list[httpx.Response]:
    """Attach, refuse and pay with every card; return every answer."""
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                      timeout=30) as http:  # fmt: skip

        def call(method: str, path: str, body: Any = None, status: int = 200,
                 **kwargs: Any) -> dict[str, Any]:  # fmt: skip
            response = http.request(method, path, json=body, **kwargs)
            answers.append(response)
            assert response.status_code == status, response.text
            result: dict[str, Any] = response.json()
            return result

        customer = call("POST", "/v1/customers", {"email": "ada@example.com"}, 201)["id"]
        methods = f"/v1/customers/{customer}/payment_methods"
        default = call("POST", methods, _card_body(DEFAULT, default=True), 201,
                       headers={"Idempotency-Key": "attach-default"})["id"]  # fmt: skip
        saved = call("POST", methods, _card_body(SAVED), 201)["id"]
        declined = call("POST", methods, _card_body(SAVED_DECLINED), 201)["id"]
        refused = call("POST", methods, _card_body(REFUSED), 422,
                       headers={"Idempotency-Key": "attach-refused"})  # fmt: skip
        assert refused["code"] == "invalid_card_number"
        invalid = call("POST", methods, _card_body(INVALID, exp_month=13), 422)
        assert invalid["code"] == "out_of_range"

        def invoice(amount: int) -> str:
            body = {"amount": amount, "currency": "EUR", "customer": customer}
            return str(call("POST", "/v1/invoices", body, 201)["id"])

        paid = call("POST", f"/v1/invoices/{invoice(2500)}/pay", {},
                    headers={"Idempotency-Key": "pay-default"})  # fmt: skip
        assert (paid["status"], paid["payment_method"]) == ("succeeded", default)
        assert paid["invoice"]["status"] == "processed"
        failed = call("POST", f"/v1/invoices/{invoice(1300)}/pay", {"payment_method": declined})
        assert (failed["status"], failed["error"]["code"]) == ("failed", "card_declined")
        inline = call("POST", f"/v1/invoices/{invoice(4100)}/pay",
                      {"payment_method": _card_body(INLINE)})  # fmt: skip
        assert inline["status"] == "succeeded"
        short = call("POST", f"/v1/invoices/{invoice(6200)}/pay",
                     {"payment_method": _card_body(INLINE_DECLINED)})  # fmt: skip
        assert (short["status"], short["error"]["code"]) == ("failed", "insufficient_funds")
        call("DELETE", f"{methods}/{saved}")
        listed = call("GET", methods)
        assert {m["card"]["last4"] for m in listed["data"]} == {"4242", "0002"}
    return answers


def _table_values(url: str) -> Iterator[str]:
    """Every value of every row of every table, as text."""
    engine = build_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            for table in inspect(connection).get_table_names():
                for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                    for value in row:
                        yield _as_text(value)
    finally:
        engine.dispose()


def _sandbox_values(path: Path) -> Iterator[str]:
    with sqlite3.connect(path) as connection:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master"
                                                   " WHERE type = 'table'")]  # fmt: skip
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                yield from (_as_text(value) for value in row)
    connection.close()


def _as_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _files(path: Path) -> dict[str, bytes]:
    """The raw bytes of a SQLite database and its WAL, shared-memory and journal files."""
    found = {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        candidate = Path(f"{path}{suffix}")
        if candidate.exists():
            found[candidate.name] = candidate.read_bytes()
    return found


def _checkpoint(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def test_no_card_number_or_security_code_is_kept_or_logged(
    fresh_database: str, backend: str, tmp_path: Path
) -> None:
    sandbox_path = tmp_path / "sandbox.db"
    db = Database(fresh_database)
    merchant = MerchantFactory(db).create()
    db.dispose()
    server = serve(fresh_database, sandbox_path, tmp_path / "server.log")
    try:
        answers = _run_the_flow(server.url, merchant.test_key)
    finally:
        stop_server(server)

    # The API never repeats them either.
    for answer in answers:
        assert leaks(answer.content) == [], (answer.request.url, answer.text)

    # The database: every value of every table...
    values = list(_table_values(fresh_database))
    assert any(value.startswith("tok_sandbox_") for value in values)  # the scan sees methods
    assert "4242" in values and "0002" in values  # ... and what may be kept
    for value in values:
        assert leaks(value.encode()) == [], value

    # ... and, on SQLite, the raw bytes of every file, before and after a checkpoint.
    if backend == "sqlite":
        database_path = Path(fresh_database.removeprefix("sqlite:///"))
        before = _files(database_path)
        _checkpoint(database_path)
        after = _files(database_path)
        assert any(b"tok_sandbox_" in content for content in before.values())
        assert b"tok_sandbox_" in after[database_path.name]
        for name, content in [*before.items(), *after.items()]:
            assert leaks(content) == [], name

    # The sandbox's store (the provider's side): rows and raw bytes.
    sandbox_rows = list(_sandbox_values(sandbox_path))
    # The scan sees the charges, made with tokens that carry a card's behaviour only.
    assert any(value.startswith("tok_sandbox_succeed_") for value in sandbox_rows)
    for value in sandbox_rows:
        assert leaks(value.encode()) == [], value
    sandbox_files = _files(sandbox_path)
    _checkpoint(sandbox_path)
    for name, content in [*sandbox_files.items(), *_files(sandbox_path).items()]:
        assert leaks(content) == [], name

    # The server's output (stdout and stderr) at DEBUG level, one line per request.
    log = (tmp_path / "server.log").read_bytes()
    for request in answers:
        line = f"{request.request.method} {request.request.url.path} {request.status_code}"
        assert line.encode() in log
    assert leaks(log) == [], [line for line in log.splitlines() if leaks(line)][:5]
