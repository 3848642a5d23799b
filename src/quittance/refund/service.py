"""Refund an invoice with recovery points, like paying it (DESIGN §4 "Refund", §12).

1. Lock the invoice, check what is refundable, record a `pending` refund (its id is the
   provider's idempotency key) and move the invoice to `refunding`: commit.
2. Ask the provider to send the money back through the payment, outside any transaction.
3. Record the answer: commit. Succeeded: `amount_refunded` grows, the ledger's refund posting
   is written and the invoice is `refunded` or `partially_refunded`; pending: `refund_pending`
   until the provider settles; failed: `refund_failed`, nothing refunded.
"""

import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quittance import clock
from quittance.auth.dependencies import Caller
from quittance.config import Settings
from quittance.domain.errors import Conflict, NotFound, QuittanceError
from quittance.domain.ids import new_id
from quittance.domain.invoice import Status, Trigger, can_transition
from quittance.domain.refund import EVENTS, RefundStatus, check_refund_transition, refundable
from quittance.event import service as events
from quittance.invoice import repository as invoice_repository
from quittance.invoice.schemas import render_invoice
from quittance.invoice.service import change_status, load_for_change
from quittance.ledger.service import post_refund
from quittance.models import Invoice, Payment, Refund
from quittance.providers.base import Outcome, PaymentResult, ProviderError
from quittance.providers.registry import ProviderNotAvailable, get_provider
from quittance.refund.schemas import RefundCreate, render_refund

log = logging.getLogger("quittance.refund")


class InvoiceNotRefundable(Conflict):
    code = "invoice_not_refundable"
    title = "The invoice cannot be refunded now"


class RefundExceedsRefundable(QuittanceError):
    status = 422
    code = "refund_exceeds_refundable"
    title = "The refund exceeds what is refundable"


class RefundNotFound(NotFound):
    code = "refund_not_found"


@dataclass(frozen=True, slots=True)
class RefundCall:
    """What the provider call needs, copied out of the session after the first commit."""

    refund_id: str
    merchant_id: str
    livemode: bool
    payment_id: str
    amount: int
    provider: str


def _pending_total(session: Session, invoice_id: str) -> int:
    return int(
        session.scalar(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.invoice_id == invoice_id, Refund.status == RefundStatus.PENDING.value
            )
        )
        or 0
    )


def _payment_room(session: Session, invoice: Invoice) -> list[tuple[Payment, int]]:
    """Payments that received money, with what each can still send back, most first."""
    payments = session.scalars(
        select(Payment)
        .where(Payment.invoice_id == invoice.id, Payment.amount_received > 0)
        .order_by(Payment.id)
    ).all()
    used = {
        payment_id: int(total)
        for payment_id, total in session.execute(
            select(Refund.payment_id, func.sum(Refund.amount))
            .where(Refund.invoice_id == invoice.id, Refund.status != RefundStatus.FAILED.value)
            .group_by(Refund.payment_id)
        )
    }
    room = [(p, p.amount_received - used.get(p.id, 0)) for p in payments]
    return sorted((r for r in room if r[1] > 0), key=lambda r: -r[1])


