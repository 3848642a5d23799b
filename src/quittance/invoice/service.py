"""Invoice use cases. Services take a session and never commit: the unit of work does."""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from quittance import clock
from quittance.auth.dependencies import Caller
from quittance.customer.service import customer_for_invoice
from quittance.db.rows import build, insert_rows
from quittance.db.uow import after_commit
from quittance.domain import line_items as lines
from quittance.domain.errors import Conflict, NotFound, ValidationFailed
from quittance.domain.ids import new_id, new_token
from quittance.domain.invoice import EXPIRABLE, Status, Trigger, apply_transition
from quittance.domain.money import MAX_AMOUNT
from quittance.event import service as events
from quittance.invoice import kept, repository
from quittance.invoice.schemas import (
    CustomerIn,
    InvoiceCreate,
    InvoiceUpdate,
    LineItemIn,
    render_invoice,
)
from quittance.merchant.service import options_snapshot
from quittance.models import Event, Invoice, InvoiceLineItem


class InvoiceNotFound(NotFound):
    code = "invoice_not_found"


class InvoiceNotDraft(Conflict):
    code = "invoice_not_draft"
    title = "The invoice is not a draft"


class InvoiceNotCancellable(Conflict):
    code = "invoice_not_cancellable"
    title = "The invoice cannot be cancelled"


def change_status(
    session: Session, invoice: Invoice, target: Status, trigger: Trigger, base_url: str
) -> Event:
    """Apply one transition from the table and write its event in the same unit of work."""
    source = Status(invoice.status)
    row = apply_transition(source, target, trigger)
    invoice.status = target.value
    invoice.updated_at = clock.now()
    return events.record(
        session,
        merchant_id=invoice.merchant_id,
        livemode=invoice.livemode,
        type=row.event,
        invoice_id=invoice.id,
        previous_status=source.value,
        status=target.value,
        trigger=trigger.value,
        data={"object": render_invoice(invoice, base_url)},
    )


def is_overdue(invoice: Invoice, now: datetime) -> bool:
    return (
        invoice.status in EXPIRABLE and invoice.expires_at is not None and invoice.expires_at <= now
    )


def _build_lines(
    invoice_id: str, merchant_id: str, items: list[LineItemIn]
) -> list[InvoiceLineItem]:
    built = []
    for position, item in enumerate(items):
        amounts = lines.line_amounts(item.quantity, item.unit_amount, item.tax_rate)
        built.append(
            build(
                InvoiceLineItem,
                id=f"li_{invoice_id[4:]}_{position}",
                merchant_id=merchant_id,
                invoice_id=invoice_id,
                position=position,
                description=item.description,
                quantity=item.quantity,
                unit_amount=item.unit_amount,
                tax_rate=item.tax_rate,
                amount_net=amounts.amount_net,
                amount_tax=amounts.amount_tax,
                amount=amounts.amount,
            )
        )
    return built


def _total(built: list[InvoiceLineItem]) -> int:
    amount = sum(line.amount for line in built)
    if amount <= 0 or amount > MAX_AMOUNT:
        code = "amount_not_positive" if amount <= 0 else "amount_too_large"
        message = (
            "The line items must add up to more than zero."
            if amount <= 0
            else f"The line items add up to more than {MAX_AMOUNT}."
        )
        raise ValidationFailed(
            message, code=code, errors=[{"field": "line_items", "code": code, "message": message}]
        )
    return amount


def _customer_fields(
    session: Session, caller: Caller, customer: CustomerIn | str | None
) -> dict[str, Any]:
    """The invoice's customer columns: a saved customer's id and a copy of its details (so
    search and payment options see them), or the details given inline."""
    if isinstance(customer, str):
        saved = customer_for_invoice(session, caller, customer)
        return {"customer_id": saved.id, "customer_email": saved.email,
                "customer_name": saved.name, "customer_country": saved.country}  # fmt: skip
    return {
        "customer_id": None,
        "customer_email": customer.email if customer else None,
        "customer_name": customer.name if customer else None,
        "customer_country": customer.country if customer else None,
    }


