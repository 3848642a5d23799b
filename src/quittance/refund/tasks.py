"""The worker's refund job: ask providers about pending refunds and finish them.

A refund is `pending` from the moment it is recorded (step 1) until the provider's answer is
recorded. Its `next_check_at` is set then (after `payment_recovery_after`, the delay a call
in flight is given) and after every pending answer (`payment_poll_interval`). The worker asks
the provider under the refund's id: a known refund's answer is recorded; a refund the provider
never received (the process died before the call) is sent now, with the same id as the
idempotency key, so a slow original call arriving later is not paid out twice. Refunds are
claimed with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so any number of workers can
run, and no transaction is open while a provider is asked.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BindParameter, ColumnElement, and_, or_, select

from quittance import clock
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.domain.refund import RefundStatus
from quittance.models import Refund
from quittance.providers.base import PaymentResult, ProviderError
from quittance.providers.registry import ProviderNotAvailable, get_provider
from quittance.refund.service import RefundCall, apply_result, call_provider, lock_refund

log = logging.getLogger("quittance.refund")
LEASE = timedelta(seconds=60)
BATCH = 50
_PENDING = RefundStatus.PENDING.value


@dataclass(frozen=True, slots=True)
class Claimed:
    call: RefundCall
    created_at: datetime


def is_due(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """Pending refunds due for a look at `now` and not leased: what `claim` takes, and what the
    worker's look for due work (`jobs/due.py`) asks about."""
    return and_(
        Refund.status == _PENDING,
        Refund.next_check_at <= now,
        or_(Refund.lease_until.is_(None), Refund.lease_until < now),
    )


def claim(db: Database, limit: int = BATCH) -> list[Claimed]:
    """Lease pending refunds that are due for a look."""
    now = clock.now()
    with db.write() as session:
        rows = list(
            session.scalars(
                select(Refund)
                .where(is_due(now))
                .order_by(Refund.next_check_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        claimed = []
        for refund in rows:
            refund.lease_until = now + LEASE
            amount = refund.amount if refund.payer_amount is None else refund.payer_amount
            call = RefundCall(refund.id, refund.merchant_id, refund.livemode, refund.payment_id,
                              amount, refund.provider)  # fmt: skip
            claimed.append(Claimed(call, refund.created_at))
    return claimed


def ask(settings: Settings, claimed: Claimed) -> PaymentResult | None:
    """Ask the provider about a refund; send it if the provider never saw it and it is late.

    None: the provider has not seen it, and a call may still be on its way.
    """
    call = claimed.call
    provider = get_provider(call.provider, settings, livemode=call.livemode)
    result = provider.refund_status(call.refund_id)
    if result is not None:
        return result
    if clock.now() - claimed.created_at < timedelta(seconds=settings.payment_recovery_after):
        return None
    # The process died before the provider received it: send it now, under the same id.
    return call_provider(call, settings)


def settle_open_refunds(db: Database, settings: Settings) -> int:
    """Look at every due pending refund once; return how many changed."""
    changed = 0
    for claimed in claim(db):
        result: PaymentResult | None = None
        try:
            result = ask(settings, claimed)
        except (ProviderError, ProviderNotAvailable) as exc:
            log.warning("could not ask about refund %s: %s", claimed.call.refund_id, exc)
        with db.write() as session:
            refund, invoice = lock_refund(session, claimed.call.merchant_id,
                                          claimed.call.refund_id)  # fmt: skip
            if refund.status != _PENDING:
                continue
            if result is None:  # ask again later
                refund.lease_until = None
                refund.next_check_at = clock.now() + timedelta(
                    seconds=settings.payment_poll_interval
                )
                continue
            apply_result(session, invoice, refund, result, settings)
            changed += refund.status != _PENDING
    return changed
