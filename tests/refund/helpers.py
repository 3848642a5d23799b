"""Shared helpers for the refund tests: refund calls, stored state, ledger, status chains."""

from typing import Any

import httpx
from sqlalchemy import func, select

from quittance.db.uow import Database
from quittance.domain.ledger import Book, Refs, charge_commission
from quittance.ledger.service import post
from quittance.models import (
    Invoice,
    InvoiceLineItem,
    LedgerEntry,
    LedgerTransaction,
    Payment,
    Refund,
)
from tests.factories import Api
from tests.payment.helpers import (
    BANK_TRANSFER,
    SUCCEEDS,
    card,
    events,
    merchant_violations,
    paid,
    state,
)
from tests.payment.helpers import ledger as ledger
from tests.payment.helpers import status_chain as status_chain

CLEARING = "provider_clearing:sandbox"


def refund(api: Api, invoice_id: str, **body: Any) -> httpx.Response:
    return api.post(f"/v1/invoices/{invoice_id}/refunds", json=body)


def refunded(api: Api, invoice_id: str, **body: Any) -> dict[str, Any]:
    response = refund(api, invoice_id, **body)
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    assert document["object"] == "refund" and document["id"].startswith("re_")
    assert document["invoice"]["id"] == invoice_id
    first = {k: v for k, v in document.items() if k != "refunds"}
    assert document["refunds"][0] == {**first, "invoice": invoice_id}
    assert all(r["invoice"] == invoice_id for r in document["refunds"])
    return document


def paid_invoice(api: Api, amount: int = 5000, currency: str = "EUR") -> dict[str, Any]:
    created = api.create_invoice(amount=amount, currency=currency)
    payment = paid(api, created["id"], card(SUCCEEDS))
    assert payment["status"] == "succeeded"
    return payment["invoice"]  # type: ignore[no-any-return]


def full_state(db: Database, merchant_id: str) -> dict[str, Any]:
    """Everything stored, refunds, ledger rows and line items' refunded units included."""
    with db.read() as session:
        counts = {
            model.__name__: session.scalar(
                select(func.count()).where(model.merchant_id == merchant_id)
            )
            for model in (Refund, LedgerTransaction, LedgerEntry)
        }
        units = session.execute(
            select(InvoiceLineItem.id, InvoiceLineItem.quantity_refunded)
            .where(InvoiceLineItem.merchant_id == merchant_id)
            .order_by(InvoiceLineItem.id)
        ).all()
    return {**state(db, merchant_id), **counts, "units": [tuple(row) for row in units]}


def refund_events(api: Api, invoice_id: str) -> list[tuple[str, str, int]]:
    return [
        (e["type"], e["data"]["object"]["status"], e["data"]["object"]["amount"])
        for e in events(api, invoice_id)
        if e["type"].startswith("refund.")
    ]


def two_payments(
    api: Api, transfer: int, amount: int = 5000, lines: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """An invoice (of `amount`, or of `lines`) paid by a bank transfer of `transfer`, then by
    card for the rest. Returns the invoice with `payments`: [the transfer's, the card's]."""
    body: dict[str, Any] = {"currency": "EUR"}
    body.update({"line_items": lines} if lines is not None else {"amount": amount})
    response = api.post("/v1/invoices", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    bank = paid(api, created["id"], BANK_TRANSFER)
    response = api.post(
        "/v1/test_helpers/bank_transfers", json={"payment": bank["id"], "amount": transfer}
    )
    assert response.status_code == 200, response.text
    cards = paid(api, created["id"], card(SUCCEEDS))
    assert cards["status"] == "succeeded" and cards["amount"] == created["amount"] - transfer
    inv: dict[str, Any] = cards["invoice"]
    assert (inv["status"], inv["amount_paid"]) == ("processed", created["amount"])
    return {**inv, "payments": [bank["id"], cards["id"]]}


def set_commission(db: Database, payment_id: str, commission: int) -> None:
    """Charge a payment a commission, as fee schedules will: the payment's and the invoice's
    `commission`, and its posting (merchant balance debited, commission revenue credited)."""
    with db.write() as session:
        payment = session.get(Payment, payment_id)
        assert payment is not None
        payment.commission = commission
        invoice = session.get(Invoice, payment.invoice_id)
        assert invoice is not None
        invoice.commission += commission
        refs = Refs(invoice_id=invoice.id, payment_id=payment.id)
        book = Book(invoice.merchant_id, invoice.livemode)
        post(session, charge_commission(book, invoice.currency, commission, refs))


def units_refunded(db: Database, invoice_id: str) -> list[int]:
    """Each line's `quantity_refunded`, in line order."""
    with db.read() as session:
        return list(
            session.scalars(
                select(InvoiceLineItem.quantity_refunded)
                .where(InvoiceLineItem.invoice_id == invoice_id)
                .order_by(InvoiceLineItem.position)
            )
        )


def refund_entries(api: Api, refund_id: str, invoice_id: str) -> list[dict[str, Any]]:
    """The ledger entries of a refund's posting, sorted by account."""
    (posting,) = [t for t in ledger(api, invoice_id) if t["refund_id"] == refund_id]
    assert posting["kind"] == "refund"
    assert sum(e["amount"] for e in posting["entries"]) == 0
    return sorted(posting["entries"], key=lambda e: (e["account"], e["currency"]))


def assert_verified(db: Database, merchant_id: str) -> None:
    """`quittance verify`'s invariants hold for this merchant, which it reconciles."""
    violations, listed = merchant_violations(db, merchant_id)
    assert violations == [], violations
    assert listed
