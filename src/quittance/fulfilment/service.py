"""Cancel and deliver invoices (DESIGN §3, §4 "Capture on delivery"), with recovery points.

An unpaid invoice (`draft`, `created`, nothing received) is cancelled in one unit of work: no
provider holds anything. An invoice authorised by a capture-on-delivery method is cancelled
(the provider releases the authorisation) or delivered (the provider captures it) in three
steps, like a refund:

1. Lock the invoice, check what is open, record a `pending` cancellation or delivery (its id
   names the operation in events and logs): commit.
2. Ask the provider to release or capture, outside any transaction, with the cancellation's
   or delivery's id as the operation id (the provider's idempotency key).
3. Record the answer: commit. Succeeded: line quantities, the authorised amounts and, for a
   delivery, the captured money (through `payment.service.apply_result`, which posts the
   ledger capture) move; failed: nothing moves; no answer (a timeout): it stays `pending`, and
   `fulfilment.tasks.recover_pending` asks the provider about the operation id later, and
   sends it again under the same id if the provider never saw it.

Only one cancellation or delivery of an invoice may be pending at a time, so the amounts a
pending one was computed from (the payment's open authorisation) stay as they were until it is
settled, and a call sent again asks for exactly what the first one did.
"""

import logging
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from quittance import clock
from quittance.auth.dependencies import Caller
from quittance.config import Settings
from quittance.domain import fulfilment as rules
from quittance.domain.errors import Conflict, NotFound, QuittanceError
from quittance.domain.exchange import ExchangeRate, convert
from quittance.domain.fulfilment import FulfilmentStatus, check_fulfilment_transition
from quittance.domain.ids import new_id
from quittance.domain.invoice import Status, Trigger
from quittance.domain.payment import PaymentStatus, check_payment_transition
from quittance.event import service as events
from quittance.fulfilment.schemas import (
    CancellationCreate,
    DeliveryCreate,
    render_cancellation,
    render_delivery,
)
from quittance.invoice import repository as invoice_repository
from quittance.invoice.schemas import render_invoice
from quittance.invoice.service import InvoiceNotCancellable, change_status, load_for_change
from quittance.merchant.service import options_snapshot
from quittance.models import Cancellation, Delivery, Invoice, Payment
from quittance.payment.schemas import render_payment
from quittance.payment.service import apply_result, payer_received
from quittance.providers.base import Outcome, PaymentResult, ProviderError
from quittance.providers.registry import ProviderNotAvailable, get_provider

log = logging.getLogger("quittance.fulfilment")
Kind = Literal["cancellation", "delivery"]
Row = Cancellation | Delivery
PENDING, SUCCEEDED, FAILED = (FulfilmentStatus.PENDING, FulfilmentStatus.SUCCEEDED,
                              FulfilmentStatus.FAILED)  # fmt: skip


class InvoiceNotDeliverable(Conflict):
    code = "invoice_not_deliverable"
    title = "The invoice cannot be delivered"


class CancellationExceedsCancellable(QuittanceError):
    status = 422
    code = "cancellation_exceeds_cancellable"
    title = "The cancellation exceeds what is cancellable"


class DeliveryExceedsDeliverable(QuittanceError):
    status = 422
    code = "delivery_exceeds_deliverable"
    title = "The delivery exceeds what is deliverable"


class FulfilmentPending(Conflict):
    code = "fulfilment_pending"
    title = "A cancellation or delivery is under way"


class CancellationNotFound(NotFound):
    code = "cancellation_not_found"


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """What the provider call needs, copied out of the session after the first commit."""

    kind: Kind
    row_id: str  # the cancellation's or delivery's id: the provider's operation id
    merchant_id: str
    livemode: bool
    payment_id: str
    amount: int
    provider: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The provider's answer to a release or a capture."""

    status: FulfilmentStatus
    result: PaymentResult | None = None
    error_code: str | None = None
    error_message: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


# -- shared steps ---------------------------------------------------------------------------


def _lines(invoice: Invoice) -> list[rules.Line]:
    return [
        rules.Line(line.id, line.quantity, line.amount, line.quantity_cancelled,
                   line.quantity_delivered)
        for line in invoice.line_items
    ]  # fmt: skip


