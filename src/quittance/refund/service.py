"""Refund an invoice with recovery points, like paying it (DESIGN §4 "Refund", §12).

1. Lock the invoice, check what is refundable, and record the request's refunds: one
   `pending` refund per payment the money goes back through (the payment with the most room
   first), each with its own id as the provider's idempotency key; reserve refunded line
   units; move the invoice to `refunding`: commit.
2. Ask the provider to send each refund's money back, outside any transaction.
3. Record the answers: commit. A succeeded refund adds to `amount_refunded` and writes its
   ledger posting; when the request's refunds are all answered the invoice is `refunded` or
   `partially_refunded` (any succeeded), else `refund_failed` (all failed: nothing refunded,
   line units released); while any is pending, `refund_pending`. The worker asks the
   provider about pending refunds, and sends again, with the same id, a refund the provider
   never received because the process died in step 2 (`refund/tasks.py`).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quittance import clock
from quittance.auth.dependencies import Caller
from quittance.config import Settings
from quittance.domain.errors import Conflict, NotFound, QuittanceError
from quittance.domain.ids import new_ordered_id
from quittance.domain.invoice import Status, Trigger, can_transition
from quittance.domain.refund import (
    EVENTS,
    RefundStatus,
    check_refund_transition,
    invoice_after_round,
    proportional,
    refundable,
    round_outcome,
    split,
)
from quittance.event import service as events
from quittance.invoice import repository as invoice_repository
from quittance.invoice.schemas import render_invoice
from quittance.invoice.service import change_status, load_for_change
from quittance.ledger.service import post_refund
from quittance.merchant.service import options_snapshot
from quittance.models import Invoice, Payment, Refund
from quittance.providers.base import Outcome, PaymentResult, ProviderError
from quittance.providers.registry import ProviderNotAvailable, get_provider
from quittance.refund import lines
from quittance.refund.schemas import RefundCreate, render_refund

log = logging.getLogger("quittance.refund")


class InvoiceNotRefundable(Conflict):
    code = "invoice_not_refundable"
    title = "The invoice cannot be refunded now"


class RefundExceedsRefundable(QuittanceError):
    status = 422
    code = "refund_exceeds_refundable"
    title = "The refund exceeds what is refundable"


class RefundAmountNotPositive(QuittanceError):
    status = 422
    code = "amount_not_positive"
    title = "Nothing to refund"


class RefundNotFound(NotFound):
    code = "refund_not_found"


@dataclass(frozen=True, slots=True)
class RefundCall:
    """What the provider call needs, copied out of the session after the first commit."""

    refund_id: str
    merchant_id: str
    livemode: bool
    payment_id: str
    amount: int  # what the provider sends back (in the payer's currency, if converted)
    provider: str


@dataclass(frozen=True, slots=True)
class Room:
    """A payment that received money: what it can still send back, and what it sent already."""

    payment: Payment
    room: int
    refunded: int


def _pending_total(session: Session, invoice_id: str) -> int:
    return int(
        session.scalar(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.invoice_id == invoice_id, Refund.status == RefundStatus.PENDING.value
            )
        )
        or 0
    )


def _payment_rooms(session: Session, invoice: Invoice) -> dict[str, Room]:
    """Payments that received money, with what each sent back (or is sending) so far."""
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
    return {
        p.id: Room(p, p.amount_received - used.get(p.id, 0), used.get(p.id, 0)) for p in payments
    }


def _round_time(session: Session, invoice: Invoice) -> datetime:
    """Return the time the new request's refunds share, later than every earlier request's.

    The refunds of one request are told apart from other requests' by their `created_at`.
    """
    now = clock.now()
    last = session.scalar(
        select(func.max(Refund.created_at)).where(
            Refund.invoice_id == invoice.id, Refund.merchant_id == invoice.merchant_id
        )
    )
    return max(now, last + timedelta(milliseconds=1)) if last is not None else now


def start_refund(
    session: Session, caller: Caller, invoice_id: str, body: RefundCreate | None,
    settings: Settings,
) -> list[RefundCall]:  # fmt: skip
    """Step 1: record the request's refunds and move the invoice to `refunding`."""
    base_url = settings.public_base_url
    request = body or RefundCreate()
    invoice = load_for_change(session, caller, invoice_id, base_url)
    status = Status(invoice.status)
    if not can_transition(status, Status.REFUNDING, Trigger.REFUND_START):
        raise InvoiceNotRefundable(
            f"An invoice that is {status.value} cannot be refunded.", invoice_status=status.value
        )
    rooms = _payment_rooms(session, invoice)
    room = min(
        refundable(invoice.amount_paid, invoice.amount_refunded,
                   _pending_total(session, invoice.id)),
        sum(max(0, r.room) for r in rooms.values()),
    )  # fmt: skip
    if room <= 0:
        raise InvoiceNotRefundable(
            f"The invoice is {status.value} and has no refundable money.",
            invoice_status=status.value,
        )
    priced = None
    if request.line_items is not None:
        priced = lines.price(session, invoice, request.line_items)
        amount = sum(int(entry["amount"]) for entry in priced)
        if amount <= 0:
            raise RefundAmountNotPositive("These units are worth nothing; there is nothing to "
                                          "refund.")  # fmt: skip
    else:
        amount = request.amount if request.amount is not None else room
    if amount > room:
        raise RefundExceedsRefundable(
            f"At most {invoice.currency} {room} can be refunded; {amount} was asked.",
            refundable=room,
        )
    give_commission = request.refund_commission
    if give_commission is None:
        give_commission = options_snapshot(session, caller.merchant_id,
                                           caller.livemode).refund_commission  # fmt: skip
    now = _round_time(session, invoice)
    parts = split(amount, [(payment_id, r.room) for payment_id, r in rooms.items()])
    refunds, calls = [], []
    for index, (payment_id, part) in enumerate(parts):
        refund = _refund_part(invoice, rooms[payment_id], part, give_commission, now, settings)
        refund.reason = request.reason
        refund.line_items = priced if index == 0 else None  # the request's units, once
        session.add(refund)
        refunds.append(refund)
        calls.append(RefundCall(
            refund.id, refund.merchant_id, refund.livemode, payment_id,
            part if refund.payer_amount is None else refund.payer_amount, refund.provider,
        ))  # fmt: skip
    if priced is not None:
        lines.reserve(invoice, priced)
    session.flush()
    change_status(session, invoice, Status.REFUNDING, Trigger.REFUND_START, base_url)
    for refund in refunds:
        _refund_event(session, refund, invoice, "refund.created", settings)
    return calls