def create_invoice(
    session: Session, caller: Caller, data: InvoiceCreate, base_url: str
) -> dict[str, Any]:
    """Create an invoice (or a draft) with the merchant's default lifetime and attempts.

    Return its API document, the one its `invoice.created` event carries.
    """
    customer = _customer_fields(session, caller, data.customer)
    options = options_snapshot(session, caller.merchant_id, caller.livemode)
    now = clock.now()
    invoice_id = new_id("inv")
    built = _build_lines(invoice_id, caller.merchant_id, data.line_items or [])
    amount = _total(built) if built else data.amount
    assert amount is not None
    draft = data.status == "draft"
    lifetime = data.lifetime or options.invoice_lifetime
    invoice = build(
        Invoice,
        id=invoice_id,
        merchant_id=caller.merchant_id,
        livemode=caller.livemode,
        status=(Status.DRAFT if draft else Status.CREATED).value,
        currency=data.currency,
        amount=amount,
        amount_paid=0,
        amount_refunded=0,
        amount_cancelled=0,
        commission=0,
        paid_late=False,
        reference=data.reference,
        description=data.description,
        **customer,
        return_url=data.return_url or options.return_url,
        pay_token=new_token(),
        lifetime=lifetime,
        expires_at=None if draft else now + timedelta(seconds=lifetime),
        attempts_limit=data.attempts_limit or options.attempts_limit,
        attempts_count=0,
        metadata_=data.metadata,
        created_at=now,
        updated_at=now,
        finalized_at=None if draft else now,
    )
    set_committed_value(invoice, "line_items", built)
    invoice.search_text = repository.search_text(invoice)
    # Inserted through Core: a new invoice needs none of the unit of work's tracking, and this
    # is the hottest write in the product. The object is rendered from here on, and kept for
    # a pay that follows (`invoice/kept.py`), so its write is tracked.
    insert_rows(session, [invoice], track=True)
    insert_rows(session, list(built), track=True)
    if not draft:  # a draft cannot be paid until it is finalised, which writes it
        after_commit(session, lambda: kept.keep(invoice))
    row = apply_transition(None, Status(invoice.status),
                           Trigger.CREATE_DRAFT if draft else Trigger.CREATE)  # fmt: skip
    document = render_invoice(invoice, base_url)
    events.record(
        session,
        merchant_id=invoice.merchant_id,
        livemode=invoice.livemode,
        type=row.event,
        invoice_id=invoice.id,
        previous_status=None,
        status=invoice.status,
        trigger=row.trigger.value,
        data={"object": document},
    )
    return document


def load_for_change(
    session: Session, caller: Caller, invoice_id: str, base_url: str, *, detached: bool = False
) -> Invoice:
    """Lock an invoice for a change, applying a lifetime that has already passed.

    `detached`: read through the driver, outside the session (`repository.lock_detached`); the
    caller writes the changes with `db.rows.write_back`.
    """
    if detached:
        invoice = repository.lock_detached(
            session, caller.merchant_id, invoice_id, livemode=caller.livemode
        )
    else:
        invoice = repository.get(session, caller, invoice_id, lock=True)
    if invoice is None:
        raise InvoiceNotFound(f"No invoice {invoice_id!r} exists.")
    return apply_lifetime(session, invoice, base_url)


def apply_lifetime(session: Session, invoice: Invoice, base_url: str) -> Invoice:
    """Expire an invoice about to be changed if its lifetime has passed."""
    if is_overdue(invoice, clock.now()):
        change_status(session, invoice, Status.EXPIRED, Trigger.EXPIRE, base_url)
    return invoice