def _authorized_payment(session: Session, invoice: Invoice) -> Payment | None:
    """The payment holding an open authorisation for the invoice, locked (after the invoice)."""
    return session.scalars(
        select(Payment)
        .where(
            Payment.invoice_id == invoice.id,
            Payment.merchant_id == invoice.merchant_id,
            Payment.status == PaymentStatus.AUTHORIZED.value,
            Payment.amount_authorized > 0,
        )
        .order_by(Payment.id)
        .with_for_update()
    ).first()


def provider_amount(payment: Payment, taking: int) -> int:
    """What the provider captures or releases, in the payer's currency, for `taking` of the
    payment's open authorisation (invoice currency)."""
    payer_amount = payment.amount if payment.payer_amount is None else payment.payer_amount
    plain = payment.amount
    payer_currency, rate_value = payment.payer_currency, payment.exchange_rate
    if payer_currency not in (None, payment.currency) and rate_value is not None:
        assert payer_currency is not None
        rate = ExchangeRate(payment.currency, payer_currency, rate_value)
        plain = convert(payment.amount, payment.currency, payer_currency, rate).amount_to
    authorisation = rules.Authorisation(payment.amount, payment.amount_authorized, payer_amount,
                                        min(plain, payer_amount))  # fmt: skip
    return authorisation.provider_amount(taking)


def _refuse_if_pending(session: Session, invoice: Invoice) -> None:
    for model, kind in ((Delivery, "delivery"), (Cancellation, "cancellation")):
        pending = session.scalar(
            select(model.id).where(
                model.invoice_id == invoice.id,
                model.merchant_id == invoice.merchant_id,
                model.status == PENDING.value,
            )
        )
        if pending is not None:
            raise FulfilmentPending(
                f"The {kind} {pending} of this invoice is still waiting for the provider's "
                "answer; try again when it is settled.",
                **{kind: pending},
            )


def _taken(
    invoice: Invoice, body: CancellationCreate | DeliveryCreate | None, everything: int
) -> tuple[list[rules.Taken], int, bool]:
    """What a request takes: line units with their amounts, the amount, and whether it asked
    for everything still open (no amount, no line items)."""
    wanted = body.wanted() if body is not None else None
    if wanted is not None:
        taken = rules.take(_lines(invoice), wanted)
        return taken, rules.total(taken), False
    if body is not None and body.amount is not None:
        return [], body.amount, False
    return rules.take_all(_lines(invoice)), everything, True


def _new_row(
    model: type[Row], prefix: str, invoice: Invoice, payment: Payment | None, amount: int,
    taken: list[rules.Taken], status: FulfilmentStatus, **extra: Any,
) -> Any:  # fmt: skip
    now = clock.now()
    return model(
        id=new_id(prefix), merchant_id=invoice.merchant_id, livemode=invoice.livemode,
        invoice_id=invoice.id, payment_id=payment.id if payment is not None else None,
        amount=amount, currency=invoice.currency,
        line_items=[t.as_dict() for t in taken] or None, status=status.value, error_code=None,
        error_message=None, created_at=now, updated_at=now, **extra,
    )  # fmt: skip


def render_row(row: Row) -> dict[str, Any]:
    if isinstance(row, Cancellation):
        return render_cancellation(row)
    return render_delivery(row)


def _row_event(session: Session, row: Row, invoice: Invoice, kind: str, base_url: str) -> None:
    events.record(
        session, merchant_id=row.merchant_id, livemode=row.livemode, type=kind,
        invoice_id=invoice.id,
        data={"object": render_row(row), "invoice": render_invoice(invoice, base_url)},
    )  # fmt: skip


def _payment_event(session: Session, payment: Payment, invoice: Invoice, kind: str,
                   base_url: str) -> None:  # fmt: skip
    options = options_snapshot(session, payment.merchant_id, payment.livemode)
    document = render_payment(
        payment, expose_provider_response=options.expose_internal_callback_data
    )
    events.record(
        session, merchant_id=payment.merchant_id, livemode=payment.livemode, type=kind,
        invoice_id=invoice.id,
        data={"object": document, "invoice": render_invoice(invoice, base_url)},
    )  # fmt: skip


