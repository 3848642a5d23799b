"""Refunds of an invoice paid by several payments: one request, one refund per payment."""

from typing import Any

import pytest

from quittance.db.uow import Database
from quittance.providers.sandbox import SandboxGateway
from tests.factories import Api
from tests.payment.helpers import events, invoice, kinds, problem
from tests.refund.helpers import (
    CLEARING,
    assert_verified,
    full_state,
    ledger,
    refund,
    refund_entries,
    refund_events,
    refunded,
    status_chain,
    two_payments,
)


def _parts(document: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(r["payment"], r["amount"], r["status"]) for r in document["refunds"]]


def test_a_full_refund_goes_back_through_every_payment(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    inv = two_payments(papi, transfer=2000)
    bank, cards = inv["payments"]
    document = refunded(papi, inv["id"], reason="Order cancelled")
    # The payment with the most room first, then the next: one refund each.
    assert _parts(document) == [(cards, 3000, "succeeded"), (bank, 2000, "succeeded")]
    assert (document["id"], document["payment"], document["amount"]) == (
        document["refunds"][0]["id"], cards, 3000,
    )  # fmt: skip
    assert len({r["id"] for r in document["refunds"]}) == 2
    assert all(r["reason"] == "Order cancelled" for r in document["refunds"])
    after = document["invoice"]
    assert (after["status"], after["amount_refunded"]) == ("refunded", 5000)
    assert invoice(papi, inv["id"]) == after
    for payment_id, amount in ((cards, 3000), (bank, 2000)):
        charge = gateway.charges(payment_id)
        assert charge is not None and charge["amount_refunded"] == amount
    first, second = document["refunds"]
    assert refund_entries(papi, first["id"], inv["id"]) == [
        {"account": "merchant_balance", "currency": "EUR", "amount": 3000},
        {"account": CLEARING, "currency": "EUR", "amount": -3000},
    ]
    assert refund_entries(papi, second["id"], inv["id"])[0]["amount"] == 2000
    # The invoice moves once for the whole request; each refund has its own events.
    assert status_chain(papi, inv["id"])[-2:] == [
        ("processed", "refunding", "refund_start"),
        ("refunding", "refunded", "refund_succeeded"),
    ]
    history = events(papi, inv["id"])
    history = history[kinds(history).index("invoice.refunding") :]
    assert [(e["type"], e["data"]["object"]["id"]) for e in history] == [
        ("invoice.refunding", inv["id"]),
        ("refund.created", first["id"]),
        ("refund.created", second["id"]),
        ("invoice.refunded", inv["id"]),
        ("refund.succeeded", first["id"]),
        ("refund.succeeded", second["id"]),
    ]
    # Every refund event carries the invoice as it stood when the event was written.
    assert [e["data"]["invoice"]["status"] for e in history if e["type"].startswith("refund.")] \
        == ["refunding", "refunding", "refunded", "refunded"]  # fmt: skip
    listed = papi.get("/v1/refunds", params={"invoice": inv["id"]}).json()["data"]
    assert [r["id"] for r in listed] == [second["id"], first["id"]]
    problem(refund(papi, inv["id"], amount=1), 409, "invoice_not_refundable")
    assert_verified(db, papi.merchant.id)


def test_a_partial_refund_takes_the_fewest_payments(papi: Api, db: Database) -> None:
    inv = two_payments(papi, transfer=2000)
    bank, cards = inv["payments"]
    one = refunded(papi, inv["id"], amount=2500)
    assert _parts(one) == [(cards, 2500, "succeeded")]
    # 500 left on the card, 2000 on the transfer: the transfer has the most room now.
    two = refunded(papi, inv["id"], amount=2400)
    assert _parts(two) == [(bank, 2000, "succeeded"), (cards, 400, "succeeded")]
    assert two["invoice"]["status"] == "partially_refunded"
    before = full_state(db, papi.merchant.id)
    body = problem(refund(papi, inv["id"], amount=101), 422, "refund_exceeds_refundable")
    assert body["refundable"] == 100
    assert full_state(db, papi.merchant.id) == before
    last = refunded(papi, inv["id"])
    assert _parts(last) == [(cards, 100, "succeeded")]
    assert (last["invoice"]["status"], last["invoice"]["amount_refunded"]) == ("refunded", 5000)
    assert [t["kind"] for t in ledger(papi, inv["id"])].count("refund") == 4
    assert_verified(db, papi.merchant.id)


def test_more_than_all_payments_received_changes_nothing(papi: Api, db: Database) -> None:
    inv = two_payments(papi, transfer=2000)
    before = full_state(db, papi.merchant.id)
    body = problem(refund(papi, inv["id"], amount=5001), 422, "refund_exceeds_refundable")
    assert body["refundable"] == 5000
    assert full_state(db, papi.merchant.id) == before


def test_one_part_failing_leaves_its_money_refundable(papi: Api, db: Database) -> None:
    inv = two_payments(papi, transfer=1902)  # the transfer's part ends in 02: it fails
    bank, cards = inv["payments"]
    document = refunded(papi, inv["id"])
    assert _parts(document) == [(cards, 3098, "succeeded"), (bank, 1902, "failed")]
    assert document["refunds"][1]["error"]["code"] == "refund_declined"
    after = document["invoice"]
    # Money went back, so the request counts as a partial refund, whichever part failed.
    assert (after["status"], after["amount_refunded"]) == ("partially_refunded", 3098)
    assert refund_events(papi, inv["id"])[-4:] == [
        ("refund.created", "pending", 3098), ("refund.created", "pending", 1902),
        ("refund.succeeded", "succeeded", 3098), ("refund.failed", "failed", 1902),
    ]  # fmt: skip
    assert [t["kind"] for t in ledger(papi, inv["id"])].count("refund") == 1
    rest = refunded(papi, inv["id"], amount=1000)
    assert _parts(rest) == [(bank, 1000, "succeeded")]
    assert_verified(db, papi.merchant.id)


def test_all_parts_failing_is_refund_failed(papi: Api, db: Database) -> None:
    inv = two_payments(papi, transfer=1902, amount=3804)  # 1902 each, both fail
    document = refunded(papi, inv["id"])
    assert [r["status"] for r in document["refunds"]] == ["failed", "failed"]
    assert (document["invoice"]["status"], document["invoice"]["amount_refunded"]) == (
        "refund_failed", 0,
    )  # fmt: skip
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["capture", "capture"]
    assert_verified(db, papi.merchant.id)


@pytest.mark.parametrize("settle", [True, False])
def test_a_pending_part_holds_the_invoice_until_it_settles(
    papi: Api, db: Database, settle: bool
) -> None:
    inv = two_payments(papi, transfer=1901)  # the transfer's part ends in 01: pending
    bank, cards = inv["payments"]
    document = refunded(papi, inv["id"])
    assert _parts(document) == [(cards, 3099, "succeeded"), (bank, 1901, "pending")]
    assert (document["invoice"]["status"], document["invoice"]["amount_refunded"]) == (
        "refund_pending", 3099,
    )  # fmt: skip
    before = full_state(db, papi.merchant.id)
    problem(refund(papi, inv["id"], amount=100), 409, "invoice_not_refundable")
    assert full_state(db, papi.merchant.id) == before
    assert_verified(db, papi.merchant.id)
    pending = document["refunds"][1]["id"]
    action = "settle" if settle else "fail"
    response = papi.post(f"/v1/test_helpers/refunds/{pending}/{action}")
    assert response.status_code == 200, response.text
    after = response.json()["invoice"]
    if settle:
        assert (after["status"], after["amount_refunded"]) == ("refunded", 5000)
        last = ("refund_pending", "refunded", "refund_succeeded")
    else:
        # The request sent 3099 back: partially refunded, the failed part stays refundable.
        assert (after["status"], after["amount_refunded"]) == ("partially_refunded", 3099)
        last = ("refund_pending", "partially_refunded", "refund_partial")
    assert status_chain(papi, inv["id"])[-3:] == [
        ("processed", "refunding", "refund_start"),
        ("refunding", "refund_pending", "refund_pending"),
        last,
    ]
    assert_verified(db, papi.merchant.id)


def test_an_idempotent_split_refund_is_made_once(papi: Api, db: Database) -> None:
    inv = two_payments(papi, transfer=2000)
    headers = {"Idempotency-Key": "split-once"}
    path = f"/v1/invoices/{inv['id']}/refunds"
    first = papi.post(path, json={"amount": 4000}, headers=headers)
    second = papi.post(path, json={"amount": 4000}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert len(first.json()["refunds"]) == 2
    assert invoice(papi, inv["id"])["amount_refunded"] == 4000
    assert [t["kind"] for t in ledger(papi, inv["id"])].count("refund") == 2
    assert_verified(db, papi.merchant.id)
