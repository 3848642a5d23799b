"""Refunds by line items: cumulative shares, the last units take what remains, units held."""

from typing import Any

import pytest

from quittance.db.uow import Database
from tests.factories import Api
from tests.payment.helpers import INVOICE_METHOD, SUCCEEDS, card, invoice, paid, problem
from tests.refund.helpers import (
    assert_verified,
    full_state,
    refund,
    refund_entries,
    refunded,
    two_payments,
    units_refunded,
)

# Mug: 3 x 333 at 19 % = 999 + 189.81 -> 1189 (units 396, 397, 396); Book: 2 x 1250 = 2500.
LINES: list[dict[str, Any]] = [
    {"description": "Mug", "quantity": 3, "unit_amount": 333, "tax_rate": "19"},
    {"description": "Book", "quantity": 2, "unit_amount": 1250},
]


def paid_lines(api: Api, lines: list[dict[str, Any]], currency: str = "EUR") -> dict[str, Any]:
    response = api.post("/v1/invoices", json={"currency": currency, "line_items": lines})
    assert response.status_code == 201, response.text
    payment = paid(api, response.json()["id"], card(SUCCEEDS))
    assert payment["status"] == "succeeded"
    return payment["invoice"]  # type: ignore[no-any-return]


def items(inv: dict[str, Any], *quantities: int) -> list[dict[str, Any]]:
    """`quantities[n]` units of line n (zeros left out)."""
    return [
        {"line_item": line["id"], "quantity": quantity}
        for line, quantity in zip(inv["line_items"], quantities, strict=False)
        if quantity
    ]


def test_refunds_by_items_take_cumulative_shares(papi: Api, db: Database) -> None:
    inv = paid_lines(papi, LINES)
    mug, book = (line["id"] for line in inv["line_items"])
    assert inv["amount"] == 1189 + 2500
    first = refunded(papi, inv["id"], line_items=items(inv, 1))
    assert (first["amount"], first["status"]) == (396, "succeeded")
    assert first["line_items"] == [{"line_item": mug, "quantity": 1, "amount": 396}]
    assert first["invoice"]["status"] == "partially_refunded"
    assert [line["quantity_refunded"] for line in first["invoice"]["line_items"]] == [1, 0]
    second = refunded(papi, inv["id"], line_items=items(inv, 1, 1))
    assert second["line_items"] == [
        {"line_item": mug, "quantity": 1, "amount": 397},
        {"line_item": book, "quantity": 1, "amount": 1250},
    ]
    assert second["amount"] == 1647
    # The mug's last unit takes exactly what is left of it: 1189 - 396 - 397.
    third = refunded(papi, inv["id"], line_items=items(inv, 1))
    assert third["amount"] == 396
    assert units_refunded(db, inv["id"]) == [3, 1]
    before = full_state(db, papi.merchant.id)
    body = problem(refund(papi, inv["id"], line_items=items(inv, 1)), 422,
                   "refund_quantity_exceeds_refundable")  # fmt: skip
    assert (body["line_item"], body["refundable_quantity"]) == (mug, 0)
    assert full_state(db, papi.merchant.id) == before
    last = refunded(papi, inv["id"], line_items=items(inv, 0, 1))
    assert last["amount"] == 1250
    after = last["invoice"]
    assert (after["status"], after["amount_refunded"]) == ("refunded", inv["amount"])
    assert [line["quantity_refunded"] for line in after["line_items"]] == [3, 2]
    assert refund_entries(papi, last["id"], inv["id"])[0] == {
        "account": "merchant_balance", "currency": "EUR", "amount": 1250,
    }  # fmt: skip
    assert_verified(db, papi.merchant.id)


@pytest.mark.parametrize(
    ("currency", "line", "steps", "amounts"),
    [
        # 7 x 99 at 19 % = 693 + 131.67 -> 825 yen; first n units: 118, 236, 354, 471, 589, 707.
        ("JPY", {"quantity": 7, "unit_amount": 99, "tax_rate": "19"}, [2, 4, 1], [236, 471, 118]),
        # 3 x 1.235 KWD at 7.5 % = 3.705 + 0.277875 -> 3.983; first n units: 1.328, 2.655.
        ("KWD", {"quantity": 3, "unit_amount": 1235, "tax_rate": "7.5"}, [1, 1, 1],
         [1328, 1327, 1328]),
        # 4 x 10 cents at 12.5 % = 45; first n units: 11.25 -> 11, 22.5 -> 23 (half up), 33.75.
        ("EUR", {"quantity": 4, "unit_amount": 10, "tax_rate": "12.5"}, [1, 1, 2], [11, 12, 22]),
    ],
    ids=["JPY", "KWD", "EUR-half-up"],
)  # fmt: skip
def test_shares_in_other_currencies_add_up_to_the_line(
    papi: Api, db: Database, currency: str, line: dict[str, Any], steps: list[int],
    amounts: list[int],
) -> None:  # fmt: skip
    inv = paid_lines(papi, [{"description": "Item", **line}], currency)
    got = [refunded(papi, inv["id"], line_items=items(inv, step))["amount"] for step in steps]
    assert got == amounts
    assert sum(got) == inv["amount"]
    after = invoice(papi, inv["id"])
    assert (after["status"], after["amount_refunded"]) == ("refunded", inv["amount"])
    assert_verified(db, papi.merchant.id)