def call_provider(call: ProviderCall, settings: Settings) -> Answer:
    """Step 2: ask the provider to release or capture (no transaction is open).

    A timeout, or an adapter fault, leaves the answer unknown: the operation stays pending and
    the provider is asked later. A provider's refusal fails it, and nothing moves.
    """
    try:
        provider = get_provider(call.provider, settings, livemode=call.livemode)
        if call.kind == "delivery":
            result = provider.capture(call.payment_id, call.amount, call.row_id)
        else:
            result = provider.cancel(call.payment_id, call.amount, call.row_id)
    except ProviderError as exc:
        if exc.code == "provider_timeout":
            return Answer(PENDING)
        return Answer(FAILED, error_code=exc.code, error_message=exc.message)
    except ProviderNotAvailable as exc:
        return Answer(FAILED, error_code=exc.code, error_message=exc.message)
    except Exception:  # the call may have reached the provider: ask it later, do not guess
        log.exception("provider %s failed on %s %s", call.provider, call.kind, call.row_id)
        return Answer(PENDING)
    return Answer(SUCCEEDED, result, raw=result.raw)


def lock_row(session: Session, kind: Kind, merchant_id: str, row_id: str) -> tuple[Row, Invoice]:
    """Lock an invoice and then its cancellation or delivery (always in that order)."""
    model: type[Row] = Cancellation if kind == "cancellation" else Delivery
    invoice_id = session.scalar(
        select(model.invoice_id).where(model.id == row_id, model.merchant_id == merchant_id)
    )
    if invoice_id is None:
        missing = CancellationNotFound if kind == "cancellation" else DeliveryNotFound
        raise missing(f"No {kind} {row_id!r} exists.")
    invoice = invoice_repository.lock(session, merchant_id, invoice_id)
    row = cast(Row, session.scalars(
        select(model).where(model.id == row_id, model.merchant_id == merchant_id).with_for_update()
    ).one())  # fmt: skip
    return row, invoice


def record_answer(
    session: Session, call: ProviderCall, answer: Answer, settings: Settings
) -> tuple[Row, Invoice]:
    """Step 3: record the provider's answer (once: a settled operation is left alone)."""
    row, invoice = lock_row(session, call.kind, call.merchant_id, call.row_id)
    if row.status == PENDING.value:
        apply_answer(session, invoice, row, answer, settings)
    return row, invoice


def apply_answer(
    session: Session, invoice: Invoice, row: Row, answer: Answer, settings: Settings
) -> None:
    """Move a pending cancellation or delivery, and what it changes, to the provider's answer."""
    base_url = settings.public_base_url
    kind = "cancellation" if isinstance(row, Cancellation) else "delivery"
    target = answer.status
    if target is PENDING:
        _row_event(session, row, invoice, f"{kind}.pending", base_url)
        return
    check_fulfilment_transition(FulfilmentStatus(row.status), target)
    row.status = target.value
    row.updated_at = clock.now()
    if target is FAILED:
        row.error_code = answer.error_code or "provider_error"
        row.error_message = answer.error_message or f"The provider refused the {kind}."
        _row_event(session, row, invoice, f"{kind}.failed", base_url)
        return
    payment = session.scalars(
        select(Payment)
        .where(Payment.id == row.payment_id, Payment.merchant_id == row.merchant_id)
        .with_for_update()
    ).one()
    # Only one operation is pending per invoice, so the authorisation still covers this one.
    assert row.amount <= payment.amount_authorized, (row.id, row.amount, payment.id)
    step = provider_amount(payment, row.amount)
    payment.amount_authorized -= row.amount
    invoice.amount_authorized -= row.amount
    if isinstance(row, Delivery):
        _delivered(session, invoice, payment, row, step, answer, settings)
    else:
        _released(session, invoice, payment, row, answer, settings)
    _row_event(session, row, invoice, f"{kind}.succeeded", base_url)


def _move_lines(invoice: Invoice, row: Row, attribute: str) -> None:
    units: dict[str, int] = {}
    for item in row.line_items or []:
        units[str(item["line_item"])] = units.get(str(item["line_item"]), 0) + int(item["quantity"])
    for line in invoice.line_items:
        if line.id in units:
            setattr(line, attribute, getattr(line, attribute) + units[line.id])


# -- cancellations --------------------------------------------------------------------------


