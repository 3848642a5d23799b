"""Refunds (DESIGN §3, §4 "Refund"): full and partial, pending and failed, ledger and events."""

from typing import Any

import pytest
from sqlalchemy import func, select

from quittance.db.uow import Database
from quittance.ledger.verify import verify
from quittance.models import Refund
from quittance.providers.sandbox import SandboxGateway
from tests.factories import Api
from tests.ledger.test_verify import Fresh, fresh
from tests.payment.helpers import BANK_TRANSFER, invoice, paid, problem
from tests.refund.helpers import (
    CLEARING,
    assert_verified,
    full_state,
    ledger,
    paid_invoice,
    refund,
    refund_events,
    refunded,
    status_chain,
    two_payments,
)


@pytest.mark.parametrize(("currency", "amount"), [("EUR", 5000), ("JPY", 1999)])
def test_a_full_refund_by_default(papi: Api, db: Database, currency: str, amount: int) -> None:
    inv = paid_invoice(papi, amount, currency)
    document = refunded(papi, inv["id"], reason="Customer changed their mind")
    assert (document["status"], document["amount"], document["currency"]) == (
        "succeeded", amount, currency,
    )  # fmt: skip
    assert document["reason"] == "Customer changed their mind" and document["error"] is None
    after = document["invoice"]
    assert (after["status"], after["amount_paid"], after["amount_refunded"]) == (
        "refunded", amount, amount,
    )  # fmt: skip
    assert invoice(papi, inv["id"]) == after
    newest, capture = ledger(papi, inv["id"])
    assert capture["kind"] == "capture"
    assert (newest["kind"], newest["refund_id"], newest["payment_id"]) == (
        "refund", document["id"], document["payment"],
    )  # fmt: skip
    assert sorted(newest["entries"], key=lambda e: e["account"]) == [
        {"account": "merchant_balance", "currency": currency, "amount": amount},
        {"account": CLEARING, "currency": currency, "amount": -amount},
    ]
    assert sum(e["amount"] for e in newest["entries"]) == 0
    assert status_chain(papi, inv["id"])[-2:] == [
        ("processed", "refunding", "refund_start"),
        ("refunding", "refunded", "refund_succeeded"),
    ]
    assert refund_events(papi, inv["id"]) == [
        ("refund.created", "pending", amount), ("refund.succeeded", "succeeded", amount),
    ]  # fmt: skip
    again = papi.get(f"/v1/refunds/{document['id']}")
    (only,) = document.pop("refunds")
    assert only == {**document, "invoice": inv["id"]}
    assert again.status_code == 200 and again.json() == document
    assert_verified(db, papi.merchant.id)


