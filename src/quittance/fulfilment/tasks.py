"""The worker's fulfilment job: settle cancellations and deliveries left pending.

A release or capture whose answer was lost (a provider timeout, a crash between the recovery
points) stays `pending`. Once the operation is `payment_recovery_after` seconds old (the time a
call in flight is given), `recover_pending` asks the provider about it under its own id (the
cancellation's or delivery's id, the operation id it was sent with):

- the provider carried it out: its answer is recorded exactly as the original call's would have
  been (`service.apply_answer`: lines, authorised amounts, the captured money and its ledger
  posting);
- the provider never saw it (the process died before the call, or the provider refused it): it
  is sent now, under the same operation id, so an original call still on its way cannot
  capture or release a second time; that answer is recorded like any other (a refusal fails
  it, a timeout leaves it pending for the next round).

Nothing is inferred from the payment's totals, so a partial release is settled like any other.
No transaction is open while the provider is asked; the answer is recorded under the invoice's
lock, and an operation another process settled meanwhile is left alone (the provider answers a
repeated operation id with its first answer, so two workers never move money twice).
"""

import logging
from datetime import datetime, timedelta

from sqlalchemy import BindParameter, ColumnElement, and_, or_, select

from quittance import clock
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.domain.fulfilment import FulfilmentStatus
from quittance.fulfilment.service import (
    PENDING,
    SUCCEEDED,
    Answer,
    Kind,
    ProviderCall,
    Row,
    apply_answer,
    call_provider,
    lock_row,
    provider_amount,
)
from quittance.models import Cancellation, Delivery, Payment
from quittance.providers.base import ProviderError
from quittance.providers.registry import ProviderNotAvailable, get_provider

log = logging.getLogger("quittance.fulfilment")
BATCH = 50
KINDS: tuple[tuple[Kind, type[Row]], ...] = (("delivery", Delivery), ("cancellation", Cancellation))


def _of_payment(model: type[Row]) -> ColumnElement[bool]:
    return and_(Payment.id == model.payment_id, Payment.merchant_id == model.merchant_id)


def _is_due(model: type[Row], cutoff: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    return and_(model.status == FulfilmentStatus.PENDING.value, model.updated_at <= cutoff)


def recovery_cutoff(settings: Settings, now: datetime) -> datetime:
    """Operations last changed at or before this are due: their call has ended."""
    return now - timedelta(seconds=settings.payment_recovery_after)


def any_due(cutoff: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """Whether `due` would find an operation at `cutoff` (`recovery_cutoff`): what the
    worker's look for due work (`jobs/due.py`) asks about."""
    pending = [
        select(model.id).join(Payment, _of_payment(model)).where(_is_due(model, cutoff)).exists()
        for _kind, model in KINDS
    ]
    return or_(*pending)


def due(db: Database, settings: Settings, limit: int = BATCH) -> list[ProviderCall]:
    """The provider calls of pending cancellations and deliveries old enough that their call
    has ended, as they were first sent (the amount comes from the payment's authorisation,
    which nothing else changes while one of its invoice's operations is pending)."""
    cutoff = recovery_cutoff(settings, clock.now())
    found: list[ProviderCall] = []
    with db.read() as session:
        for kind, model in KINDS:
            rows = session.execute(
                select(model.id, model.merchant_id, model.livemode, model.amount, Payment)
                .join(Payment, _of_payment(model))
                .where(_is_due(model, cutoff))
                .order_by(model.updated_at)
                .limit(limit)
            )
            for row_id, merchant_id, livemode, amount, payment in rows:
                found.append(ProviderCall(
                    kind, row_id, merchant_id, livemode, payment.id,
                    provider_amount(payment, amount), payment.provider or "unknown",
                ))  # fmt: skip
    return found


def ask(call: ProviderCall, settings: Settings) -> Answer:
    """What became of a pending operation: the provider's recorded answer, or (if it never saw
    the operation) the answer to sending it again under the same operation id.

    Raises `ProviderError` or `ProviderNotAvailable` when the provider cannot be asked.
    """
    provider = get_provider(call.provider, settings, livemode=call.livemode)
    result = provider.operation_status(call.row_id)
    if result is not None:
        return Answer(SUCCEEDED, result, raw=result.raw)
    log.info("the provider never saw %s %s; sending it again", call.kind, call.row_id)
    return call_provider(call, settings)


def recover_pending(db: Database, settings: Settings) -> int:
    """Settle the pending cancellations and deliveries whose call has ended.

    Returns how many were settled. Meant to run in the worker loop next to the payment job.
    """
    settled = 0
    for call in due(db, settings):
        try:
            answer = ask(call, settings)
        except (ProviderError, ProviderNotAvailable) as exc:
            log.warning("could not ask about %s %s: %s", call.kind, call.row_id, exc)
            continue
        with db.write() as session:
            row, invoice = lock_row(session, call.kind, call.merchant_id, call.row_id)
            if row.status != PENDING.value:
                continue  # settled meanwhile (by its own request or another worker)
            if answer.status is PENDING:
                row.updated_at = clock.now()  # no answer again: ask after another delay
                log.warning("%s %s is still waiting for the provider's answer",
                            call.kind, call.row_id)  # fmt: skip
                continue
            apply_answer(session, invoice, row, answer, settings)
            settled += 1
    return settled
