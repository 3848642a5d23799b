"""The fast lane of POST /v1/invoices/{id}/pay pays as the route does, and only what it would.

Answers and stored rows are compared with an app whose lanes are switched off
(`QUITTANCE_FAST_LANE=false`), where every pay takes the FastAPI route.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from quittance.config import Settings
from quittance.db.uow import Database
from quittance.models import Event, LedgerEntry, LedgerTransaction, Payment
from quittance.payment.fast_lane import PayLane
from tests.api.helpers import assert_problem, unchanged
from tests.factories import Api, record_lane, route_only_client
from tests.payment.helpers import DECLINED, SUCCEEDS, problem


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the lane served each request it was offered (False: the route answered)."""
    return record_lane(monkeypatch, PayLane)


@pytest.fixture(scope="module")
def route_only(pay_settings: Settings, db: Database) -> Iterator[TestClient]:
    yield from route_only_client(pay_settings, db)


def _card(number: str) -> dict[str, Any]:
    card = {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    return {"payment_method": {"type": "card", "card": card}}


_VARYING = {"id", "invoice", "payment_method", "provider_reference", "created_at",
            "updated_at", "succeeded_at", "failed_at"}  # fmt: skip
_INVOICE_VARYING = {"id", "created_at", "updated_at", "finalized_at", "expires_at",
                    "redirect_url"}  # fmt: skip


def _comparable(document: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in document.items() if k not in _VARYING}
    kept["invoice"] = {k: v for k, v in document["invoice"].items() if k not in _INVOICE_VARYING}
    if kept["invoice"]["last_payment_error"]:  # names its payment
        kept["invoice"]["last_payment_error"].pop("payment")
    # How long each provider call took differs from run to run.
    kept["routing"] = [{k: v for k, v in r.items() if k != "duration_ms"} for r in kept["routing"]]
    return kept


def _books(db: Database, invoice_id: str) -> dict[str, Any]:
    """What the pay stored for the invoice: payments, events and ledger, ids left out."""
    with db.read() as session:
        payments = session.scalars(select(Payment).where(Payment.invoice_id == invoice_id)).all()
        events = session.scalars(
            select(Event).where(Event.invoice_id == invoice_id).order_by(Event.id)
        ).all()
        transactions = session.scalars(
            select(LedgerTransaction).where(LedgerTransaction.invoice_id == invoice_id)
        ).all()
        entries = session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.transaction_id.in_([t.id for t in transactions]))
            .order_by(LedgerEntry.account, LedgerEntry.amount)
        ).all()
        return {
            "payments": [(p.status, p.amount, p.currency, p.attempt) for p in payments],
            "events": [(e.type, e.previous_status, e.status) for e in events],
            "ledger": [t.kind for t in transactions],
            "entries": [(e.account, e.amount, e.currency) for e in entries],
        }


@pytest.mark.parametrize("number", [SUCCEEDS, DECLINED], ids=["succeeds", "declined"])
def test_the_lane_pays_and_books_what_the_route_does(
    papi: Api, route_only: TestClient, db: Database, served: list[bool], number: str
) -> None:
    by_route = papi.create_invoice(amount=2500)
    by_lane = papi.create_invoice(amount=2500)
    via_route = route_only.post(
        f"/v1/invoices/{by_route['id']}/pay", json=_card(number), headers=papi._headers(None)
    )
    via_lane = papi.post(f"/v1/invoices/{by_lane['id']}/pay", json=_card(number))

    assert served == [True]
    assert via_lane.status_code == via_route.status_code == 200, via_lane.text
    assert via_lane.headers["content-type"] == via_route.headers["content-type"]
    assert _comparable(via_lane.json()) == _comparable(via_route.json())
    assert via_lane.json()["invoice"]["id"] == by_lane["id"]
    assert _books(db, by_lane["id"]) == _books(db, by_route["id"])
    assert _books(db, by_lane["id"])["payments"]  # something was stored


def test_what_the_lane_passes_on_is_answered_by_the_route(
    papi: Api, db: Database, served: list[bool]
) -> None:
    invoice = papi.create_invoice()
    path = f"/v1/invoices/{invoice['id']}/pay"
    with unchanged(db, papi.merchant.id):
        assert_problem(papi.post(path, json={"payment_method": 42}), 422, "invalid_type")
        assert_problem(
            papi.client.post(
                path,
                content=b"{",
                headers={**papi._headers(None), "Content-Type": "application/json"},
            ),
            400,
            "invalid_json",
        )
    assert served == [False, False]
    # Two segments are not an invoice id: not offered to the lane; the router has no such path.
    assert papi.post("/v1/invoices/a/b/pay", json=_card(SUCCEEDS)).status_code == 404
    assert served == [False, False]
    # No body, as on the route: the customer's default method (here: none).
    with unchanged(db, papi.merchant.id):
        problem(papi.post(path), 422, "payment_method_required")
    assert served == [False, False, True]


def test_an_idempotent_pay_through_the_lane_is_replayed(
    papi: Api, gateway: Any, served: list[bool]
) -> None:
    invoice = papi.create_invoice()
    path = f"/v1/invoices/{invoice['id']}/pay"
    first = papi.post(path, json=_card(SUCCEEDS), headers={"Idempotency-Key": "pay-lane-1"})
    again = papi.post(path, json=_card(SUCCEEDS), headers={"Idempotency-Key": "pay-lane-1"})
    assert served == [True, True]
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert papi.get(f"/v1/invoices/{invoice['id']}").json()["amount_paid"] == 1999
