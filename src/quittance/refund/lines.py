"""Refunds by line items: which units may go back and what they are worth.

A line's refundable units are those the payer paid for, less those already refunded: every
unit not cancelled, or for an invoice paid by a capture-on-delivery method the delivered
ones. Units paid up front are worth the line's cumulative shares after the cancelled units;
delivered units share what their deliveries captured. Either way the last units refunded take
exactly what remains (`domain.refund.LineUnits`). Units are reserved when the refund is
recorded (`quantity_refunded` grows in step 1) and released if every refund of the request
fails, so a refund under way holds its units.
"""

from collections import defaultdict
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from quittance.domain.errors import QuittanceError
from quittance.domain.fulfilment import CAPTURE_ON_DELIVERY, FulfilmentStatus, LineItemNotFound
from quittance.domain.payment import PaymentStatus
from quittance.domain.refund import LineUnits
from quittance.models import Delivery, Invoice, InvoiceLineItem, Payment
from quittance.refund.schemas import RefundLineIn


class RefundQuantityExceedsRefundable(QuittanceError):
    status = 422
    code = "refund_quantity_exceeds_refundable"
    title = "More units than are refundable"


def captured_on_delivery(session: Session, invoice: Invoice) -> bool:
    """Tell whether the invoice was paid by a method that captures on delivery."""
    held = (PaymentStatus.AUTHORIZED.value, PaymentStatus.SUCCEEDED.value)
    return bool(
        session.scalar(
            select(
                exists().where(
                    Payment.invoice_id == invoice.id,
                    Payment.method.in_(CAPTURE_ON_DELIVERY),
                    Payment.status.in_(held),
                )
            )
        )
    )


def _captured(session: Session, invoice: Invoice) -> dict[str, int]:
    """What the invoice's deliveries captured for each line."""
    captured: dict[str, int] = defaultdict(int)
    deliveries = session.scalars(
        select(Delivery.line_items).where(
            Delivery.invoice_id == invoice.id,
            Delivery.merchant_id == invoice.merchant_id,
            Delivery.status == FulfilmentStatus.SUCCEEDED.value,
        )
    )
    for items in deliveries:
        for item in items or []:
            captured[str(item["line_item"])] += int(item["amount"])
    return captured


def units(session: Session, invoice: Invoice) -> dict[str, LineUnits]:
    """Each line of the invoice as a refund by items sees it."""
    lines: list[InvoiceLineItem] = invoice.line_items
    if not captured_on_delivery(session, invoice):
        return {
            line.id: LineUnits(line.amount, line.quantity, line.quantity_cancelled,
                               line.quantity - line.quantity_cancelled, line.quantity_refunded)
            for line in lines
        }  # fmt: skip
    captured = _captured(session, invoice)
    return {
        line.id: LineUnits(captured[line.id], line.quantity_delivered, 0,
                           line.quantity_delivered, line.quantity_refunded)
        for line in lines
    }  # fmt: skip


def price(session: Session, invoice: Invoice, items: list[RefundLineIn]) -> list[dict[str, Any]]:
    """Check the units asked for and return them with their amounts, as stored on the refund."""
    lines = units(session, invoice)
    priced = []
    for index, item in enumerate(items):
        line = lines.get(item.line_item)
        if line is None:
            raise LineItemNotFound(
                f"The invoice has no line item {item.line_item!r} (line_items.{index}).",
                line_item=item.line_item,
            )
        if item.quantity > line.refundable:
            raise RefundQuantityExceedsRefundable(
                f"Line item {item.line_item!r} has {line.refundable} unit(s) paid for (or "
                f"delivered) and not refunded; {item.quantity} were asked.",
                line_item=item.line_item, refundable_quantity=line.refundable,
            )  # fmt: skip
        priced.append({"line_item": item.line_item, "quantity": item.quantity,
                       "amount": line.refund_amount(item.quantity)})  # fmt: skip
    return priced


def reserve(invoice: Invoice, priced: list[dict[str, Any]], *, release: bool = False) -> None:
    """Count the units as refunded (when the refund is recorded), or give them back."""
    lines = {line.id: line for line in invoice.line_items}
    for entry in priced:
        line = lines[str(entry["line_item"])]
        step = -int(entry["quantity"]) if release else int(entry["quantity"])
        line.quantity_refunded += step
        assert 0 <= line.quantity_refunded <= line.quantity, "line units out of range"
