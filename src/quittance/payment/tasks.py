"""The worker's payment job: ask providers about open payments and finish them.

It settles pending payments (`process_pending`), follows challenges, and heals attempts whose
answer was never recorded because the process died during the provider call: the provider is
asked under the payment's id; if it never saw the payment, the attempt failed and no money
moved. Payments are claimed with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so any
number of workers can run, and no transaction is open while a provider is asked.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BindParameter, ColumnElement, and_, or_, select

from quittance import clock
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.domain.payment import OPEN
from quittance.models import Payment
from quittance.payment.service import apply_result, lock_payment
from quittance.providers.base import Outcome, PaymentResult, ProviderError
from quittance.providers.registry import ProviderNotAvailable, get_provider

log = logging.getLogger("quittance.payment")
LEASE = timedelta(seconds=60)
BATCH = 50


@dataclass(frozen=True, slots=True)
class Claimed:
    payment_id: str
    merchant_id: str
    livemode: bool
    providers: tuple[str, ...]


def is_due(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """Open payments due for a look at `now` and not leased: what `claim` takes, and what the
    worker's look for due work (`jobs/due.py`) asks about."""
    return and_(
        Payment.status.in_([s.value for s in OPEN]),
        Payment.next_check_at <= now,
        or_(Payment.lease_until.is_(None), Payment.lease_until < now),
    )


def claim(db: Database, limit: int = BATCH) -> list[Claimed]:
    """Lease open payments that are due for a look."""
    now = clock.now()
    with db.write() as session:
        rows = list(
            session.scalars(
                select(Payment)
                .where(is_due(now))
                .order_by(Payment.next_check_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        claimed = []
        for payment in rows:
            payment.lease_until = now + LEASE
            planned = [str(r.get("provider")) for r in payment.routing if r.get("provider")]
            names = tuple(dict.fromkeys([*(filter(None, [payment.provider])), *planned]))
            claimed.append(Claimed(payment.id, payment.merchant_id, payment.livemode, names))
    return claimed


def ask(settings: Settings, claimed: Claimed) -> PaymentResult | None:
    """Ask each provider the attempt may have reached; None if none of them knows it."""
    for name in claimed.providers:
        provider = get_provider(name, settings, livemode=claimed.livemode)
        result = provider.status(claimed.payment_id)
        if result is not None:
            return result
    return None


def settle_open_payments(db: Database, settings: Settings) -> int:
    """Look at every due open payment once; return how many changed."""
    changed = 0
    for claimed in claim(db):
        reachable = True
        result: PaymentResult | None = None
        try:
            result = ask(settings, claimed)
        except (ProviderError, ProviderNotAvailable) as exc:
            log.warning("could not ask about %s: %s", claimed.payment_id, exc)
            reachable = False
        with db.write() as session:
            payment, invoice = lock_payment(session, claimed.merchant_id, claimed.payment_id)
            if payment.status not in OPEN:
                continue
            now = clock.now()
            if not reachable:  # ask again later; the provider may be down for a while
                payment.lease_until = None
                payment.next_check_at = now + timedelta(seconds=settings.payment_poll_interval)
                continue
            started = payment.created_at
            if result is None and now - started < timedelta(
                seconds=settings.payment_recovery_after
            ):
                # A call may still be on its way to the provider: ask again later.
                payment.lease_until = None
                payment.next_check_at = now + timedelta(seconds=settings.payment_poll_interval)
                continue
            payment.routing = [
                {**r, "outcome": "unknown"} if r.get("outcome") == "planned" else r
                for r in payment.routing
            ]
            if result is None:
                # The process died before the provider saw the attempt: no money moved.
                result = PaymentResult(
                    Outcome.DECLINED, "", error_code="attempt_interrupted",
                    error_message="The attempt was interrupted before the provider received "
                    "it; no money was taken.",
                )  # fmt: skip
            before = (payment.status, payment.amount_received)
            apply_result(session, invoice, payment, result, settings)
            changed += (payment.status, payment.amount_received) != before
    return changed
