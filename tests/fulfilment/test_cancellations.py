"""Cancellations (DESIGN §3, §4): unpaid invoices, and authorised ones before delivery."""

from typing import Any

import pytest

from quittance.db.uow import Database
from quittance.providers.sandbox import SandboxGateway
from tests.factories import Api
from tests.fulfilment.helpers import (
    LINES,
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
    SUCCEEDS,
    card,
    events,
    invoice,
    paid,
    payment,
    problem,
)


def test_a_full_cancellation_releases_the_whole_authorisation(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    inv = authorised(papi)
    document = cancelled(papi, inv["id"], {"reason": "Order withdrawn"})
    ids = line_ids(inv)
    assert (document["status"], document["amount"], document["currency"]) == (
        "succeeded", TOTAL, "EUR",
    )  # fmt: skip
    assert (document["payment"], document["reason"], document["error"]) == (
        inv["payment"], "Order withdrawn", None,
    )  # fmt: skip
    assert document["line_items"] == [
        {"line_item": ids[0], "quantity": 3, "amount": 3570},
        {"line_item": ids[1], "quantity": 2, "amount": 713},
        {"line_item": ids[2], "quantity": 1, "amount": 199},
    ]
    after = document["invoice"]
    # A full cancellation ends the invoice; `amount` stays what was owed, as for unpaid ones.
    assert (after["status"], after["amount"], after["amount_cancelled"]) == ("cancelled", TOTAL, 0)
    assert (after["amount_authorized"], after["amount_paid"]) == (0, 0)
    assert quantities(after) == [(3, 0, 0), (2, 0, 0), (1, 0, 0)]
    assert invoice(papi, inv["id"]) == after
    released = payment(papi, inv["payment"])
    assert (released["status"], released["amount_authorized"], released["amount_received"]) == (
        "cancelled", 0, 0,
    )  # fmt: skip
    charge = gateway.charges(inv["payment"])
    assert charge is not None
    assert (charge["state"], charge["amount_cancelled"], charge["amount_captured"]) == (
        "cancelled", TOTAL, 0,
    )  # fmt: skip
    assert kinds_after_payment(papi, inv["id"]) == [
        "cancellation.created", "payment.cancelled", "invoice.cancelled",
        "cancellation.succeeded",
    ]  # fmt: skip
    assert status_chain(papi, inv["id"])[-1] == ("processed", "cancelled", "cancel_authorization")
    assert ledger(papi, inv["id"]) == []  # nothing was captured, nothing is posted
    listed = papi.get(f"/v1/invoices/{inv['id']}/cancellations").json()
    assert listed["data"] == [{**document, "invoice": inv["id"]}]
    # Nothing is left to cancel or deliver.
    before = full_state(db, papi.merchant.id)
    problem(cancel(papi, inv["id"]), 409, "invoice_not_cancellable")
    problem(deliver(papi, inv["id"]), 409, "invoice_not_deliverable")
    assert full_state(db, papi.merchant.id) == before
    assert_verified(db, papi.merchant.id)


def test_partial_cancellations_by_items_lower_the_amount(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    inv = authorised(papi)
    first = cancelled(papi, inv["id"], {"line_items": take(inv, 1, 1)})
    assert (first["status"], first["amount"]) == ("succeeded", 1190 + 357)
    after = first["invoice"]
    assert (after["status"], after["amount"], after["amount_cancelled"]) == (
        "processed", TOTAL - 1547, 1547,
    )  # fmt: skip
    assert (after["amount_authorized"], after["amount_paid"], after["amount_due"]) == (
        TOTAL - 1547, 0, TOTAL - 1547,
    )  # fmt: skip
    assert quantities(after) == [(1, 0, 0), (1, 0, 0), (0, 0, 0)]
    still = payment(papi, inv["payment"])
    assert (still["status"], still["amount_authorized"]) == ("authorized", TOTAL - 1547)
    charge = gateway.charges(inv["payment"])
    assert charge is not None and (charge["state"], charge["amount_cancelled"]) == (
        "authorized", 1547,
    )  # fmt: skip
    assert kinds_after_payment(papi, inv["id"]) == [
        "cancellation.created", "invoice.partially_cancelled", "payment.updated",
        "cancellation.succeeded",
    ]  # fmt: skip
    partial = [e for e in events(papi, inv["id"]) if e["type"] == "invoice.partially_cancelled"]
    assert partial[0]["data"]["cancellation"] == first["id"]
    assert partial[0]["data"]["amount"] == 1547
    assert partial[0]["data"]["object"]["amount"] == TOTAL - 1547

    # The second unit of Tea is worth what is left of the line: 713 - 357.
    second = cancelled(papi, inv["id"], {"line_items": take(inv, 0, 1)})
    assert second["amount"] == 356
    # The rest: everything still open; nothing was captured, so the invoice is cancelled.
    rest = cancelled(papi, inv["id"])
    assert rest["amount"] == 2 * 1190 + 199
    assert rest["line_items"] == [
        {"line_item": line_ids(inv)[0], "quantity": 2, "amount": 2380},
        {"line_item": line_ids(inv)[2], "quantity": 1, "amount": 199},
    ]
    final = rest["invoice"]
    assert (final["status"], final["amount"], final["amount_cancelled"]) == (
        "cancelled", 2579, 1903,
    )  # fmt: skip
    assert quantities(final) == [(3, 0, 0), (2, 0, 0), (1, 0, 0)]
    assert payment(papi, inv["payment"])["status"] == "cancelled"
    charge = gateway.charges(inv["payment"])
    assert charge is not None and (charge["state"], charge["amount_cancelled"]) == (
        "cancelled", TOTAL,
    )  # fmt: skip
    listed = papi.get(f"/v1/invoices/{inv['id']}/cancellations").json()["data"]
    assert [c["amount"] for c in listed] == [2579, 356, 1547]  # newest first
    assert status_chain(papi, inv["id"])[-1] == ("processed", "cancelled", "cancel_authorization")
    assert ledger(papi, inv["id"]) == []
    assert_verified(db, papi.merchant.id)


def test_a_partial_cancellation_by_amount(papi: Api, db: Database) -> None:
    inv = authorised(papi, amount=5000)
    document = cancelled(papi, inv["id"], {"amount": 1200})
    assert (document["amount"], document["line_items"]) == (1200, [])
    after = document["invoice"]
    assert (after["status"], after["amount"], after["amount_cancelled"]) == (
        "processed", 3800, 1200,
    )  # fmt: skip
    assert after["amount_authorized"] == 3800
    # Cancelling exactly what is left cancels the invoice.
    rest = cancelled(papi, inv["id"], {"amount": 3800})
    assert (rest["invoice"]["status"], rest["invoice"]["amount_authorized"]) == ("cancelled", 0)
    assert ledger(papi, inv["id"]) == []
    assert_verified(db, papi.merchant.id)


@pytest.mark.parametrize("draft", [False, True])
def test_an_unpaid_invoice_is_cancelled_like_cancel(papi: Api, db: Database, draft: bool) -> None:
    created = papi.create_invoice(amount=2500, **({"status": "draft"} if draft else {}))
    document = cancelled(papi, created["id"])
    assert (document["status"], document["amount"], document["payment"]) == (
        "succeeded", 2500, None,
    )  # fmt: skip
    after = document["invoice"]
    assert (after["status"], after["amount"], after["amount_cancelled"]) == ("cancelled", 2500, 0)
    assert [e["type"] for e in events(papi, created["id"])] == [
        "invoice.created", "invoice.cancelled", "cancellation.succeeded",
    ]  # fmt: skip
    source = "draft" if draft else "created"
    assert status_chain(papi, created["id"])[-1] == (source, "cancelled", "cancel")
    before = full_state(db, papi.merchant.id)
    problem(cancel(papi, created["id"]), 409, "invoice_not_cancellable")
    assert full_state(db, papi.merchant.id) == before


def test_an_unpaid_invoice_is_cancelled_in_part(papi: Api, db: Database) -> None:
    created = papi.post("/v1/invoices", json={"currency": "EUR", "line_items": LINES}).json()
    document = cancelled(papi, created["id"], {"line_items": take(created, 1)})
    assert (document["status"], document["amount"], document["payment"]) == (
        "succeeded", 1190, None,
    )  # fmt: skip
    after = document["invoice"]
    assert (after["status"], after["amount"], after["amount_cancelled"], after["amount_due"]) == (
        "created", TOTAL - 1190, 1190, TOTAL - 1190,
    )  # fmt: skip
    assert quantities(after) == [(1, 0, 0), (0, 0, 0), (0, 0, 0)]
    assert [e["type"] for e in events(papi, created["id"])] == [
        "invoice.created", "invoice.partially_cancelled", "cancellation.succeeded",
    ]  # fmt: skip
    # The payer is charged the lowered amount.
    charged = paid(papi, created["id"], card(SUCCEEDS))
    assert (charged["amount"], charged["invoice"]["status"]) == (TOTAL - 1190, "processed")
    assert charged["invoice"]["amount_paid"] == TOTAL - 1190
    # Paid: no more cancellations; refunds instead.
    before = full_state(db, papi.merchant.id)
    body = problem(cancel(papi, created["id"], {"amount": 100}), 409, "invoice_not_cancellable")
    assert body["invoice_status"] == "processed"
    assert full_state(db, papi.merchant.id) == before
    assert_verified(db, papi.merchant.id)


def test_cancelling_an_unpaid_invoice_by_its_whole_amount_cancels_it(papi: Api) -> None:
    created = papi.create_invoice(amount=900)
    document = cancelled(papi, created["id"], {"amount": 900})
    assert (document["invoice"]["status"], document["invoice"]["amount"]) == ("cancelled", 900)


def test_an_unpaid_cancellation_beyond_the_amount_changes_nothing(papi: Api, db: Database) -> None:
    created = papi.create_invoice(amount=900)
    before = full_state(db, papi.merchant.id)
    body = problem(cancel(papi, created["id"], {"amount": 901}), 422,
                   "cancellation_exceeds_cancellable")  # fmt: skip
    assert body["cancellable"] == 900
    assert full_state(db, papi.merchant.id) == before


@pytest.mark.parametrize(
    ("body", "status", "code", "extra"),
    [
        ({"amount": TOTAL + 1}, 422, "cancellation_exceeds_cancellable", {"cancellable": TOTAL}),
        ({"line_items": [{"line_item": "li_nope", "quantity": 1}]}, 422, "line_item_not_found",
         {"line_item": "li_nope"}),
        ("mug:4", 422, "line_item_quantity_exceeded", {"available": 3}),
        ("mug:2,mug:2", 422, "line_item_quantity_exceeded", {"available": 1}),
    ],
)  # fmt: skip
def test_refused_cancellations_change_nothing(
    papi: Api, db: Database, gateway: SandboxGateway, body: Any, status: int, code: str,
    extra: dict[str, Any],
) -> None:  # fmt: skip
    inv = authorised(papi)
    if isinstance(body, str):  # units of the Mug line
        mug = line_ids(inv)[0]
        body = {"line_items": [{"line_item": mug, "quantity": int(part.split(":")[1])}
                               for part in body.split(",")]}  # fmt: skip
    before = full_state(db, papi.merchant.id)
    charge = gateway.charges(inv["payment"])
    found = problem(cancel(papi, inv["id"], body), status, code)
    for key, value in extra.items():
        assert found[key] == value
    assert full_state(db, papi.merchant.id) == before
    assert gateway.charges(inv["payment"]) == charge


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 100, "line_items": [{"line_item": "li_x", "quantity": 1}]},
        {"line_items": [{"line_item": "li_x", "quantity": 0}]},
        {"line_items": []},
        {"amount": 0},
        {"amount": 10.5},
        {"reason": "x" * 501},
        {"unknown": 1},
    ],
)
def test_invalid_cancellation_bodies_change_nothing(
    papi: Api, db: Database, body: dict[str, Any]
) -> None:
    inv = authorised(papi)
    before = full_state(db, papi.merchant.id)
    response = cancel(papi, inv["id"], body)
    assert response.status_code == 422, response.text
    assert full_state(db, papi.merchant.id) == before