def _refund_part(
    invoice: Invoice, room: Room, amount: int, give_commission: bool, now: datetime,
    settings: Settings,
) -> Refund:  # fmt: skip
    """Build one payment's refund: its commission returned and payer-currency amount."""
    payment = room.payment
    commission = 0
    if give_commission:
        commission = proportional(payment.commission, payment.amount_received, room.refunded,
                                  amount)  # fmt: skip
    # Converted: the payer paid in another currency, and gets that currency back.
    converted = (
        payment.payer_currency not in (None, invoice.currency) and payment.payer_received > 0
    )
    payer_amount = (
        proportional(payment.payer_received, payment.amount_received, room.refunded, amount)
        if converted else None
    )  # fmt: skip
    if not converted and give_commission and commission and _paid_on_top(payment):
        # The payer paid this commission on top of the invoice: it goes back to the payer,
        # who then receives more than the invoice money refunded.
        payer_amount = amount + commission
    return Refund(
        id=new_ordered_id("re"), merchant_id=invoice.merchant_id, livemode=invoice.livemode,
        invoice_id=invoice.id, payment_id=payment.id, amount=amount, currency=invoice.currency,
        status=RefundStatus.PENDING.value, commission_returned=commission, line_items=None,
        payer_currency=invoice.currency if payer_amount is not None and not converted
        else payment.payer_currency if converted else None, payer_amount=payer_amount,
        next_check_at=now + timedelta(seconds=settings.payment_recovery_after),
        lease_until=None, reason=None, provider=payment.provider or "unknown",
        provider_reference=None, error_code=None, error_message=None, created_at=now,
        updated_at=now,
    )  # fmt: skip


def _paid_on_top(payment: Payment) -> bool:
    """Tell whether the payer was asked for the commission on top, in the invoice's currency."""
    return (
        payment.payer_currency in (None, payment.currency)
        and payment.payer_amount is not None
        and payment.payer_amount > payment.amount
    )


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


def record_results(
    session: Session, calls: list[RefundCall], results: list[PaymentResult], settings: Settings
) -> tuple[list[Refund], Invoice]:
    """Step 3: record the provider's answers (a refund already settled is left alone)."""
    refunds, invoice = lock_refunds(session, calls[0].merchant_id, [c.refund_id for c in calls])
    answers = [
        (refund, result)
        for refund, result in zip(refunds, results, strict=True)
        if refund.status == RefundStatus.PENDING.value
    ]
    if answers:
        apply_results(session, invoice, answers, settings)
    return refunds, invoice


def lock_refund(session: Session, merchant_id: str, refund_id: str) -> tuple[Refund, Invoice]:
    """Lock an invoice and then its refund (always in that order, to avoid deadlocks)."""
    (refund,), invoice = lock_refunds(session, merchant_id, [refund_id])
    return refund, invoice