def start_refund(
    session: Session, caller: Caller, invoice_id: str, body: RefundCreate | None,
    settings: Settings,
) -> RefundCall:  # fmt: skip
    """Step 1: record the refund and move the invoice to `refunding`."""
    base_url = settings.public_base_url
    invoice = load_for_change(session, caller, invoice_id, base_url)
    status = Status(invoice.status)
    room = refundable(invoice.amount_paid, invoice.amount_refunded,
                      _pending_total(session, invoice.id))  # fmt: skip
    if not can_transition(status, Status.REFUNDING, Trigger.REFUND_START):
        raise InvoiceNotRefundable(
            f"An invoice that is {status.value} cannot be refunded.", invoice_status=status.value
        )
    payments = _payment_room(session, invoice) if room > 0 else []
    if not payments:
        raise InvoiceNotRefundable(
            f"The invoice is {status.value} and has no refundable money.",
            invoice_status=status.value,
        )
    payment, payment_room = payments[0]
    amount = body.amount if body is not None and body.amount is not None else None
    if amount is None:
        amount = min(room, payment_room)
    if amount > room:
        raise RefundExceedsRefundable(
            f"At most {invoice.currency} {room} can be refunded; {amount} was asked.",
            refundable=room,
        )
    if amount > payment_room:
        # One refund goes back through one payment; refund the rest with another request.
        raise RefundExceedsRefundable(
            f"A refund goes back through one payment; at most {invoice.currency} "
            f"{payment_room} can be refunded at once.",
            refundable=payment_room,
        )
    now = clock.now()
    provider = payment.provider or "unknown"
    refund = Refund(
        id=new_id("re"), merchant_id=invoice.merchant_id, livemode=invoice.livemode,
        invoice_id=invoice.id, payment_id=payment.id, amount=amount, currency=invoice.currency,
        status=RefundStatus.PENDING.value, reason=body.reason if body is not None else None,
        provider=provider, provider_reference=None, error_code=None, error_message=None,
        created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(refund)
    session.flush()
    change_status(session, invoice, Status.REFUNDING, Trigger.REFUND_START, base_url)
    _refund_event(session, refund, invoice, "refund.created", settings)
    return RefundCall(refund.id, refund.merchant_id, refund.livemode, payment.id, amount,
                      provider)  # fmt: skip


def call_provider(call: RefundCall, settings: Settings) -> PaymentResult:
    """Step 2: ask the provider to send the money back (no transaction is open).

    A timeout leaves the answer unknown (pending); any other provider error fails the refund,
    and the money stays refundable.
    """
    try:
        provider = get_provider(call.provider, settings, livemode=call.livemode)
        return provider.refund(call.refund_id, call.payment_id, call.amount)
    except ProviderError as exc:
        if exc.code == "provider_timeout":
            return PaymentResult(Outcome.PENDING, "")
        return PaymentResult(Outcome.DECLINED, "", error_code=exc.code,
                             error_message=exc.message)  # fmt: skip
    except ProviderNotAvailable as exc:
        return PaymentResult(Outcome.DECLINED, "", error_code=exc.code,
                             error_message=exc.message)  # fmt: skip
    except Exception:
        log.exception("provider %s failed on refund %s", call.provider, call.refund_id)
        return PaymentResult(Outcome.DECLINED, "", error_code="provider_error",
                             error_message="The provider failed.")  # fmt: skip


def record_result(
    session: Session, call: RefundCall, result: PaymentResult, settings: Settings
) -> tuple[Refund, Invoice]:
    """Step 3: record the provider's answer (once: a refund already settled is left alone)."""
    refund, invoice = lock_refund(session, call.merchant_id, call.refund_id)
    if refund.status == RefundStatus.PENDING.value:
        apply_result(session, invoice, refund, result, settings)
    return refund, invoice


def lock_refund(session: Session, merchant_id: str, refund_id: str) -> tuple[Refund, Invoice]:
    """Lock an invoice and then its refund (always in that order, to avoid deadlocks)."""
    invoice_id = session.scalar(
        select(Refund.invoice_id).where(Refund.id == refund_id, Refund.merchant_id == merchant_id)
    )
    if invoice_id is None:
        raise RefundNotFound(f"No refund {refund_id!r} exists.")
    invoice = invoice_repository.lock(session, merchant_id, invoice_id)
    refund = session.scalars(
        select(Refund)
        .where(Refund.id == refund_id, Refund.merchant_id == merchant_id)
        .with_for_update()
    ).one()
    return refund, invoice


def apply_result(
    session: Session, invoice: Invoice, refund: Refund, result: PaymentResult,
    settings: Settings,
) -> None:  # fmt: skip
    """Move a refund and its invoice to what the provider says; the one place that does."""
    now = clock.now()
    before = RefundStatus(refund.status)
    target = {
        Outcome.SUCCEEDED: RefundStatus.SUCCEEDED,
        Outcome.DECLINED: RefundStatus.FAILED,
    }.get(result.outcome, RefundStatus.PENDING)
    if target is not before:
        check_refund_transition(before, target)
        refund.status = target.value
    if result.reference and refund.provider_reference is None:
        refund.provider_reference = result.reference
    refund.updated_at = now
    invoice.updated_at = now
    if target is RefundStatus.SUCCEEDED:
        # The money and its ledger posting move in the same unit of work (DESIGN §11).
        invoice.amount_refunded += refund.amount
        post_refund(
            session, merchant_id=invoice.merchant_id, livemode=invoice.livemode,
            provider=refund.provider, currency=refund.currency, amount=refund.amount,
            invoice_id=invoice.id, payment_id=refund.payment_id, refund_id=refund.id,
        )  # fmt: skip
        if invoice.amount_refunded >= invoice.amount_paid:
            status, trigger = Status.REFUNDED, Trigger.REFUND_SUCCEEDED
        else:
            status, trigger = Status.PARTIALLY_REFUNDED, Trigger.REFUND_PARTIAL
    elif target is RefundStatus.FAILED:
        refund.error_code = result.error_code or "refund_failed"
        refund.error_message = result.error_message or "The refund failed."
        status, trigger = Status.REFUND_FAILED, Trigger.REFUND_FAILED
    else:
        status, trigger = Status.REFUND_PENDING, Trigger.REFUND_PENDING
    moved = can_transition(Status(invoice.status), status, trigger)
    if moved:
        change_status(session, invoice, status, trigger, settings.public_base_url)
    if target is not before or moved:
        _refund_event(session, refund, invoice, EVENTS[target], settings)


def _refund_event(
    session: Session, refund: Refund, invoice: Invoice, kind: str, settings: Settings
) -> None:
    events.record(
        session,
        merchant_id=refund.merchant_id,
        livemode=refund.livemode,
        type=kind,
        invoice_id=invoice.id,
        data={
            "object": render_refund(refund),
            "invoice": render_invoice(invoice, settings.public_base_url),
        },
    )


def get_refund(session: Session, caller: Caller, refund_id: str) -> Refund:
    refund = session.scalars(
        select(Refund).where(
            Refund.id == refund_id,
            Refund.merchant_id == caller.merchant_id,
            Refund.livemode == caller.livemode,
        )
    ).first()
    if refund is None:
        raise RefundNotFound(f"No refund {refund_id!r} exists.")
    return refund