def start_cancellation(
    session: Session, caller: Caller, invoice_id: str, body: CancellationCreate | None,
    settings: Settings,
) -> tuple[str, ProviderCall | None]:  # fmt: skip
    """Step 1: cancel an unpaid invoice at once, or record a pending release of an authorisation.

    Returns the cancellation's id, and the provider call still to make (None when done).
    """
    invoice = load_for_change(session, caller, invoice_id, settings.public_base_url)
    payment = _authorized_payment(session, invoice)
    reason = body.reason if body is not None else None
    if payment is None:
        return _cancel_unpaid(session, invoice, body, reason, settings), None
    _refuse_if_pending(session, invoice)
    cancellable = payment.amount_authorized
    taken, amount, _ = _taken(invoice, body, cancellable)
    if amount > cancellable:
        raise CancellationExceedsCancellable(
            f"At most {invoice.currency} {cancellable} is authorised and not delivered; "
            f"{amount} was asked.",
            cancellable=cancellable,
        )
    row = _new_row(Cancellation, "can", invoice, payment, amount, taken, PENDING, reason=reason)
    session.add(row)
    session.flush()
    _row_event(session, row, invoice, "cancellation.created", settings.public_base_url)
    provider = payment.provider or "unknown"
    call = ProviderCall("cancellation", row.id, row.merchant_id, row.livemode, payment.id,
                        provider_amount(payment, amount), provider)  # fmt: skip
    return row.id, call


def _cancel_unpaid(
    session: Session, invoice: Invoice, body: CancellationCreate | None, reason: str | None,
    settings: Settings,
) -> str:  # fmt: skip
    """Cancel all or part of an invoice on which no money has moved (no provider involved)."""
    status = Status(invoice.status)
    if status not in (Status.DRAFT, Status.CREATED) or invoice.amount_paid:
        if invoice.amount_paid:
            why = "it has received money (refund it instead)"
        else:
            why = "it is neither unpaid nor authorised and undelivered"
        raise InvoiceNotCancellable(
            f"An invoice that is {status.value} cannot be cancelled: {why}.",
            invoice_status=status.value,
        )
    taken, amount, everything = _taken(invoice, body, invoice.amount)
    if amount > invoice.amount:
        raise CancellationExceedsCancellable(
            f"At most {invoice.currency} {invoice.amount} can be cancelled; {amount} was asked.",
            cancellable=invoice.amount,
        )
    if amount == invoice.amount and not everything:
        taken = rules.take_all(_lines(invoice))  # all of it: a full cancellation
        everything = True
    row = _new_row(Cancellation, "can", invoice, None, amount, taken, SUCCEEDED, reason=reason)
    session.add(row)
    session.flush()
    _move_lines(invoice, row, "quantity_cancelled")
    base_url = settings.public_base_url
    if everything:
        change_status(session, invoice, Status.CANCELLED, Trigger.CANCEL, base_url)
    else:
        _lower_amount(session, invoice, row, base_url)
    _row_event(session, row, invoice, "cancellation.succeeded", base_url)
    return str(row.id)


def _lower_amount(session: Session, invoice: Invoice, row: Cancellation, base_url: str) -> None:
    invoice.amount -= row.amount
    invoice.amount_cancelled += row.amount
    invoice.updated_at = clock.now()
    events.record(
        session, merchant_id=invoice.merchant_id, livemode=invoice.livemode,
        type="invoice.partially_cancelled", invoice_id=invoice.id,
        data={"object": render_invoice(invoice, base_url), "cancellation": row.id,
              "amount": row.amount},
    )  # fmt: skip


def _released(
    session: Session, invoice: Invoice, payment: Payment, row: Cancellation, answer: Answer,
    settings: Settings,
) -> None:  # fmt: skip
    """The provider released `row.amount` of the payment's authorisation."""
    base_url = settings.public_base_url
    _move_lines(invoice, row, "quantity_cancelled")
    payment.updated_at = clock.now()
    released_all = payment.amount_authorized == 0
    if released_all and invoice.amount_paid == 0 and invoice.status == Status.PROCESSED:
        # Nothing was captured and nothing stays authorised: the whole invoice is cancelled.
        check_payment_transition(PaymentStatus.AUTHORIZED, PaymentStatus.CANCELLED)
        payment.status = PaymentStatus.CANCELLED.value
        _payment_event(session, payment, invoice, "payment.cancelled", base_url)
        change_status(session, invoice, Status.CANCELLED, Trigger.CANCEL_AUTHORIZATION, base_url)
        return
    _lower_amount(session, invoice, row, base_url)
    if released_all and payment.amount_received > 0:
        # The rest was delivered: what the payment captured is all it will capture.
        reference = payment.provider_reference or ""
        apply_result(session, invoice, payment,
                     PaymentResult(Outcome.SUCCEEDED, reference, payer_received(payment),
                                   raw=answer.raw), settings)  # fmt: skip
    elif released_all:
        check_payment_transition(PaymentStatus.AUTHORIZED, PaymentStatus.CANCELLED)
        payment.status = PaymentStatus.CANCELLED.value
        _payment_event(session, payment, invoice, "payment.cancelled", base_url)
    else:
        _payment_event(session, payment, invoice, "payment.updated", base_url)