def update_invoice(
    session: Session, caller: Caller, invoice_id: str, data: InvoiceUpdate, base_url: str
) -> Invoice:
    """Change a draft's fields, or cancel when the body is `{"status": "cancelled"}`."""
    if "status" in data.model_fields_set:
        return cancel_invoice(session, caller, invoice_id, base_url)
    invoice = load_for_change(session, caller, invoice_id, base_url)
    if invoice.status != Status.DRAFT:
        raise InvoiceNotDraft(
            f"Only draft invoices can be changed; this one is {invoice.status}.",
            invoice_status=invoice.status,
        )
    fields = data.model_fields_set
    if not fields:
        return invoice
    changes: dict[str, Any] = {}
    simple = ("currency", "reference", "description", "return_url", "lifetime", "attempts_limit")
    for name in simple:
        if name in fields:
            changes[name] = getattr(data, name)
    if "metadata" in fields:
        changes["metadata_"] = data.metadata or {}
    if "customer" in fields:
        changes.update(_customer_fields(session, caller, data.customer))
    if "line_items" in fields and data.line_items is not None:
        built = _build_lines(invoice.id, invoice.merchant_id, data.line_items)
        changes["amount"] = _total(built)
        invoice.line_items.clear()
        session.flush()
        invoice.line_items.extend(built)
    elif "amount" in fields and data.amount is not None:
        changes["amount"] = data.amount
        invoice.line_items.clear()
    for name, value in changes.items():
        setattr(invoice, name, value)
    invoice.search_text = repository.search_text(invoice)
    invoice.updated_at = clock.now()
    events.record(
        session,
        merchant_id=invoice.merchant_id,
        livemode=invoice.livemode,
        type="invoice.updated",
        invoice_id=invoice.id,
        data={"object": render_invoice(invoice, base_url), "changed": sorted(fields)},
    )
    return invoice


def finalize_invoice(session: Session, caller: Caller, invoice_id: str, base_url: str) -> Invoice:
    """Make a draft payable; its lifetime starts now."""
    invoice = load_for_change(session, caller, invoice_id, base_url)
    if invoice.status != Status.DRAFT:
        raise InvoiceNotDraft(
            f"Only a draft can be finalized; this invoice is {invoice.status}.",
            invoice_status=invoice.status,
        )
    now = clock.now()
    invoice.finalized_at = now
    invoice.expires_at = now + timedelta(seconds=invoice.lifetime)
    change_status(session, invoice, Status.CREATED, Trigger.FINALIZE, base_url)
    return invoice


def cancel_invoice(session: Session, caller: Caller, invoice_id: str, base_url: str) -> Invoice:
    """Cancel an invoice on which no money has moved."""
    invoice = load_for_change(session, caller, invoice_id, base_url)
    if invoice.status not in (Status.DRAFT, Status.CREATED) or invoice.amount_paid:
        raise InvoiceNotCancellable(
            f"An invoice that is {invoice.status} cannot be cancelled.",
            invoice_status=invoice.status,
        )
    change_status(session, invoice, Status.CANCELLED, Trigger.CANCEL, base_url)
    return invoice


def expire_now(session: Session, caller: Caller, invoice_id: str, base_url: str) -> Invoice:
    """Test helper: move the invoice's lifetime to now, so it expires."""
    invoice = repository.get(session, caller, invoice_id, lock=True)
    if invoice is None:
        raise InvoiceNotFound(f"No invoice {invoice_id!r} exists.")
    if invoice.status not in EXPIRABLE:
        raise Conflict(
            f"An invoice that is {invoice.status} cannot expire.",
            code="invoice_not_expirable",
            invoice_status=invoice.status,
        )
    now = clock.now()
    if invoice.expires_at is None or invoice.expires_at > now:
        invoice.expires_at = now
    change_status(session, invoice, Status.EXPIRED, Trigger.EXPIRE, base_url)
    return invoice


def get_invoice(session: Session, caller: Caller, invoice_id: str) -> Invoice:
    invoice = repository.get(session, caller, invoice_id)
    if invoice is None:
        raise InvoiceNotFound(f"No invoice {invoice_id!r} exists.")
    return invoice
