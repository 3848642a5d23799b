"""Pay an invoice with recovery points (DESIGN §12).

1. Lock the invoice, check it is payable, record the attempt (a `pending` payment whose id is
   the provider's idempotency key) and move the invoice to `processing`: commit.
2. Call the provider, outside any transaction, trying the method's connections in order: an
   error or timeout moves on to the next connection, a decline ends the attempt.
3. Record the answer: commit. If the process dies between 1 and 3, the worker asks the
   provider what happened to the payment and finishes the attempt (`payment/tasks.py`).
"""

import enum
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from quittance import clock
from quittance.auth.dependencies import Caller
from quittance.config import Settings
from quittance.db.rows import build, fetch, insert_rows, row_version, rows_read, write_back
from quittance.domain.errors import Conflict, NotFound, QuittanceError
from quittance.domain.exchange import ExchangeRate, convert, received_value
from quittance.domain.fees import FeeSchedule, Received, Terms, advance, charge, commission
from quittance.domain.ids import new_id
from quittance.domain.invoice import PAYABLE, Status, Trigger
from quittance.domain.payment import EVENTS, OPEN, PaymentStatus, check_payment_transition
from quittance.event import service as events
from quittance.invoice import repository as invoice_repository
from quittance.invoice.schemas import render_invoice
from quittance.invoice.service import apply_lifetime, change_status, load_for_change
from quittance.ledger.service import post_capture
from quittance.merchant.service import options_snapshot
from quittance.models import Customer, Invoice, Payment, PaymentMethod
from quittance.payment.options import payer_country
from quittance.payment.routing import (
    PaymentMethodNotAvailable,
    Route,
    ensure_defaults,
    method_routing,
    unavailable_reason,
)
from quittance.payment.schemas import PayRequest, render_payment
from quittance.payment_method.service import get_payment_method, new_payment_method
from quittance.pricing.repository import fee_schedule
from quittance.pricing.service import rate_for
from quittance.providers.base import Outcome, PaymentRequest, PaymentResult, ProviderError
from quittance.providers.registry import ProviderNotAvailable, get_provider

log = logging.getLogger("quittance.payment")
DESCRIPTOR_LIMIT = 22  # the card networks' statement descriptor length


class InvoiceNotPayable(Conflict):
    code = "invoice_not_payable"
    title = "The invoice cannot be paid now"


class PaymentMethodRequired(QuittanceError):
    status = 422
    code = "payment_method_required"
    title = "A payment method is required"


class PaymentNotFound(NotFound):
    code = "payment_not_found"


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the provider call needs, copied out of the session after the first commit.

    `amount` and `currency` are what the provider is asked for: the payer's amount, with the
    commission on top and in the payer's currency when the payer pays in another one.
    """

    payment_id: str
    merchant_id: str
    livemode: bool
    invoice_id: str
    amount: int
    currency: str
    method: str
    token: str | None
    descriptor: str
    routes: tuple[Route, ...]
    # The method's fee schedule in the invoice's currency as the attempt read it: the answer
    # of this same request prices its money with it instead of reading it again.
    schedule: FeeSchedule | None
    # The invoice and the payment as the attempt wrote them (detached). On PostgreSQL their
    # writes were tracked: the answer of this same request writes them back if their rows are
    # still those versions, instead of reading them again (see `record_call`).
    rows: tuple[Invoice, Payment] | None = None


class _Unread(enum.Enum):
    UNREAD = enum.auto()


UNREAD: Final = _Unread.UNREAD  # `apply_result`: read the fee schedule in force now


@dataclass(slots=True)
class CallOutcome:
    route: Route | None
    result: PaymentResult | None
    routing: list[dict[str, Any]] = field(default_factory=list)
    error: ProviderError | None = None


def descriptor(template: str, merchant: str, invoice: Invoice) -> str:
    """Fill the statement descriptor template and cut it to the card networks' limit."""
    text = (
        template.replace("{merchant}", merchant)
        .replace("{reference}", invoice.reference or invoice.id)
        .replace("{invoice_id}", invoice.id)
    )
    return text[:DESCRIPTOR_LIMIT]


