"""Deliveries (DESIGN §4 "Capture on delivery"): the provider captures what was delivered."""

from typing import Any

import pytest

from quittance.db.uow import Database
from quittance.providers.base import ProviderError
from quittance.providers.sandbox import SandboxGateway
from tests.factories import Api
from tests.fulfilment.helpers import (
    TOTAL,
    assert_verified,
    authorised,
    cancel,
    cancelled,
    deliver,
    delivered,
    full_state,
    kinds_after_payment,
    ledger,
    line_ids,
    quantities,
    status_chain,
    take,
)
from tests.payment.helpers import (
    BANK_TRANSFER,
    PENDING,
    SUCCEEDS,
    card,
    invoice,
    paid,
    payment,
    problem,
)

CLEARING = "provider_clearing:sandbox"


def assert_capture(transaction: dict[str, Any], amount: int) -> None:
    """A balanced capture: the provider's clearing account is debited what it captured."""
    assert transaction["kind"] == "capture"
    by_account = {e["account"]: e["amount"] for e in transaction["entries"]}
    assert by_account[CLEARING] == amount
    assert by_account["merchant_balance"] == -amount  # no fee schedule: no commission
    assert sum(e["amount"] for e in transaction["entries"]) == 0


def test_a_full_delivery_captures_the_authorisation(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    inv = authorised(papi)
    document = delivered(papi, inv["id"])
    ids = line_ids(inv)
    assert (document["status"], document["amount"], document["currency"]) == (
        "succeeded", TOTAL, "EUR",
    )  # fmt: skip
    assert document["payment"] == inv["payment"] and document["error"] is None
    assert document["provider_reference"] == payment(papi, inv["payment"])["provider_reference"]
    assert document["line_items"] == [
        {"line_item": ids[0], "quantity": 3, "amount": 3570},
        {"line_item": ids[1], "quantity": 2, "amount": 713},
        {"line_item": ids[2], "quantity": 1, "amount": 199},
    ]
    after = document["invoice"]
    assert (after["status"], after["amount"], after["amount_paid"], after["amount_due"]) == (
        "processed", TOTAL, TOTAL, 0,
    )  # fmt: skip
    assert after["amount_authorized"] == 0
    assert quantities(after) == [(0, 3, 0), (0, 2, 0), (0, 1, 0)]
    assert invoice(papi, inv["id"]) == after
    captured = payment(papi, inv["payment"])
    assert (captured["status"], captured["captured"]) == ("succeeded", True)
    assert (captured["amount_received"], captured["amount_authorized"]) == (TOTAL, 0)
    charge = gateway.charges(inv["payment"])
    assert charge is not None
    assert (charge["state"], charge["amount_captured"]) == ("succeeded", TOTAL)
    (capture,) = ledger(papi, inv["id"])
    assert_capture(capture, TOTAL)
    assert capture["payment_id"] == inv["payment"]
    assert kinds_after_payment(papi, inv["id"]) == [
        "delivery.created", "invoice.payment_received", "payment.succeeded",
        "delivery.succeeded",
    ]  # fmt: skip
    assert status_chain(papi, inv["id"])[-1] == ("processing", "processed", "payment_succeeded")
    listed = papi.get(f"/v1/invoices/{inv['id']}/deliveries").json()
    assert listed["data"] == [{**document, "invoice": inv["id"]}]
    # Nothing is left to deliver or cancel: returns are refunds.
    before = full_state(db, papi.merchant.id)
    problem(deliver(papi, inv["id"]), 409, "invoice_not_deliverable")
    problem(cancel(papi, inv["id"]), 409, "invoice_not_cancellable")
    assert full_state(db, papi.merchant.id) == before
    assert_verified(db, papi.merchant.id)


def test_deliveries_by_items_and_a_cancellation_in_between(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    inv = authorised(papi)
    first = delivered(papi, inv["id"], {"line_items": take(inv, 2)})
    assert (first["amount"], first["status"]) == (2380, "succeeded")
    after = first["invoice"]
    assert (after["status"], after["amount_paid"], after["amount_authorized"]) == (
        "processed", 2380, TOTAL - 2380,
    )  # fmt: skip
    assert quantities(after) == [(0, 2, 0), (0, 0, 0), (0, 0, 0)]
    open_payment = payment(papi, inv["payment"])
    assert (open_payment["status"], open_payment["captured"]) == ("authorized", False)
    assert (open_payment["amount_received"], open_payment["amount_authorized"]) == (
        2380, TOTAL - 2380,
    )  # fmt: skip
    assert kinds_after_payment(papi, inv["id"]) == [
        "delivery.created", "invoice.payment_received", "payment.updated", "delivery.succeeded",
    ]  # fmt: skip
    # One Tea is cancelled; the rest is delivered: Mug 1190, the other Tea 356, Card 199.
    cancelled(papi, inv["id"], {"line_items": take(inv, 0, 1)})
    rest = delivered(papi, inv["id"])
    assert rest["amount"] == 1190 + 356 + 199
    final = rest["invoice"]
    assert (final["status"], final["amount"], final["amount_paid"], final["amount_due"]) == (
        "processed", TOTAL - 357, TOTAL - 357, 0,
    )  # fmt: skip
    assert (final["amount_cancelled"], final["amount_authorized"]) == (357, 0)
    assert quantities(final) == [(0, 3, 0), (1, 1, 0), (0, 1, 0)]
    # The shares taken of each line, by deliveries and cancellations, add up to its amount.
    taken: dict[str, int] = {}
    for kind in ("deliveries", "cancellations"):
        for row in papi.get(f"/v1/invoices/{inv['id']}/{kind}").json()["data"]:
            for item in row["line_items"]:
                taken[item["line_item"]] = taken.get(item["line_item"], 0) + item["amount"]
    assert taken == {line["id"]: line["amount"] for line in final["line_items"]}
    done = payment(papi, inv["payment"])
    assert (done["status"], done["amount_received"]) == ("succeeded", TOTAL - 357)
    charge = gateway.charges(inv["payment"])
    assert charge is not None
    assert (charge["state"], charge["amount_captured"], charge["amount_cancelled"]) == (
        "succeeded", TOTAL - 357, 357,
    )  # fmt: skip
    second, first_capture = ledger(papi, inv["id"])
    assert_capture(first_capture, 2380)
    assert_capture(second, 1745)
    listed = papi.get(f"/v1/invoices/{inv['id']}/deliveries").json()["data"]
    assert [d["amount"] for d in listed] == [1745, 2380]
    assert_verified(db, papi.merchant.id)


def test_deliveries_by_amount(papi: Api, db: Database) -> None:
    inv = authorised(papi, amount=5000, currency="JPY")
    first = delivered(papi, inv["id"], {"amount": 2000})
    assert (first["amount"], first["currency"], first["line_items"]) == (2000, "JPY", [])
    assert (first["invoice"]["amount_paid"], first["invoice"]["amount_authorized"]) == (2000, 3000)
    before = full_state(db, papi.merchant.id)
    body = problem(deliver(papi, inv["id"], {"amount": 3001}), 422,
                   "delivery_exceeds_deliverable")  # fmt: skip
    assert body["deliverable"] == 3000
    assert full_state(db, papi.merchant.id) == before
    rest = delivered(papi, inv["id"])
    assert rest["amount"] == 3000
    assert (rest["invoice"]["amount_paid"], rest["invoice"]["amount_due"]) == (5000, 0)
    assert payment(papi, inv["payment"])["status"] == "succeeded"
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["capture", "capture"]
    assert_verified(db, papi.merchant.id)


def test_refunds_after_a_partial_delivery(papi: Api, db: Database, gateway: SandboxGateway) -> None:
    inv = authorised(papi)
    delivered(papi, inv["id"], {"line_items": take(inv, 1)})  # 1190 captured
    too_much = papi.post(f"/v1/invoices/{inv['id']}/refunds", json={"amount": 1191})
    problem(too_much, 422, "refund_exceeds_refundable")
    response = papi.post(f"/v1/invoices/{inv['id']}/refunds", json={"amount": 500})
    assert response.status_code == 201, response.text
    refund = response.json()
    assert (refund["status"], refund["payment"]) == ("succeeded", inv["payment"])
    after = refund["invoice"]
    assert (after["status"], after["amount_paid"], after["amount_refunded"]) == (
        "partially_refunded", 1190, 500,
    )  # fmt: skip
    charge = gateway.charges(inv["payment"])
    assert charge is not None and (charge["amount_captured"], charge["amount_refunded"]) == (
        1190, 500,
    )  # fmt: skip
    # Deliveries need a processed invoice; the undelivered rest can still be released.
    before = full_state(db, papi.merchant.id)
    body = problem(deliver(papi, inv["id"]), 409, "invoice_not_deliverable")
    assert body["invoice_status"] == "partially_refunded"
    assert full_state(db, papi.merchant.id) == before
    rest = cancelled(papi, inv["id"])
    assert rest["amount"] == TOTAL - 1190
    final = rest["invoice"]
    assert (final["status"], final["amount"], final["amount_authorized"]) == (
        "partially_refunded", 1190, 0,
    )  # fmt: skip
    assert payment(papi, inv["payment"])["status"] == "succeeded"
    kinds = [t["kind"] for t in ledger(papi, inv["id"])]
    assert kinds == ["refund", "capture"]
    assert_verified(db, papi.merchant.id)


def test_undeliverable_invoices_change_nothing(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    unpaid = papi.create_invoice(amount=3000)
    draft = papi.create_invoice(amount=3000, status="draft")
    card_paid = papi.create_invoice(amount=3000)
    paid(papi, card_paid["id"], card(SUCCEEDS))
    transfer = papi.create_invoice(amount=3000)
    paid(papi, transfer["id"], BANK_TRANSFER)
    pending = papi.create_invoice(amount=3000)
    paid(papi, pending["id"], card(PENDING))
    before = full_state(db, papi.merchant.id)
    for invoice_id, status in ((unpaid["id"], "created"), (draft["id"], "draft"),
                               (card_paid["id"], "processed"),
                               (transfer["id"], "process_pending"),
                               (pending["id"], "process_pending")):  # fmt: skip
        body = problem(deliver(papi, invoice_id), 409, "invoice_not_deliverable")
        assert body["invoice_status"] == status
    assert full_state(db, papi.merchant.id) == before


@pytest.mark.parametrize(
    ("body", "code", "extra"),
    [
        ({"amount": TOTAL + 1}, "delivery_exceeds_deliverable", {"deliverable": TOTAL}),
        ({"line_items": [{"line_item": "li_nope", "quantity": 1}]}, "line_item_not_found",
         {"line_item": "li_nope"}),
        ("tea:3", "line_item_quantity_exceeded", {"available": 2}),
    ],
)  # fmt: skip
def test_over_delivery_changes_nothing(
    papi: Api, db: Database, gateway: SandboxGateway, body: Any, code: str,
    extra: dict[str, Any],
) -> None:  # fmt: skip
    inv = authorised(papi)
    if body == "tea:3":
        body = {"line_items": take(inv, 0, 3)}
    before = full_state(db, papi.merchant.id)
    charge = gateway.charges(inv["payment"])
    found = problem(deliver(papi, inv["id"], body), 422, code)
    for key, value in extra.items():
        assert found[key] == value
    assert full_state(db, papi.merchant.id) == before
    assert gateway.charges(inv["payment"]) == charge


def test_cancelled_units_cannot_be_delivered(papi: Api, db: Database) -> None:
    inv = authorised(papi)
    cancelled(papi, inv["id"], {"line_items": take(inv, 0, 0, 1)})
    before = full_state(db, papi.merchant.id)
    body = problem(deliver(papi, inv["id"], {"line_items": take(inv, 0, 0, 1)}), 422,
                   "line_item_quantity_exceeded")  # fmt: skip
    assert body["available"] == 0
    assert full_state(db, papi.merchant.id) == before


def test_a_refused_capture_fails_the_delivery(
    papi: Api, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = authorised(papi)

    def refuse(self: SandboxGateway, payment_id: str, amount: int, operation_id: str) -> Any:
        raise ProviderError("The capture was refused.", code="invalid_request")

    with monkeypatch.context() as patch:
        patch.setattr(SandboxGateway, "capture", refuse)
        document = delivered(papi, inv["id"], {"line_items": take(inv, 1)})
    assert (document["status"], document["amount"]) == ("failed", 1190)
    assert document["error"] == {"code": "invalid_request", "message": "The capture was refused."}
    after = document["invoice"]
    assert (after["amount_paid"], after["amount_authorized"]) == (0, TOTAL)
    assert quantities(after) == [(0, 0, 0), (0, 0, 0), (0, 0, 0)]
    assert payment(papi, inv["payment"])["status"] == "authorized"
    assert ledger(papi, inv["id"]) == []
    assert kinds_after_payment(papi, inv["id"]) == ["delivery.created", "delivery.failed"]
    # The units are still open: deliver them again.
    again = delivered(papi, inv["id"], {"line_items": take(inv, 1)})
    assert (again["status"], again["invoice"]["amount_paid"]) == ("succeeded", 1190)
    assert_verified(db, papi.merchant.id)


def test_deliveries_of_another_merchant_or_mode_are_not_found(
    papi: Api, pay_client: Any, merchants: Any, db: Database, gateway: SandboxGateway
) -> None:
    inv = authorised(papi)
    other = Api(pay_client, merchants.create())
    before = full_state(db, papi.merchant.id)
    for api in (other, papi.as_live()):
        problem(deliver(api, inv["id"]), 404, "invoice_not_found")
        problem(api.get(f"/v1/invoices/{inv['id']}/deliveries"), 404, "invoice_not_found")
    assert full_state(db, papi.merchant.id) == before
    charge = gateway.charges(inv["payment"])
    assert charge is not None and charge["amount_captured"] == 0


def test_an_idempotent_delivery_is_made_once(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    inv = authorised(papi)
    headers = {"Idempotency-Key": "deliver-once"}
    body = {"line_items": take(inv, 2)}
    first = deliver(papi, inv["id"], body, headers=headers)
    second = deliver(papi, inv["id"], body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert invoice(papi, inv["id"])["amount_paid"] == 2380
    charge = gateway.charges(inv["payment"])
    assert charge is not None and charge["amount_captured"] == 2380
    assert len(papi.get(f"/v1/invoices/{inv['id']}/deliveries").json()["data"]) == 1
    assert len(ledger(papi, inv["id"])) == 1
    problem(deliver(papi, inv["id"], {"amount": 5}, headers=headers), 422,
            "idempotency_key_reused")  # fmt: skip
    assert_verified(db, papi.merchant.id)