def test_cancelled_units_come_first(papi: Api, db: Database) -> None:
    """Units cancelled before payment are not the payer's; refunds take the ones after them."""
    response = papi.post("/v1/invoices", json={"currency": "EUR", "line_items": LINES})
    created = response.json()
    mug = created["line_items"][0]["id"]
    cancel = papi.post(f"/v1/invoices/{created['id']}/cancellations",
                       json={"line_items": [{"line_item": mug, "quantity": 1}]})  # fmt: skip
    assert cancel.status_code == 201, cancel.text
    assert cancel.json()["amount"] == 396
    inv = paid(papi, created["id"], card(SUCCEEDS))["invoice"]
    assert inv["amount_paid"] == 1189 - 396 + 2500
    before = full_state(db, papi.merchant.id)
    body = problem(refund(papi, inv["id"], line_items=items(inv, 3)), 422,
                   "refund_quantity_exceeds_refundable")  # fmt: skip
    assert body["refundable_quantity"] == 2
    assert full_state(db, papi.merchant.id) == before
    both = refunded(papi, inv["id"], line_items=items(inv, 2))
    assert both["amount"] == 1189 - 396  # exactly what is left of the line
    assert units_refunded(db, inv["id"]) == [2, 0]
    assert_verified(db, papi.merchant.id)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"amount": 100, "line_items": "MUG1"}, 422, "amount_and_line_items"),
        ({"line_items": "MUG1+MUG1"}, 422, "duplicate_items"),
        ({"line_items": [{"line_item": "MUG", "quantity": 0}]}, 422, "out_of_range"),
        ({"line_items": [{"line_item": "MUG", "quantity": 1.0}]}, 422, "invalid_type"),
        ({"line_items": [{"line_item": "MUG"}]}, 422, "field_required"),
        ({"line_items": []}, 422, "too_few_items"),
        ({"line_items": [{"line_item": "li_unknown", "quantity": 1}]}, 422,
         "line_item_not_found"),
        ({"line_items": [{"line_item": "MUG", "quantity": 4}]}, 422,
         "refund_quantity_exceeds_refundable"),
        ({"line_items": "OTHER"}, 422, "line_item_not_found"),
        ({"refund_commission": "yes"}, 422, "invalid_type"),
    ],
    ids=["with-amount", "twice", "zero", "float", "no-quantity", "empty", "unknown", "too-many",
         "other-invoice", "commission-type"],
)  # fmt: skip
def test_refusals_change_nothing(
    papi: Api, db: Database, body: dict[str, Any], status: int, code: str
) -> None:
    inv = paid_lines(papi, LINES)
    other = paid_lines(papi, LINES)
    mug = inv["line_items"][0]["id"]
    lines = body.get("line_items")
    if lines == "MUG1":
        body = {**body, "line_items": [{"line_item": mug, "quantity": 1}]}
    elif lines == "MUG1+MUG1":
        body = {**body, "line_items": [{"line_item": mug, "quantity": 1}] * 2}
    elif lines == "OTHER":
        body = {**body, "line_items": [{"line_item": other["line_items"][0]["id"],
                                        "quantity": 1}]}  # fmt: skip
    elif isinstance(lines, list):
        body = {**body, "line_items": [
            {**item, "line_item": mug} if item.get("line_item") == "MUG" else item
            for item in lines
        ]}  # fmt: skip
    before = full_state(db, papi.merchant.id)
    problem(refund(papi, inv["id"], **body), status, code)
    assert full_state(db, papi.merchant.id) == before


def test_an_invoice_without_lines_refuses_items(papi: Api, db: Database) -> None:
    created = papi.create_invoice(amount=2000)
    paid(papi, created["id"], card(SUCCEEDS))
    before = full_state(db, papi.merchant.id)
    body = problem(refund(papi, created["id"], line_items=[{"line_item": "li_x", "quantity": 1}]),
                   422, "line_item_not_found")  # fmt: skip
    assert body["line_item"] == "li_x"
    assert full_state(db, papi.merchant.id) == before


