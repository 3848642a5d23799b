"""Helpers for fee schedules, exchange rates, commission and exchange tests."""

from collections import defaultdict
from typing import Any

import httpx
from sqlalchemy import select

from quittance.db.uow import Database
from quittance.ledger.verify import verify
from quittance.models import ExchangeRate, FeeSchedule, Invoice, LedgerEntry, LedgerTransaction
from tests.factories import Api
from tests.payment.helpers import state

CLEARING = "provider_clearing:sandbox"


def put(api: Api, path: str, body: Any) -> httpx.Response:
    return api.client.put(path, json=body, headers=api._headers(None))


def delete(api: Api, path: str) -> httpx.Response:
    return api.client.delete(path, headers=api._headers(None))


def set_schedule(
    api: Api, method: str, currency: str, percent: str | int, fixed: int = 0,
    minimum: int | None = None, maximum: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    body = {"currency": currency, "percent": percent, "fixed": fixed, "minimum": minimum,
            "maximum": maximum}  # fmt: skip
    response = put(api, f"/v1/fee_schedules/{method}", body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def set_rate(api: Api, base: str, quote: str, rate: str) -> dict[str, Any]:
    response = api.post("/v1/exchange_rates", json={"base": base, "quote": quote, "rate": rate})
    assert response.status_code == 201, response.text
    return dict(response.json())


def set_options(api: Api, **fields: Any) -> None:
    response = api.patch("/v1/settings/payment_options", json=fields)
    assert response.status_code == 200, response.text


def transfer(api: Api, payment_id: str, amount: int) -> dict[str, Any]:
    response = api.post("/v1/test_helpers/bank_transfers",
                        json={"payment": payment_id, "amount": amount})  # fmt: skip
    assert response.status_code == 200, response.text
    return dict(response.json())


def ledger(api: Api, invoice_id: str) -> list[dict[str, Any]]:
    """The invoice's ledger transactions, oldest first."""
    response = api.get("/v1/ledger/transactions", params={"invoice": invoice_id, "limit": 100})
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["data"]))


def shapes(api: Api, invoice_id: str) -> list[tuple[str, list[tuple[str, str, int]]]]:
    """Each transaction as (kind, entries in posting order); every one balances per currency."""
    out = []
    for txn in ledger(api, invoice_id):
        entries = [(e["account"], e["currency"], e["amount"]) for e in txn["entries"]]
        sums: dict[str, int] = defaultdict(int)
        for _, currency, amount in entries:
            sums[currency] += amount
        assert all(total == 0 for total in sums.values()), txn
        out.append((txn["kind"], entries))
    return out


def totals(api: Api, invoice_id: str) -> dict[tuple[str, str], int]:
    """The invoice's ledger movements per (account, currency)."""
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for txn in ledger(api, invoice_id):
        for entry in txn["entries"]:
            sums[(entry["account"], entry["currency"])] += entry["amount"]
    return {key: value for key, value in sums.items() if value}


def everything(db: Database, merchant_id: str) -> dict[str, Any]:
    """All a merchant stored, ledger rows, fee schedules and rates included."""
    with db.read() as session:
        ledger_rows = [
            session.scalars(select(model.id).where(model.merchant_id == merchant_id)).all()
            for model in (LedgerTransaction, LedgerEntry)
        ]
        schedules = [
            (row.livemode, row.method, row.currency, row.percent, row.fixed, row.minimum,
             row.maximum, row.updated_at)
            for row in session.scalars(
                select(FeeSchedule).where(FeeSchedule.merchant_id == merchant_id)
                .order_by(FeeSchedule.livemode, FeeSchedule.method, FeeSchedule.currency)
            )
        ]  # fmt: skip
        rates = session.scalars(
            select(ExchangeRate.id).where(ExchangeRate.merchant_id == merchant_id)
        ).all()
    return {**state(db, merchant_id), "ledger": ledger_rows, "schedules": schedules,
            "rates": list(rates)}  # fmt: skip


def assert_books(db: Database, merchant_id: str) -> None:
    """`quittance verify` finds nothing wrong with this merchant's invoices and transactions
    (the test database is shared with tests that break invariants on purpose)."""
    with db.read() as session:
        report = verify(session)
        mine = set(session.scalars(select(Invoice.id).where(Invoice.merchant_id == merchant_id)))
        mine |= set(
            session.scalars(
                select(LedgerTransaction.id).where(LedgerTransaction.merchant_id == merchant_id)
            )
        )
    assert [v for v in report.violations if v.subject in mine] == []