# -- deliveries -----------------------------------------------------------------------------


def start_delivery(
    session: Session, caller: Caller, invoice_id: str, body: DeliveryCreate | None,
    settings: Settings,
) -> ProviderCall:  # fmt: skip
    """Step 1: record a pending delivery of an authorised invoice."""
    invoice = load_for_change(session, caller, invoice_id, settings.public_base_url)
    status = Status(invoice.status)
    payment = _authorized_payment(session, invoice)
    if (
        status is not Status.PROCESSED
        or payment is None
        or payment.method not in rules.CAPTURE_ON_DELIVERY
    ):
        raise InvoiceNotDeliverable(
            f"An invoice that is {status.value} has no authorisation of a capture-on-delivery "
            "method left to deliver.",
            invoice_status=status.value,
        )
    _refuse_if_pending(session, invoice)
    deliverable = payment.amount_authorized
    taken, amount, _ = _taken(invoice, body, deliverable)
    if amount > deliverable:
        raise DeliveryExceedsDeliverable(
            f"At most {invoice.currency} {deliverable} is authorised and not yet delivered or "
            f"cancelled; {amount} was asked.",
            deliverable=deliverable,
        )
    row = _new_row(Delivery, "dlv", invoice, payment, amount, taken, PENDING,
                   provider_reference=None)  # fmt: skip
    session.add(row)
    session.flush()
    _row_event(session, row, invoice, "delivery.created", settings.public_base_url)
    step = provider_amount(payment, amount)
    return ProviderCall("delivery", row.id, row.merchant_id, row.livemode, payment.id, step,
                        payment.provider or "unknown")  # fmt: skip


def _delivered(
    session: Session, invoice: Invoice, payment: Payment, row: Delivery, step: int,
    answer: Answer, settings: Settings,
) -> None:  # fmt: skip
    """The provider captured `step` (payer's currency) for `row.amount`: record the money."""
    _move_lines(invoice, row, "quantity_delivered")
    captured = payer_received(payment) + step
    result = answer.result
    if result is not None and result.amount_received != captured:
        log.warning("provider reports %s captured for %s; Quittance counts %s",
                    result.amount_received, payment.id, captured)  # fmt: skip
    reference = (result.reference if result is not None else "") or payment.provider_reference
    if reference:
        row.provider_reference = reference
    outcome = Outcome.SUCCEEDED if payment.amount_authorized == 0 else Outcome.AUTHORIZED
    # apply_result moves the payment's and invoice's money and posts the ledger capture.
    apply_result(session, invoice, payment,
                 PaymentResult(outcome, reference or "", captured, raw=answer.raw),
                 settings)  # fmt: skip


# -- reading --------------------------------------------------------------------------------


def get_row(session: Session, caller: Caller, kind: Kind, row_id: str) -> Row:
    model: type[Row] = Cancellation if kind == "cancellation" else Delivery
    row = cast(Row | None, session.scalars(
        select(model).where(
            model.id == row_id,
            model.merchant_id == caller.merchant_id,
            model.livemode == caller.livemode,
        )
    ).first())  # fmt: skip
    if row is None:
        missing = CancellationNotFound if kind == "cancellation" else DeliveryNotFound
        raise missing(f"No {kind} {row_id!r} exists.")
    return row


def document(row: Row, invoice: Invoice, base_url: str) -> dict[str, Any]:
    """A cancellation or delivery with its invoice as it now stands."""
    rendered = render_row(row)
    rendered["invoice"] = render_invoice(invoice, base_url)
    return rendered
