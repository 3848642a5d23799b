"""Shared helpers for the cancellation and delivery tests."""

import sqlite3
from typing import Any

import httpx
from sqlalchemy import select

from quittance.db.uow import Database
from quittance.models import (
    Cancellation,
    Delivery,
    InvoiceLineItem,
    LedgerEntry,
    LedgerTransaction,
    Refund,
)
from quittance.providers.sandbox import SandboxGateway
from tests.factories import Api
from tests.payment.helpers import INVOICE_METHOD, events, paid, state
from tests.payment.helpers import assert_verified as assert_verified
from tests.payment.helpers import ledger as ledger
from tests.payment.helpers import status_chain as status_chain

# Mug: 3 x 1000 at 19 % = 3570 (a unit's share: 1190); Tea: 2 x 333 at 7 % = 666 + 46.62 -> 713
# (the first unit 356.5 -> 357, the second 356); Card: 1 x 199 = 199. Total 4482.
LINES: list[dict[str, Any]] = [
    {"description": "Mug", "quantity": 3, "unit_amount": 1000, "tax_rate": "19"},
    {"description": "Tea", "quantity": 2, "unit_amount": 333, "tax_rate": "7"},
    {"description": "Card", "quantity": 1, "unit_amount": 199},
]
TOTAL = 3570 + 713 + 199


def authorised(api: Api, **fields: Any) -> dict[str, Any]:
    """An invoice (with LINES unless `amount` is given) paid by the sandbox invoice method."""
    if "amount" not in fields:
        fields.setdefault("line_items", LINES)
    body = {"currency": "EUR", **fields}
    response = api.post("/v1/invoices", json=body)
    assert response.status_code == 201, response.text
    payment = paid(api, response.json()["id"], INVOICE_METHOD)
    assert payment["status"] == "authorized"
    invoice: dict[str, Any] = payment["invoice"]
    assert (invoice["status"], invoice["amount_authorized"]) == ("processed", invoice["amount"])
    invoice["payment"] = payment["id"]
    return invoice


def line_ids(invoice: dict[str, Any]) -> list[str]:
    return [line["id"] for line in invoice["line_items"]]


def take(invoice: dict[str, Any], *quantities: int) -> list[dict[str, Any]]:
    """`line_items` for a request: `quantities[n]` units of line n (zero ones left out)."""
    return [
        {"line_item": line_id, "quantity": quantity}
        for line_id, quantity in zip(line_ids(invoice), quantities, strict=False)
        if quantity
    ]


def cancel(api: Api, invoice_id: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    return api.post(f"/v1/invoices/{invoice_id}/cancellations", json=body, **kwargs)


def deliver(api: Api, invoice_id: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    return api.post(f"/v1/invoices/{invoice_id}/deliveries", json=body, **kwargs)


def _created(response: httpx.Response, kind: str, invoice_id: str) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    assert document["object"] == kind
    assert document["invoice"]["id"] == invoice_id
    return document


def cancelled(api: Api, invoice_id: str, body: Any = None) -> dict[str, Any]:
    document = _created(cancel(api, invoice_id, body), "cancellation", invoice_id)
    assert document["id"].startswith("can_")
    return document


def delivered(api: Api, invoice_id: str, body: Any = None) -> dict[str, Any]:
    document = _created(deliver(api, invoice_id, body), "delivery", invoice_id)
    assert document["id"].startswith("dlv_")
    return document


def quantities(invoice: dict[str, Any]) -> list[tuple[int, int, int]]:
    """(cancelled, delivered, refunded) units of each line."""
    return [
        (line["quantity_cancelled"], line["quantity_delivered"], line["quantity_refunded"])
        for line in invoice["line_items"]
    ]


def full_state(db: Database, merchant_id: str) -> dict[str, Any]:
    """Everything a merchant stored: invoices, lines, events, payments, fulfilment, ledger."""
    with db.read() as session:

        def rows(model: Any) -> list[dict[str, Any]]:
            found = session.scalars(
                select(model).where(model.merchant_id == merchant_id).order_by(model.id)
            ).all()
            return [{c.key: getattr(r, c.key) for c in model.__mapper__.column_attrs}
                    for r in found]  # fmt: skip

        stored = {model.__name__: rows(model) for model in (
            InvoiceLineItem, Cancellation, Delivery, Refund, LedgerTransaction, LedgerEntry,
        )}  # fmt: skip
    return {**state(db, merchant_id), **stored}


def kinds_after_payment(api: Api, invoice_id: str) -> list[str]:
    """Event types after the invoice was authorised (`payment.authorized`)."""
    types = [event["type"] for event in events(api, invoice_id)]
    return types[types.index("payment.authorized") + 1 :]


def sandbox_operations(gateway: SandboxGateway, payment_id: str) -> list[tuple[str, str, int]]:
    """The captures and releases the sandbox carried out for a payment: (operation id, kind,
    amount), oldest first."""
    gateway.charges(payment_id)  # the store and its tables exist from here on
    with sqlite3.connect(gateway.path, timeout=30) as connection:
        rows = connection.execute(
            "SELECT operation_id, kind, amount FROM authorization_operations"
            " WHERE payment_id = ? ORDER BY created_at, rowid",
            (payment_id,),
        ).fetchall()
    return [(str(op), str(kind), int(amount)) for op, kind, amount in rows]