def test_several_partial_refunds_up_to_the_amount(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    inv = paid_invoice(papi, 5000)
    first = refunded(papi, inv["id"], amount=1000)
    assert first["invoice"]["status"] == "partially_refunded"
    assert first["invoice"]["amount_refunded"] == 1000
    second = refunded(papi, inv["id"], amount=2500)
    assert second["invoice"]["status"] == "partially_refunded"
    before = full_state(db, papi.merchant.id)
    problem(refund(papi, inv["id"], amount=1501), 422, "refund_exceeds_refundable")
    assert full_state(db, papi.merchant.id) == before
    last = refunded(papi, inv["id"])  # the rest
    assert last["amount"] == 1500
    assert (last["invoice"]["status"], last["invoice"]["amount_refunded"]) == ("refunded", 5000)
    charge = gateway.charges(first["payment"])
    assert charge is not None and charge["amount_refunded"] == 5000
    body = problem(refund(papi, inv["id"], amount=100), 409, "invoice_not_refundable")
    assert body["invoice_status"] == "refunded"
    listed = papi.get("/v1/refunds", params={"invoice": inv["id"]}).json()
    assert [r["amount"] for r in listed["data"]] == [1500, 2500, 1000]
    assert all(r["invoice"] == inv["id"] for r in listed["data"])
    assert [t[1] for t in status_chain(papi, inv["id"])] == [
        "created", "processing", "processed", "refunding", "partially_refunded", "refunding",
        "partially_refunded", "refunding", "refunded",
    ]  # fmt: skip
    transactions = ledger(papi, inv["id"])
    assert [t["kind"] for t in transactions] == ["refund", "refund", "refund", "capture"]
    assert_verified(db, papi.merchant.id)


def test_more_than_refundable_changes_nothing(papi: Api, db: Database) -> None:
    inv = paid_invoice(papi, 2000)
    before = full_state(db, papi.merchant.id)
    body = problem(refund(papi, inv["id"], amount=2001), 422, "refund_exceeds_refundable")
    assert body["refundable"] == 2000
    assert full_state(db, papi.merchant.id) == before
    assert invoice(papi, inv["id"])["status"] == "processed"


@pytest.mark.parametrize("draft", [False, True])
def test_an_unpaid_invoice_is_not_refundable(papi: Api, db: Database, draft: bool) -> None:
    created = papi.create_invoice(**({"status": "draft"} if draft else {}))
    before = full_state(db, papi.merchant.id)
    body = problem(refund(papi, created["id"]), 409, "invoice_not_refundable")
    assert body["invoice_status"] == created["status"]
    assert full_state(db, papi.merchant.id) == before


def test_a_partly_paid_invoice_refunds_what_it_received(papi: Api, db: Database) -> None:
    created = papi.create_invoice(amount=5000, currency="EUR")
    payment = paid(papi, created["id"], BANK_TRANSFER)
    response = papi.post("/v1/test_helpers/bank_transfers",
                         json={"payment": payment["id"], "amount": 2000})  # fmt: skip
    assert response.status_code == 200, response.text
    problem(refund(papi, created["id"], amount=2001), 422, "refund_exceeds_refundable")
    document = refunded(papi, created["id"])
    assert document["amount"] == 2000
    assert (document["invoice"]["status"], document["invoice"]["amount_refunded"]) == (
        "refunded", 2000,
    )  # fmt: skip
    assert_verified(db, papi.merchant.id)


def test_a_pending_refund_settles(papi: Api, db: Database) -> None:
    inv = paid_invoice(papi, 5000)
    document = refunded(papi, inv["id"], amount=1201)  # ends in 01: pending
    assert document["status"] == "pending"
    assert (document["invoice"]["status"], document["invoice"]["amount_refunded"]) == (
        "refund_pending", 0,
    )  # fmt: skip
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["capture"]
    # Nothing else while one is under way.
    before = full_state(db, papi.merchant.id)
    problem(refund(papi, inv["id"], amount=100), 409, "invoice_not_refundable")
    assert full_state(db, papi.merchant.id) == before
    assert_verified(db, papi.merchant.id)
    settled = papi.post(f"/v1/test_helpers/refunds/{document['id']}/settle")
    assert settled.status_code == 200, settled.text
    body = settled.json()
    assert body["status"] == "succeeded"
    assert (body["invoice"]["status"], body["invoice"]["amount_refunded"]) == (
        "partially_refunded", 1201,
    )  # fmt: skip
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["refund", "capture"]
    again = papi.post(f"/v1/test_helpers/refunds/{document['id']}/settle")
    problem(again, 409, "refund_not_pending")
    assert status_chain(papi, inv["id"])[-3:] == [
        ("processed", "refunding", "refund_start"),
        ("refunding", "refund_pending", "refund_pending"),
        ("refund_pending", "partially_refunded", "refund_partial"),
    ]
    assert refund_events(papi, inv["id"]) == [
        ("refund.created", "pending", 1201), ("refund.pending", "pending", 1201),
        ("refund.succeeded", "succeeded", 1201),
    ]  # fmt: skip
    rest = refunded(papi, inv["id"])
    assert rest["amount"] == 3799 and rest["invoice"]["status"] == "refunded"
    assert_verified(db, papi.merchant.id)


def test_a_pending_refund_fails(papi: Api, db: Database) -> None:
    inv = paid_invoice(papi, 5000)
    document = refunded(papi, inv["id"], amount=5000 - 3999)  # 1001: pending
    assert document["status"] == "pending"
    failed = papi.post(f"/v1/test_helpers/refunds/{document['id']}/fail")
    assert failed.status_code == 200, failed.text
    body = failed.json()
    assert body["status"] == "failed" and body["error"]["code"] == "refund_declined"
    assert (body["invoice"]["status"], body["invoice"]["amount_refunded"]) == ("refund_failed", 0)
    assert status_chain(papi, inv["id"])[-1] == ("refund_pending", "refund_failed",
                                                 "refund_failed")  # fmt: skip
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["capture"]
    # The money stays refundable.
    rest = refunded(papi, inv["id"])
    assert rest["amount"] == 5000 and rest["invoice"]["status"] == "refunded"
    assert_verified(db, papi.merchant.id)


def test_a_failed_refund_refunds_nothing(papi: Api, db: Database) -> None:
    inv = paid_invoice(papi, 5000)
    document = refunded(papi, inv["id"], amount=702)  # ends in 02: fails
    assert document["status"] == "failed"
    assert document["error"]["code"] == "refund_declined"
    after = document["invoice"]
    assert (after["status"], after["amount_refunded"]) == ("refund_failed", 0)
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["capture"]
    assert refund_events(papi, inv["id"]) == [
        ("refund.created", "pending", 702), ("refund.failed", "failed", 702),
    ]  # fmt: skip
    again = refunded(papi, inv["id"], amount=700)
    assert (again["status"], again["invoice"]["status"]) == ("succeeded", "partially_refunded")
    assert status_chain(papi, inv["id"])[-4:] == [
        ("processed", "refunding", "refund_start"),
        ("refunding", "refund_failed", "refund_failed"),
        ("refund_failed", "refunding", "refund_start"),
        ("refunding", "partially_refunded", "refund_partial"),
    ]
    assert_verified(db, papi.merchant.id)


def test_an_idempotent_refund_is_made_once(papi: Api, db: Database) -> None:
    inv = paid_invoice(papi, 5000)
    headers = {"Idempotency-Key": "refund-once"}
    first = papi.post(f"/v1/invoices/{inv['id']}/refunds", json={"amount": 1000}, headers=headers)
    second = papi.post(f"/v1/invoices/{inv['id']}/refunds", json={"amount": 1000}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert invoice(papi, inv["id"])["amount_refunded"] == 1000
    with db.read() as session:
        count = session.scalar(select(func.count()).where(Refund.invoice_id == inv["id"]))
    assert count == 1
    assert_verified(db, papi.merchant.id)


def test_refunds_of_another_merchant_are_not_found(
    papi: Api, pay_client: Any, merchants: Any
) -> None:
    inv = paid_invoice(papi, 5000)
    document = refunded(papi, inv["id"], amount=100)
    other = Api(pay_client, merchants.create())
    problem(other.get(f"/v1/refunds/{document['id']}"), 404, "refund_not_found")
    problem(refund(other, inv["id"]), 404, "invoice_not_found")
    assert other.get("/v1/refunds").json()["data"] == []


@pytest.mark.slow
def test_verify_passes_on_a_database_of_its_own(fresh: Fresh) -> None:
    api, db = fresh.api, fresh.db
    full = paid_invoice(api, 5000)
    refunded(api, full["id"])
    partial = paid_invoice(api, 3000)
    refunded(api, partial["id"], amount=1000)
    refunded(api, partial["id"], amount=702)  # fails
    pending = refunded(api, partial["id"], amount=501)
    assert api.post(f"/v1/test_helpers/refunds/{pending['id']}/settle").status_code == 200
    split = two_payments(api, transfer=2000)
    assert len(refunded(api, split["id"], refund_commission=True)["refunds"]) == 2
    with db.read() as session:
        report = verify(session)
    assert report.ok, report.violations
    [money] = report.reconciliation
    assert (money.received, money.refunded, money.net) == (13000, 11501, 1499)


__all__ = ["fresh"]
