"""Shared helpers for the payment tests: pay calls, routing set-up, snapshots, histories."""

import sqlite3
import time
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from quittance import clock
from quittance.auth.dependencies import Caller
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.domain.ids import new_id
from quittance.jobs.worker import Worker
from quittance.ledger.verify import Violation, verify
from quittance.models import (
    Invoice,
    LedgerTransaction,
    MethodConfig,
    Payment,
    PaymentMethod,
    ProviderConnection,
)
from quittance.payment.routing import ensure_defaults
from tests.factories import Api, snapshot

RECOVERY_AFTER = 0.5  # seconds before the worker looks at an attempt that never got an answer
POLL_INTERVAL = 0.3  # seconds between the worker's questions about a pending payment
PROVIDER_TIMEOUT = 2.0

SUCCEEDS = "4242424242424242"
DECLINED = "4000000000000002"
INSUFFICIENT = "4000000000009995"
CHALLENGE = "4000000000003220"
PENDING = "4000000000000259"
PROVIDER_ERROR = "4000000000000119"

PROBLEM = "application/problem+json"


def card(number: str) -> dict[str, Any]:
    """An inline sandbox card method."""
    return {
        "type": "card",
        "card": {"number": number, "exp_month": 12, "exp_year": 2040, "cvc": "123"},
    }


BANK_TRANSFER: dict[str, Any] = {"type": "bank_transfer"}
INVOICE_METHOD: dict[str, Any] = {"type": "invoice"}


def pay(api: Api, invoice_id: str, method: Any = None, **kwargs: Any) -> httpx.Response:
    body = None if method is None else {"payment_method": method}
    return api.post(f"/v1/invoices/{invoice_id}/pay", json=body, **kwargs)