def test_a_failed_refund_releases_its_units(papi: Api, db: Database) -> None:
    inv = paid_lines(papi, [{"description": "Lamp", "quantity": 2, "unit_amount": 702}])
    failed = refunded(papi, inv["id"], line_items=items(inv, 1))  # 702 ends in 02: it fails
    assert failed["status"] == "failed"
    assert failed["line_items"][0]["quantity"] == 1
    assert failed["invoice"]["status"] == "refund_failed"
    assert units_refunded(db, inv["id"]) == [0]
    again = refunded(papi, inv["id"], line_items=items(inv, 2))
    assert (again["amount"], again["status"]) == (1404, "succeeded")
    assert units_refunded(db, inv["id"]) == [2]
    assert_verified(db, papi.merchant.id)


@pytest.mark.parametrize("settle", [True, False])
def test_a_pending_refund_holds_its_units(papi: Api, db: Database, settle: bool) -> None:
    inv = paid_lines(papi, [{"description": "Lamp", "quantity": 3, "unit_amount": 1201}])
    pending = refunded(papi, inv["id"], line_items=items(inv, 1))  # 1201 ends in 01: pending
    assert pending["status"] == "pending"
    assert units_refunded(db, inv["id"]) == [1]
    action = "settle" if settle else "fail"
    response = papi.post(f"/v1/test_helpers/refunds/{pending['id']}/{action}")
    assert response.status_code == 200, response.text
    assert units_refunded(db, inv["id"]) == ([1] if settle else [0])
    assert response.json()["invoice"]["line_items"][0]["quantity_refunded"] == (1 if settle else 0)
    assert_verified(db, papi.merchant.id)


def test_items_paid_by_two_payments_are_split(papi: Api, db: Database) -> None:
    inv = two_payments(papi, transfer=1000, lines=LINES)  # 1000 by transfer, 2689 by card
    bank, cards = inv["payments"]
    document = refunded(papi, inv["id"], line_items=items(inv, 3, 2))
    assert [(r["payment"], r["amount"]) for r in document["refunds"]] == [
        (cards, 2689), (bank, 1000),
    ]  # fmt: skip
    # The request's units are recorded once, on its first refund.
    assert [r["line_items"] is not None for r in document["refunds"]] == [True, False]
    assert [e["amount"] for e in document["line_items"]] == [1189, 2500]
    assert document["invoice"]["status"] == "refunded"
    assert units_refunded(db, inv["id"]) == [3, 2]
    assert_verified(db, papi.merchant.id)


def test_delivered_units_give_back_what_their_deliveries_captured(papi: Api, db: Database) -> None:
    """Capture on delivery: a line's refunds share what its deliveries captured."""
    created = papi.post("/v1/invoices", json={"currency": "EUR", "line_items": LINES}).json()
    paid(papi, created["id"], INVOICE_METHOD)
    mug = created["line_items"][0]["id"]

    def step(kind: str, quantity: int) -> int:
        body = {"line_items": [{"line_item": mug, "quantity": quantity}]}
        response = papi.post(f"/v1/invoices/{created['id']}/{kind}", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "succeeded"
        return int(response.json()["amount"])

    # Units are taken in order: delivered (396), cancelled (397), delivered (396).
    assert [step("deliveries", 1), step("cancellations", 1), step("deliveries", 1)] == [
        396, 397, 396,
    ]  # fmt: skip
    inv = invoice(papi, created["id"])
    assert inv["amount_paid"] == 792
    before = full_state(db, papi.merchant.id)
    body = problem(refund(papi, inv["id"], line_items=items(inv, 0, 1)), 422,
                   "refund_quantity_exceeds_refundable")  # fmt: skip
    assert body["refundable_quantity"] == 0  # the books were not delivered
    assert full_state(db, papi.merchant.id) == before
    first = refunded(papi, inv["id"], line_items=items(inv, 1))
    second = refunded(papi, inv["id"], line_items=items(inv, 1))
    assert [first["amount"], second["amount"]] == [396, 396]
    after = second["invoice"]
    assert (after["amount_refunded"], after["amount_authorized"]) == (792, 2500)
    # Not `refunded` (final): the books are still authorised and may be delivered.
    assert after["status"] == "partially_refunded"
    assert units_refunded(db, inv["id"]) == [2, 0]
    assert_verified(db, papi.merchant.id)
