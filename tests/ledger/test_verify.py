"""`quittance verify`, run as a real process on a database of its own (both backends)."""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from quittance import clock
from quittance.app import create_app
from quittance.config import Settings
from quittance.db.migrate import upgrade
from quittance.db.rows import insert_rows
from quittance.db.uow import Database
from quittance.models import Invoice, LedgerEntry, LedgerTransaction
from tests.conftest import PG_ADMIN_URL, _pg_conninfo
from tests.factories import Api, MerchantFactory
from tests.payment.helpers import BANK_TRANSFER, SUCCEEDS, card, paid

pytestmark = pytest.mark.slow


@dataclass
class Fresh:
    url: str
    db: Database
    api: Api


@pytest.fixture
def fresh(backend: str, tmp_path: Path, pay_settings: Settings) -> Iterator[Fresh]:
    """A migrated database no other test writes to, and a merchant's API client on it."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'verify.db'}"
    else:
        name = f"quittance_verify_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(_pg_conninfo(PG_ADMIN_URL), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{_pg_conninfo(PG_ADMIN_URL).rpartition('/')[0]}/{name}"
    upgrade(url)
    db = Database(url)
    settings = pay_settings.model_copy(update={"database_url": url})
    with TestClient(create_app(settings, db), raise_server_exceptions=False) as client:
        yield Fresh(url, db, Api(client, MerchantFactory(db).create()))
    db.dispose()
    if backend == "postgresql":
        with psycopg.connect(_pg_conninfo(PG_ADMIN_URL), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def verify(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUITTANCE_DATABASE_URL": url, "QUITTANCE_ENV": "test",
           "QUITTANCE_LOG_LEVEL": "WARNING"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "quittance", "verify"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def pay_some(api: Api) -> tuple[str, str]:
    """A card payment in EUR and a partly paid bank transfer in JPY; return both invoices."""
    eur = api.create_invoice(amount=1999, currency="EUR")["id"]
    paid(api, eur, card(SUCCEEDS))
    jpy = api.create_invoice(amount=5000, currency="JPY")["id"]
    payment = paid(api, jpy, BANK_TRANSFER)
    response = api.post("/v1/test_helpers/bank_transfers",
                        json={"payment": payment["id"], "amount": 1200})  # fmt: skip
    assert response.status_code == 200, response.text
    api.create_invoice(amount=700, currency="EUR")  # unpaid: no ledger movement
    return eur, jpy


def test_a_healthy_database_verifies_and_reconciles(fresh: Fresh) -> None:
    pay_some(fresh.api)
    result = verify(fresh.url)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if fresh.api.merchant.id in line]
    cells = {
        tuple(c for c in row if c != "│")[2]: tuple(c for c in row if c != "│") for row in rows
    }
    # merchant, mode, currency, received, refunded, commission, net
    assert cells["EUR"][1:] == ("test", "EUR", "1999", "0", "0", "1999")
    assert cells["JPY"][1:] == ("test", "JPY", "1200", "0", "0", "1200")
    assert "no violation" in result.stdout


def test_a_corrupted_amount_paid_is_named(fresh: Fresh) -> None:
    eur, jpy = pay_some(fresh.api)
    with fresh.db.write() as session:
        session.execute(update(Invoice).where(Invoice.id == jpy).values(amount_paid=1300))
    result = verify(fresh.url)
    assert result.returncode == 1, result.stdout + result.stderr
    violations = [line for line in result.stdout.splitlines() if line.startswith("invoice_")]
    assert violations == [
        f"invoice_paid: {jpy}: amount_paid is JPY 1300 but its captures credit JPY 1200 to the "
        "merchant balance"
    ]
    assert eur not in result.stdout.split("violation(s):")[1]


def test_an_unbalanced_entry_row_is_named(fresh: Fresh) -> None:
    eur, _ = pay_some(fresh.api)
    with fresh.db.write() as session:
        txn = session.scalars(
            select(LedgerTransaction).where(LedgerTransaction.invoice_id == eur)
        ).one()
        insert_rows(session, [LedgerEntry(
            id=f"{txn.id}_99", merchant_id=txn.merchant_id, livemode=txn.livemode,
            transaction_id=txn.id, account="provider_clearing:sandbox", currency="EUR",
            amount=1, created_at=clock.now(),
        )])  # fmt: skip
    result = verify(fresh.url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        f"transaction_balanced: {txn.id}: entries sum to EUR +1, not zero (invoice {eur})"
        in result.stdout.splitlines()
    )


def test_a_check_that_cannot_run_exits_2_not_1(tmp_path: Path) -> None:
    """A database without the schema is not a violation of the books: verify says it could
    not run."""
    result = verify(f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "verify could not run" in result.stderr
    assert "Traceback" not in result.stderr


def pay_with_commission_and_exchange(api: Api) -> tuple[str, str]:
    """A card payment with commission on top in EUR, and a EUR invoice paid in USD."""
    for path, body in (
        ("/v1/exchange_rates", {"base": "EUR", "quote": "USD", "rate": "1.0842"}),
        ("/v1/settings/payment_options", {"include_commission": True}),
    ):
        call = api.patch if path.startswith("/v1/settings") else api.post
        assert call(path, json=body).status_code in (200, 201)
    schedule = {"currency": "EUR", "percent": "2.9", "fixed": 30}
    assert api.client.put("/v1/fee_schedules/card", json=schedule,
                          headers=api._headers(None)).status_code == 200  # fmt: skip
    eur = api.create_invoice(amount=1999, currency="EUR")["id"]
    assert paid(api, eur, card(SUCCEEDS))["commission"] == 88
    usd = api.create_invoice(amount=1000, currency="EUR")["id"]
    response = api.post(
        f"/v1/invoices/{usd}/pay",
        json={"payment_method": card(SUCCEEDS), "payment_currency": "USD"},
    )
    assert response.status_code == 200, response.text  # fmt: skip
    # 1000 + 59 commission (29 + 30) = 1059 EUR cents x 1.0842 = 1148.1678 → 1148 USD cents.
    assert response.json()["payer_amount"] == 1148
    return eur, usd


def test_commission_and_exchange_verify_and_reconcile(fresh: Fresh) -> None:
    pay_with_commission_and_exchange(fresh.api)
    result = verify(fresh.url)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if fresh.api.merchant.id in line]
    cells = {
        tuple(c for c in row if c != "│")[2]: tuple(c for c in row if c != "│") for row in rows
    }
    # merchant, mode, currency, received, refunded, commission, net, exchange
    assert cells["EUR"][1:] == ("test", "EUR", "2087", "0", "147", "2999", "1059")
    assert cells["USD"][1:] == ("test", "USD", "1148", "0", "0", "0", "-1148")
    assert "no violation" in result.stdout


def test_a_corrupted_commission_is_named(fresh: Fresh) -> None:
    eur, usd = pay_with_commission_and_exchange(fresh.api)
    with fresh.db.write() as session:
        session.execute(update(Invoice).where(Invoice.id == eur).values(commission=90))
        session.execute(update(Invoice).where(Invoice.id == usd).values(amount_paid=1001))
    result = verify(fresh.url)
    assert result.returncode == 1, result.stdout + result.stderr
    violations = [line for line in result.stdout.splitlines() if line.startswith("invoice_")]
    assert sorted(violations) == sorted([
        f"invoice_commission: {eur}: commission is EUR 90 but its commission revenue moved EUR 88",
        f"invoice_paid: {usd}: amount_paid is EUR 1001 but its captures credit EUR 1000 to the "
        "merchant balance",
    ])  # fmt: skip