def paid(api: Api, invoice_id: str, method: Any = None, **kwargs: Any) -> dict[str, Any]:
    """Pay and return the payment document (a decline is still a 200)."""
    response = pay(api, invoice_id, method, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["object"] == "payment"
    assert body["invoice"]["id"] == invoice_id
    return body


def invoice(api: Api, invoice_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/invoices/{invoice_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def payment(api: Api, payment_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/payments/{payment_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem with a stable code (business errors carry no `errors`)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].split(";")[0] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"] == f"urn:quittance:error:{code}"
    assert body["detail"] and body["title"] and body["request_id"]
    return body


def caller(merchant_id: str) -> Caller:
    return Caller(merchant_id=merchant_id, livemode=False, key_id="key_tests", publishable=False)


def set_routes(db: Database, merchant_id: str, method: str, *options: dict[str, Any]) -> list[str]:
    """Route a test-mode method through new sandbox connections, in this order."""
    now = clock.now()
    with db.write() as session:
        ensure_defaults(session, merchant_id, False)
        ids = []
        for position, opts in enumerate(options):
            connection = ProviderConnection(
                id=new_id("pcn"), merchant_id=merchant_id, livemode=False, provider="sandbox",
                name=f"Sandbox {position}", options=dict(opts), enabled=True, created_at=now,
                updated_at=now,
            )  # fmt: skip
            session.add(connection)
            ids.append(connection.id)
        session.flush()
        config = session.get(MethodConfig, (merchant_id, False, method))
        assert config is not None
        config.connection_ids = list(ids)
        config.updated_at = now
    return ids


def state(db: Database, merchant_id: str) -> dict[str, Any]:
    """Everything a merchant stored, payments and payment methods included."""
    with db.read() as session:
        payments = session.scalars(
            select(Payment).where(Payment.merchant_id == merchant_id).order_by(Payment.id)
        ).all()
        methods = session.scalar(
            select(func.count()).where(PaymentMethod.merchant_id == merchant_id)
        )
        return {
            **snapshot(db, merchant_id),
            "payments": [
                {c.key: getattr(p, c.key) for c in Payment.__mapper__.column_attrs}
                for p in payments
            ],
            "payment_methods": methods,
        }


def payments_of(db: Database, invoice_id: str) -> list[Payment]:
    with db.read() as session:
        return list(
            session.scalars(
                select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.id)
            )
        )


def charge_count(sandbox_path: str) -> int:
    """How many charges the provider holds, all merchants together."""
    with sqlite3.connect(sandbox_path, timeout=30) as connection:
        try:
            return int(connection.execute("SELECT count(*) FROM charges").fetchone()[0])
        except sqlite3.OperationalError:  # the store has not been created yet
            return 0


def run_worker(db: Database, settings: Settings, *, after: float = 0.0) -> dict[str, int]:
    """Wait `after` seconds (so due checks are due), then run every worker job once."""
    if after:
        time.sleep(after)
    return Worker(db, settings).run_once()


def events(api: Api, invoice_id: str) -> list[dict[str, Any]]:
    """The invoice's history, oldest first."""
    response = api.get(f"/v1/invoices/{invoice_id}/events")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["has_more"] is False
    return list(body["data"])


def transitions(client: TestClient | httpx.Client) -> dict[tuple[Any, str, str], str]:
    table = client.get("/v1/invoice_statuses").json()
    return {(t["from"], t["to"], t["trigger"]): t["event"] for t in table["transitions"]}


def kinds(history: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in history]


def assert_history(
    api: Api, invoice_id: str, expected: list[str | tuple[str, Any, str, str]]
) -> list[dict[str, Any]]:
    """Assert the exact event sequence of an invoice.

    Status events are given as `(type, previous_status, status, trigger)` and must each be a
    row of GET /v1/invoice_statuses, chained from creation; other events by type. Every
    payment event carries the payment in the status its type names, and the invoice.
    """
    history = events(api, invoice_id)
    got: list[str | tuple[str, Any, str, str]] = []
    for event in history:
        if event["trigger"] is not None:
            got.append((event["type"], event["previous_status"], event["status"], event["trigger"]))
        else:
            got.append(event["type"])
    assert got == expected, got
    assert_status_events(api, history)
    return history


PAYMENT_EVENT_STATUS = {
    "payment.created": "pending",
    "payment.pending": "pending",
    "payment.requires_action": "requires_action",
    "payment.authorized": "authorized",
    "payment.succeeded": "succeeded",
    "payment.failed": "failed",
    "payment.cancelled": "cancelled",
}


def assert_status_events(api: Api, history: list[dict[str, Any]]) -> None:
    table = transitions(api.client)
    current: str | None = None
    for event in history:
        if event["trigger"] is not None:
            key = (event["previous_status"], event["status"], event["trigger"])
            assert key in table, key
            assert table[key] == event["type"], (key, event["type"])
            assert event["previous_status"] == current, (event["type"], current)
            current = event["status"]
            assert event["data"]["object"]["status"] == current
        elif event["type"].startswith("payment."):
            document = event["data"]["object"]
            assert document["object"] == "payment"
            if event["type"] in PAYMENT_EVENT_STATUS:
                assert document["status"] == PAYMENT_EVENT_STATUS[event["type"]], event["type"]
            assert event["data"]["invoice"]["status"] == current, event["type"]
        else:
            assert event["data"]["object"]["status"] == current, event["type"]
    ids = [event["id"] for event in history]
    assert ids == sorted(ids)


def status_chain(api: Api, invoice_id: str) -> list[tuple[Any, str, str]]:
    """The invoice's status events, each a row of the transition table, chained from creation."""
    table = transitions(api.client)
    chain: list[tuple[Any, str, str]] = []
    current = None
    for event in events(api, invoice_id):
        if event["trigger"] is None:
            continue
        key = (event["previous_status"], event["status"], event["trigger"])
        assert key in table and table[key] == event["type"], key
        assert event["previous_status"] == current
        current = event["status"]
        chain.append(key)
    return chain


def ledger(api: Api, invoice_id: str) -> list[dict[str, Any]]:
    """The invoice's ledger transactions with their entries (GET /v1/ledger/transactions)."""
    response = api.get("/v1/ledger/transactions", params={"invoice": invoice_id})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def merchant_violations(db: Database, merchant_id: str) -> tuple[list[Violation], bool]:
    """What `quittance verify` finds wrong with this merchant's invoices and transactions, and
    whether its reconciliation lists the merchant.

    The test database is shared with tests that break invariants on purpose, so only this
    merchant's violations count; `test_verify_passes_on_a_database_of_its_own` asserts the
    whole report.
    """
    with db.read() as session:
        report = verify(session)
        mine = set(session.scalars(select(Invoice.id).where(Invoice.merchant_id == merchant_id)))
        mine |= set(
            session.scalars(
                select(LedgerTransaction.id).where(LedgerTransaction.merchant_id == merchant_id)
            )
        )
    listed = any(r.merchant_id == merchant_id for r in report.reconciliation)
    return [v for v in report.violations if v.subject in mine], listed


def assert_verified(db: Database, merchant_id: str) -> None:
    """`quittance verify`'s invariants hold for this merchant's invoices and transactions."""
    violations, _ = merchant_violations(db, merchant_id)
    assert violations == [], violations