def lock_refunds(
    session: Session, merchant_id: str, refund_ids: list[str]
) -> tuple[list[Refund], Invoice]:
    """Lock the invoice of some refunds, then the refunds (in the order of `refund_ids`)."""
    invoice_id = session.scalar(
        select(Refund.invoice_id).where(
            Refund.id == refund_ids[0], Refund.merchant_id == merchant_id
        )
    )
    if invoice_id is None:
        raise RefundNotFound(f"No refund {refund_ids[0]!r} exists.")
    invoice = invoice_repository.lock(session, merchant_id, invoice_id)
    rows = {
        refund.id: refund
        for refund in session.scalars(
            select(Refund)
            .where(Refund.id.in_(refund_ids), Refund.merchant_id == merchant_id,
                   Refund.invoice_id == invoice_id)
            .order_by(Refund.id)
            .with_for_update()
        )
    }  # fmt: skip
    return [rows[refund_id] for refund_id in refund_ids], invoice


def apply_result(
    session: Session, invoice: Invoice, refund: Refund, result: PaymentResult,
    settings: Settings,
) -> None:  # fmt: skip
    """Move one pending refund and its invoice to what the provider says."""
    apply_results(session, invoice, [(refund, result)], settings)


def apply_results(
    session: Session, invoice: Invoice, answers: list[tuple[Refund, PaymentResult]],
    settings: Settings,
) -> None:  # fmt: skip
    """Record answers about pending refunds of one request; the one place that does.

    Each refund moves on its own; the invoice moves once, after all of them, to what the
    request as a whole has come to; then each refund that changed writes its event.
    """
    now = clock.now()
    before = [RefundStatus(refund.status) for refund, _ in answers]
    for refund, result in answers:
        _apply_one(session, invoice, refund, result, now, settings)
    moved = _settle_invoice(session, invoice, _request_refunds(session, answers[0][0]), settings)
    for (refund, _), previous in zip(answers, before, strict=True):
        status = RefundStatus(refund.status)
        if status is not previous or (moved and status is RefundStatus.PENDING):
            _refund_event(session, refund, invoice, EVENTS[status], settings)


def _apply_one(
    session: Session, invoice: Invoice, refund: Refund, result: PaymentResult, now: datetime,
    settings: Settings,
) -> None:  # fmt: skip
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
    refund.lease_until = None
    refund.next_check_at = (
        now + timedelta(seconds=settings.payment_poll_interval)
        if target is RefundStatus.PENDING else None
    )  # fmt: skip
    invoice.updated_at = now
    if target is RefundStatus.SUCCEEDED and before is not RefundStatus.SUCCEEDED:
        # The money and its ledger posting move in the same unit of work (DESIGN §11).
        invoice.amount_refunded += refund.amount
        invoice.commission -= refund.commission_returned
        converted: dict[str, Any] = {}
        if refund.payer_currency is not None:
            converted = {"payer_currency": refund.payer_currency,
                         "payer_amount": refund.payer_amount}  # fmt: skip
        post_refund(
            session, merchant_id=invoice.merchant_id, livemode=invoice.livemode,
            provider=refund.provider, currency=refund.currency, amount=refund.amount,
            invoice_id=invoice.id, payment_id=refund.payment_id, refund_id=refund.id,
            commission_returned=refund.commission_returned, **converted,
        )  # fmt: skip
    elif target is RefundStatus.FAILED:
        refund.error_code = result.error_code or "refund_failed"
        refund.error_message = result.error_message or "The refund failed."


def _request_refunds(session: Session, refund: Refund) -> list[Refund]:
    """Return the refunds made by the same request as `refund` (they share `created_at`)."""
    return list(
        session.scalars(
            select(Refund)
            .where(Refund.invoice_id == refund.invoice_id,
                   Refund.merchant_id == refund.merchant_id,
                   Refund.created_at == refund.created_at)
            .order_by(Refund.id)
        )
    )  # fmt: skip


def _settle_invoice(
    session: Session, invoice: Invoice, request: list[Refund], settings: Settings
) -> bool:
    """Move the invoice to what the request's refunds come to; tell whether it moved."""
    outcome = round_outcome(RefundStatus(refund.status) for refund in request)
    target, trigger = invoice_after_round(outcome, invoice.amount_paid, invoice.amount_refunded,
                                          invoice.amount_authorized)  # fmt: skip
    if not can_transition(Status(invoice.status), target, trigger):
        return False
    if outcome is RefundStatus.FAILED:  # nothing went back: the units are refundable again
        for refund in request:
            if refund.line_items:
                lines.reserve(invoice, refund.line_items, release=True)
    change_status(session, invoice, target, trigger, settings.public_base_url)
    return True


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