def start_attempt(
    session: Session,
    caller: Caller,
    invoice_id: str,
    body: PayRequest | None,
    settings: Settings,
    *,
    country_header: str | None = None,
    kept: Invoice | None = None,
) -> Attempt:
    """Step 1: record the attempt and move the invoice to `processing`.

    The payer's country is decided as for pay options: the customer's, else the CDN header's.
    `kept`: the invoice as this process created it (`invoice/kept.py`), used instead of
    reading it: its write-back then expects its row unchanged, and fails otherwise
    (`StaleDataError`), for the attempt to be run again on the invoice read and locked.
    """
    base_url = settings.public_base_url
    if kept is not None:
        invoice = apply_lifetime(session, kept, base_url)
    else:  # locked and detached: its changes are written with one UPDATE at the end
        invoice = load_for_change(session, caller, invoice_id, base_url, detached=True)
    if invoice.status not in PAYABLE:
        raise InvoiceNotPayable(
            f"An invoice that is {invoice.status} cannot be paid.", invoice_status=invoice.status
        )
    method = _payment_method(session, caller, invoice, body, settings)
    config = method_routing(session, caller.merchant_id, caller.livemode, method.type)
    if config is None:
        ensure_defaults(session, caller.merchant_id, caller.livemode)
        config = method_routing(session, caller.merchant_id, caller.livemode, method.type)
    due = invoice.amount - invoice.amount_paid
    country = payer_country(session, invoice, None, country_header).code
    reason = unavailable_reason(config, invoice, due, country)
    chosen = list(config.routes) if config is not None and reason is None else []
    if reason is None and not chosen:
        reason = "No enabled provider connection is set up for this payment method."
    if reason is not None:
        raise PaymentMethodNotAvailable(reason, method=method.type)
    options = options_snapshot(session, caller.merchant_id, caller.livemode)
    price = price_attempt(
        session, invoice, method.type, due, include_commission=options.include_commission,
        payer_currency=body.payment_currency if body is not None else None,
    )  # fmt: skip
    now = clock.now()
    invoice.payments_count += 1
    payment = build(
        Payment,
        id=new_id("pay"),
        merchant_id=caller.merchant_id,
        livemode=caller.livemode,
        invoice_id=invoice.id,
        attempt=invoice.payments_count,
        status=PaymentStatus.PENDING.value,
        method=method.type,
        payment_method_id=method.id,
        customer_id=invoice.customer_id,
        amount=due,
        currency=invoice.currency,
        amount_received=0,
        amount_authorized=0,
        commission=0,
        payer_currency=price.payer_currency,
        payer_amount=price.payer_amount,
        payer_received=0,
        exchange_rate=price.rate.rate if price.rate is not None else None,
        provider=chosen[0].provider,
        connection_id=chosen[0].connection_id,
        routing=[
            {"connection": r.connection_id, "provider": r.provider, "outcome": "planned"}
            for r in chosen
        ],
        next_check_at=now + timedelta(seconds=settings.payment_recovery_after),
        created_at=now,
        updated_at=now,
    )
    # Inserted through the driver (as create inserts invoices): a new attempt needs none of the
    # unit of work's tracking. Its write is tracked, as the invoice's: the answer writes both
    # back without reading them again, if nobody wrote them since (`record_call`).
    insert_rows(session, [payment], track=True)
    moved = change_status(session, invoice, Status.PROCESSING, Trigger.ATTEMPT_START, base_url)
    _payment_event(session, payment, invoice, "payment.created", settings, moved.data["object"])
    write_back(session, invoice, track=True, expect_version=kept is not None)
    return Attempt(
        payment.id, caller.merchant_id, caller.livemode, invoice.id, price.payer_amount,
        price.payer_currency or invoice.currency, method.type, method.provider_token,
        descriptor(options.descriptor_template, options.merchant_name, invoice), tuple(chosen),
        price.schedule, (invoice, payment),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Price:
    """What an attempt asks the payer for (see `price_attempt`)."""

    commission: int  # the schedule's commission on the amount due (invoice currency)
    on_top: int  # the part of it the payer pays on top (0: from the merchant's proceeds)
    payer_currency: str | None  # None: the invoice's currency
    payer_amount: int  # what the provider is asked for, in the payer's currency
    rate: ExchangeRate | None
    schedule: FeeSchedule | None = None  # the schedule that priced it (None: no commission)


def price_attempt(
    session: Session, invoice: Invoice, method: str, due: int, *, include_commission: bool,
    payer_currency: str | None = None,
) -> Price:  # fmt: skip
    """Price an attempt: the method's commission on the amount due and who pays it, converted
    into the payer's currency at the newest rate of the pair (invoice currency → payer's).

    With `include_commission` the payer is asked for the amount due plus the commission;
    otherwise for the amount due. In another currency that total is converted once, rounded
    half up. A commission on top too small to change the converted amount is not charged on
    top: it is then taken from the merchant's proceeds like any other.
    """
    schedule = fee_schedule(session, invoice.merchant_id, invoice.livemode, method,
                            invoice.currency)  # fmt: skip
    charged = charge(schedule or FeeSchedule.zero(invoice.currency), due,
                     include_commission=include_commission)  # fmt: skip
    on_top = charged.commission if include_commission else 0
    if payer_currency is None or payer_currency == invoice.currency:
        return Price(charged.commission, on_top, None, due + on_top, None, schedule)
    rate = rate_for(session, invoice.merchant_id, invoice.livemode, invoice.currency,
                    payer_currency)  # fmt: skip
    asked = convert(due + on_top, invoice.currency, payer_currency, rate).amount_to
    if on_top and asked == convert(due, invoice.currency, payer_currency, rate).amount_to:
        on_top = 0
    return Price(charged.commission, on_top, payer_currency, asked, rate, schedule)


def _payment_method(
    session: Session, caller: Caller, invoice: Invoice, body: PayRequest | None,
    settings: Settings,
) -> PaymentMethod:  # fmt: skip
    chosen = body.payment_method if body is not None else None
    if isinstance(chosen, str):
        method = get_payment_method(session, caller, chosen)
        if method.customer_id is not None and method.customer_id != invoice.customer_id:
            raise PaymentMethodNotAvailable(
                "This saved payment method belongs to another customer than the invoice's.",
                code="payment_method_customer_mismatch",
            )
        return method
    if chosen is not None:
        method = new_payment_method(caller, chosen, settings)
        insert_rows(session, [method])  # only read from here on
        return method
    if invoice.customer_id is None:
        raise PaymentMethodRequired(
            "Give a payment_method: the invoice has no customer with a default method."
        )
    customer = session.get(Customer, invoice.customer_id)
    if customer is None or customer.default_payment_method_id is None:
        raise PaymentMethodRequired(
            "Give a payment_method: the invoice's customer has no default method."
        )
    return get_payment_method(session, caller, customer.default_payment_method_id)


def call_provider(attempt: Attempt, settings: Settings) -> CallOutcome:
    """Step 2: try the connections in order until one answers (no transaction is open)."""
    outcome = CallOutcome(None, None)
    for route in attempt.routes:
        started = time.monotonic()
        entry: dict[str, Any] = {"connection": route.connection_id, "provider": route.provider}
        try:
            provider = get_provider(route.provider, settings, livemode=attempt.livemode)
            result = provider.authorize(
                PaymentRequest(
                    attempt.payment_id, attempt.amount, attempt.currency, attempt.method,
                    attempt.token, attempt.descriptor, options=route.options,
                )
            )  # fmt: skip
        except (ProviderError, ProviderNotAvailable) as exc:
            error = exc if isinstance(exc, ProviderError) else ProviderError(exc.message)
            entry.update(outcome="error", error=error.code)
            outcome.error = error
        except Exception:  # an adapter fault counts as a provider error: try the next one
            log.exception("provider %s failed on %s", route.provider, attempt.payment_id)
            entry.update(outcome="error", error="provider_error")
            outcome.error = ProviderError("The provider failed.")
        else:
            entry.update(outcome=result.outcome.value)
            entry["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
            outcome.routing.append(entry)
            outcome.route, outcome.result = route, result
            return outcome
        entry["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        outcome.routing.append(entry)
    return outcome


@dataclass(frozen=True, slots=True)
class Recorded:
    """The answer recorded: the payment and its invoice (detached, as written), and the
    invoice's document as it now stands when its events rendered it."""

    payment: Payment
    invoice: Invoice
    invoice_document: dict[str, Any] | None


def written_rows(attempt: Attempt) -> tuple[Invoice, Payment] | None:
    """The attempt's invoice and payment if their writes noted their row versions (PostgreSQL):
    what `record_call` may work from instead of reading them."""
    rows = attempt.rows
    return rows if rows is not None and all(row_version(row) for row in rows) else None


def record_call(
    session: Session, attempt: Attempt, call: CallOutcome, settings: Settings, *,
    kept: tuple[Invoice, Payment] | None = None,
) -> Recorded:  # fmt: skip
    """Step 3: record the provider's answer.

    If the worker already finished the attempt, only money it did not know of is recorded
    (a late answer never loses a capture). If no connection answered and one of them timed
    out, the outcome is unknown, not a failure: the payment stays pending and the worker asks
    the provider.

    `kept`: the invoice and payment as the attempt wrote them (`Attempt.rows`), usable once
    (they are changed here). When both carry their row's version (PostgreSQL), they are not
    read again: their write-backs expect those versions, so if anything wrote either row
    since, the write fails (`StaleDataError`), the unit of work rolls back, and it is run again
    without `kept`, on rows read and locked.
    """
    if kept is not None and all(row_version(row) for row in kept):
        invoice, payment = kept
        document = _record(session, payment, invoice, call, settings, attempt.schedule)
        write_back(session, invoice, expect_version=True)  # the invoice first, as everywhere
        write_back(session, payment, expect_version=True)
        return Recorded(payment, invoice, document)
    # Both locked (the invoice first, as everywhere) and detached, read together (one round
    # trip on PostgreSQL): their changes are written with one UPDATE each.
    found, payments = fetch(
        session,
        invoice_repository.locked_read(session, attempt.merchant_id, attempt.invoice_id),
        rows_read(
            session, Payment, {"id": attempt.payment_id, "merchant_id": attempt.merchant_id},
            lock=True,
        ),
    )  # fmt: skip
    if found is None or not payments:
        raise PaymentNotFound(f"No payment {attempt.payment_id!r} exists.")
    invoice, payment = found, payments[0]
    document = _record(session, payment, invoice, call, settings, attempt.schedule)
    write_back(session, invoice)
    write_back(session, payment)
    return Recorded(payment, invoice, document)


def _record(
    session: Session, payment: Payment, invoice: Invoice, call: CallOutcome, settings: Settings,
    schedule: FeeSchedule | None,
) -> dict[str, Any] | None:  # fmt: skip
    result = call.result
    if payment.status not in OPEN:
        if result is not None and result.amount_received > payer_received(payment):
            return apply_result(session, invoice, payment, result, settings)
        return None
    payment.routing = call.routing
    if call.route is not None:
        payment.provider = call.route.provider
        payment.connection_id = call.route.connection_id
    if result is None:
        timed_out = [r for r in call.routing if r.get("error") == "provider_timeout"]
        if timed_out:
            payment.provider = str(timed_out[0]["provider"])
            payment.connection_id = str(timed_out[0]["connection"])
            result = PaymentResult(Outcome.PENDING, "")
        else:
            error = call.error or ProviderError("No provider connection answered.")
            result = PaymentResult(Outcome.DECLINED, "", error_code=error.code,
                                   error_message=error.message)  # fmt: skip
    return apply_result(session, invoice, payment, result, settings, schedule=schedule)


def lock_payment(
    session: Session, merchant_id: str, payment_id: str, *, invoice_id: str | None = None
) -> tuple[Payment, Invoice]:
    """Lock an invoice and then its payment (always in that order, to avoid deadlocks).

    `invoice_id`, when the caller knows the payment's invoice, saves looking it up.
    """
    if invoice_id is None:
        invoice_id = session.scalar(
            select(Payment.invoice_id).where(
                Payment.id == payment_id, Payment.merchant_id == merchant_id
            )
        )
    if invoice_id is None:
        raise PaymentNotFound(f"No payment {payment_id!r} exists.")
    invoice = invoice_repository.lock(session, merchant_id, invoice_id)
    payment = session.scalars(
        _LOCK_PAYMENT, {"payment_id": payment_id, "merchant_id": merchant_id}
    ).one()
    return payment, invoice


# Built once: a statement built per call costs its construction and its cache key every time.
_LOCK_PAYMENT = (
    select(Payment)
    .where(Payment.id == bindparam("payment_id"), Payment.merchant_id == bindparam("merchant_id"))
    .with_for_update()
)


def apply_result(
    session: Session, invoice: Invoice, payment: Payment, result: PaymentResult,
    settings: Settings, *, schedule: FeeSchedule | _Unread | None = UNREAD,
) -> dict[str, Any] | None:  # fmt: skip
    """Move a payment and its invoice to what the provider says; the one place that does.

    `schedule` is the payment's fee schedule when the caller has just read it (the pay
    request's own answer); otherwise the one in force now is read. Return the invoice's
    document as it now stands if an event rendered it (one render serves every event).
    """
    now = clock.now()
    before = PaymentStatus(payment.status)
    first_answer = payment.provider_reference is None and bool(result.reference)
    moved, received = receive(session, invoice, payment, result.amount_received,
                              schedule=schedule)  # fmt: skip
    if result.reference:
        payment.provider_reference = result.reference
    payment.provider_response = result.raw
    payment.next_action = result.next_action
    payment.updated_at = now
    payment.lease_until = None
    target = {
        Outcome.SUCCEEDED: PaymentStatus.SUCCEEDED,
        Outcome.AUTHORIZED: PaymentStatus.AUTHORIZED,
        Outcome.PENDING: PaymentStatus.PENDING,
        Outcome.REQUIRES_ACTION: PaymentStatus.REQUIRES_ACTION,
        Outcome.DECLINED: PaymentStatus.FAILED,
    }[result.outcome]
    if target is not before:
        check_payment_transition(before, target)
        payment.status = target.value
    if target in OPEN:
        payment.next_check_at = now + timedelta(seconds=settings.payment_poll_interval)
    else:
        payment.next_check_at = None
    if target is PaymentStatus.FAILED:
        payment.error_code = result.error_code or "payment_failed"
        payment.error_message = result.error_message or "The payment failed."
    if target is PaymentStatus.AUTHORIZED and before is not PaymentStatus.AUTHORIZED:
        payment.amount_authorized = payment.amount
        invoice.amount_authorized += payment.amount
    invoice.updated_at = now
    document = _move_invoice(session, invoice, payment, result, received, settings)
    if target is not before:
        kind = EVENTS.get(target, "payment.pending")
    elif first_answer and target is PaymentStatus.PENDING:
        # The provider's first answer: it may carry transfer instructions for the payer.
        kind = "payment.pending"
    elif moved:
        kind = "payment.updated"
    else:
        return document
    return _payment_event(session, payment, invoice, kind, settings, document)


def payer_received(payment: Payment) -> int:
    """Return what the provider has received for a payment, in the payer's currency."""
    # Payments started before commission and exchange existed: the payer paid the invoice.
    return payment.amount_received if payment.payer_amount is None else payment.payer_received


def payment_terms(
    session: Session, payment: Payment, *, schedule: FeeSchedule | _Unread | None = UNREAD
) -> tuple[Terms, ExchangeRate | None]:  # fmt: skip
    """Return what a payment asked for (`domain.fees.Terms`) and its exchange rate, if any.

    Who pays the commission is read from the payment itself: on top when the payer was asked
    for more than the amount due (converted, when converted). The commission on top is the
    difference in the invoice's currency; after a conversion it is the method's commission on
    the amount due under the schedule in force now (the same one, unless the merchant changed
    it while the money was on its way). From proceeds, the schedule in force when the money
    arrives prices it.
    """
    rate = None
    plain = payment.amount
    if payment.payer_currency is not None and payment.payer_currency != payment.currency:
        assert payment.exchange_rate is not None
        rate = ExchangeRate(payment.currency, payment.payer_currency, payment.exchange_rate)
        plain = convert(payment.amount, payment.currency, payment.payer_currency, rate).amount_to
    asked = plain if payment.payer_amount is None else payment.payer_amount
    if asked > plain and rate is None:
        return Terms(payment.amount, True, asked - payment.amount), rate
    if schedule is UNREAD:
        schedule = fee_schedule(session, payment.merchant_id, payment.livemode, payment.method,
                                payment.currency)  # fmt: skip
    if asked <= plain:
        return Terms(payment.amount, False, 0, schedule), rate
    on_top = 0 if schedule is None else commission(schedule, payment.amount)
    return Terms(payment.amount, True, on_top), rate


def receive(
    session: Session, invoice: Invoice, payment: Payment, total: int, *,
    schedule: FeeSchedule | _Unread | None = UNREAD,
) -> tuple[int, int]:  # fmt: skip
    """Record that the provider now holds `total` (cumulative, payer's currency) for a payment.

    The new money is valued in the invoice's currency (`domain.exchange.received_value`),
    split between the invoice and commission (`domain.fees.advance`), added to the payment
    and the invoice, and posted to the ledger in the same unit of work. Return the new payer
    money and the part of it that counts towards the invoice's `amount_paid`.
    """
    if payment.payer_amount is None:
        payment.payer_amount, payment.payer_received = payment.amount, payment.amount_received
    new_money = total - payment.payer_received
    if new_money <= 0:
        return 0, 0
    terms, rate = payment_terms(session, payment, schedule=schedule)
    before = Received(payment.amount_received, payment.commission)
    if rate is None:
        value = total
    else:
        value = received_value(total, payment.payer_amount, terms.total, rate.quote, rate.base,
                               rate)  # fmt: skip
    after = advance(before, max(value, before.money(terms)), terms)
    paid, fee = after.paid - before.paid, after.commission - before.commission
    payment.payer_received = total
    payment.amount_received, payment.commission = after.paid, after.commission
    invoice.amount_paid += paid
    invoice.commission += fee
    if rate is not None:
        same = invoice.payment_currency == rate.quote and invoice.payment_amount is not None
        invoice.payment_amount = (invoice.payment_amount or 0) + new_money if same else new_money
        invoice.payment_currency, invoice.exchange_rate = rate.quote, rate.rate
    # A recovered attempt may not know its provider yet: take the first one it was routed to.
    planned = [str(r["provider"]) for r in payment.routing if r.get("provider")]
    post_capture(
        session, merchant_id=invoice.merchant_id, livemode=invoice.livemode,
        provider=payment.provider or next(iter(planned), "unknown"), currency=invoice.currency,
        received=after.money(terms) - before.money(terms), invoice_id=invoice.id,
        payment_id=payment.id, commission=fee, include_commission=terms.include_commission,
        payer_currency=None if rate is None else rate.quote,
        payer_received=None if rate is None else new_money,
        exchange_rate=None if rate is None else rate.rate,
    )  # fmt: skip
    return new_money, paid


def _move_invoice(
    session: Session, invoice: Invoice, payment: Payment, result: PaymentResult, received: int,
    settings: Settings,
) -> dict[str, Any] | None:  # fmt: skip
    """Move the invoice after a payment's answer; return the invoice document its event
    carries, if it wrote one (the invoice as it now stands)."""
    base_url = settings.public_base_url
    status = Status(invoice.status)
    paid_in_full = invoice.amount_paid >= invoice.amount
    move: tuple[Status, Trigger] | None = None
    if status in (Status.PROCESSING, Status.PROCESS_PENDING):
        if result.outcome is Outcome.DECLINED:
            invoice.attempts_count += 1
            invoice.last_payment_error = {
                "code": payment.error_code or "payment_failed",
                "message": payment.error_message or "The payment failed.",
                "payment": payment.id,
            }
            if invoice.attempts_count >= invoice.attempts_limit:
                move = Status.PROCESS_FAILED, Trigger.ATTEMPTS_EXHAUSTED
            elif invoice.amount_paid > 0:
                move = Status.PARTIALLY_PROCESSED, Trigger.PAYMENT_FAILED
            else:
                move = Status.CREATED, Trigger.PAYMENT_FAILED
        elif paid_in_full or result.outcome is Outcome.AUTHORIZED:
            invoice.last_payment_error = None
            move = Status.PROCESSED, Trigger.PAYMENT_SUCCEEDED
        elif invoice.amount_paid > 0 and result.outcome is not Outcome.REQUIRES_ACTION:
            move = Status.PARTIALLY_PROCESSED, Trigger.PAYMENT_PARTIAL
        elif result.outcome is Outcome.PENDING and status is Status.PROCESSING:
            move = Status.PROCESS_PENDING, Trigger.PAYMENT_PENDING
        if move is None:
            return None
    elif not received:
        return None
    elif paid_in_full and status in (Status.CREATED, Status.PARTIALLY_PROCESSED):
        # Money outside an attempt: a later transfer, or a provider's late answer.
        invoice.last_payment_error = None
        move = Status.PROCESSED, Trigger.PAYMENT_SUCCEEDED
    elif status is Status.CREATED:
        move = Status.PARTIALLY_PROCESSED, Trigger.PAYMENT_PARTIAL
    if move is not None:
        event = change_status(session, invoice, *move, base_url)
        document: dict[str, Any] = event.data["object"]
        return document
    if status in (Status.EXPIRED, Status.TERMINATED, Status.CANCELLED, Status.PROCESS_FAILED):
        invoice.paid_late = True  # money is recorded, never dropped
        kind = "invoice.paid_late"
    else:
        kind = "invoice.payment_received"
    document = render_invoice(invoice, base_url)
    events.record(
        session, merchant_id=invoice.merchant_id, livemode=invoice.livemode, type=kind,
        invoice_id=invoice.id, data={"object": document, "payment": payment.id,
                                     "amount": received},
    )  # fmt: skip
    return document


def _payment_event(
    session: Session, payment: Payment, invoice: Invoice, kind: str, settings: Settings,
    invoice_document: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Write a payment event; return the invoice document it carries.

    `invoice_document`: the invoice rendered as it stands now, when the caller has it already.
    """
    options = options_snapshot(session, payment.merchant_id, payment.livemode)
    if invoice_document is None:
        invoice_document = render_invoice(invoice, settings.public_base_url)
    events.record(
        session,
        merchant_id=payment.merchant_id,
        livemode=payment.livemode,
        type=kind,
        invoice_id=invoice.id,
        data={
            "object": render_payment(
                payment, expose_provider_response=options.expose_internal_callback_data
            ),
            "invoice": invoice_document,
        },
    )
    return invoice_document


def get_payment(session: Session, caller: Caller, payment_id: str) -> Payment:
    payment = session.scalars(
        select(Payment).where(
            Payment.id == payment_id,
            Payment.merchant_id == caller.merchant_id,
            Payment.livemode == caller.livemode,
        )
    ).first()
    if payment is None:
        raise PaymentNotFound(f"No payment {payment_id!r} exists.")
    return payment