def test_invoices_with_captured_money_need_refunds(papi: Api, db: Database) -> None:
    card_paid = papi.create_invoice(amount=3000)
    paid(papi, card_paid["id"], card(SUCCEEDS))
    partly = papi.create_invoice(amount=3000)
    transfer = paid(papi, partly["id"], BANK_TRANSFER)
    papi.post("/v1/test_helpers/bank_transfers", json={"payment": transfer["id"], "amount": 1000})
    expired = papi.create_invoice(amount=3000)
    papi.post(f"/v1/test_helpers/invoices/{expired['id']}/expire")
    before = full_state(db, papi.merchant.id)
    for invoice_id, status in ((card_paid["id"], "processed"),
                               (partly["id"], "partially_processed"),
                               (expired["id"], "expired")):  # fmt: skip
        body = problem(cancel(papi, invoice_id), 409, "invoice_not_cancellable")
        assert body["invoice_status"] == status
    assert full_state(db, papi.merchant.id) == before


def test_the_delivered_part_cannot_be_cancelled(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    inv = authorised(papi)
    delivered(papi, inv["id"], {"line_items": take(inv, 2)})
    before = full_state(db, papi.merchant.id)
    charge = gateway.charges(inv["payment"])
    body = problem(cancel(papi, inv["id"], {"line_items": take(inv, 2)}), 422,
                   "line_item_quantity_exceeded")  # fmt: skip
    assert body["available"] == 1
    body = problem(cancel(papi, inv["id"], {"amount": TOTAL - 2380 + 1}), 422,
                   "cancellation_exceeds_cancellable")  # fmt: skip
    assert body["cancellable"] == TOTAL - 2380
    assert full_state(db, papi.merchant.id) == before
    assert gateway.charges(inv["payment"]) == charge
    # Cancelling the rest keeps the delivered part: the invoice is paid for what was delivered.
    rest = cancelled(papi, inv["id"])
    assert rest["amount"] == TOTAL - 2380
    after = rest["invoice"]
    assert (after["status"], after["amount"], after["amount_paid"], after["amount_due"]) == (
        "processed", 2380, 2380, 0,
    )  # fmt: skip
    assert (after["amount_cancelled"], after["amount_authorized"]) == (TOTAL - 2380, 0)
    assert quantities(after) == [(1, 2, 0), (2, 0, 0), (1, 0, 0)]
    done = payment(papi, inv["payment"])
    assert (done["status"], done["captured"], done["amount_received"]) == (
        "succeeded", True, 2380,
    )  # fmt: skip
    assert kinds_after_payment(papi, inv["id"])[-4:] == [
        "cancellation.created", "invoice.partially_cancelled", "payment.succeeded",
        "cancellation.succeeded",
    ]  # fmt: skip
    assert_verified(db, papi.merchant.id)


def test_cancellations_of_another_merchant_or_mode_are_not_found(
    papi: Api, pay_client: Any, merchants: Any, db: Database
) -> None:
    inv = authorised(papi)
    other = Api(pay_client, merchants.create())
    before = full_state(db, papi.merchant.id)
    for api in (other, papi.as_live()):
        problem(cancel(api, inv["id"]), 404, "invoice_not_found")
        problem(api.get(f"/v1/invoices/{inv['id']}/cancellations"), 404, "invoice_not_found")
    assert full_state(db, papi.merchant.id) == before


def test_an_idempotent_cancellation_is_made_once(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    inv = authorised(papi)
    headers = {"Idempotency-Key": "cancel-once"}
    body = {"line_items": take(inv, 1)}
    first = cancel(papi, inv["id"], body, headers=headers)
    second = cancel(papi, inv["id"], body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert invoice(papi, inv["id"])["amount_cancelled"] == 1190
    charge = gateway.charges(inv["payment"])
    assert charge is not None and charge["amount_cancelled"] == 1190
    listed = papi.get(f"/v1/invoices/{inv['id']}/cancellations").json()["data"]
    assert len(listed) == 1
    reused = cancel(papi, inv["id"], {"line_items": take(inv, 2)}, headers=headers)
    problem(reused, 422, "idempotency_key_reused")
