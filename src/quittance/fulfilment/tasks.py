"""The worker's fulfilment job: settle cancellations and deliveries left pending.

A release or capture whose answer was lost (a provider timeout, a crash between the recovery
points) stays `pending`. `recover_pending` asks the provider about the payment, once the
operation is `payment_recovery_after` seconds old, and settles what the answer proves:

- a delivery succeeded if the provider's captured total covers what Quittance had recorded
  plus the delivery (only one operation per invoice is ever pending, so this is unambiguous);
  otherwise nothing was captured and it fails with `capture_not_confirmed`;
- a cancellation of the whole open authorisation succeeded if the provider holds no open
  authorisation any more, and failed (`release_not_confirmed`) if it still holds all of it,
  uncaptured. A partial release cannot be told from the provider's status: it stays pending
  and is logged for an operator.

No transaction is open while the provider is asked; the answer is recorded under the invoice's
lock, and an operation another process settled meanwhile is left alone.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from quittance import clock
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.domain.fulfilment import FulfilmentStatus
from quittance.fulfilment.service import (
    FAILED,
    SUCCEEDED,
    Answer,
    Kind,
    Row,
    apply_answer,
    lock_row,
    provider_amount,
)
from quittance.models import Cancellation, Delivery, Payment
from quittance.payment.service import payer_received
from quittance.providers.base import Outcome, PaymentResult, ProviderError
from quittance.providers.registry import ProviderNotAvailable, get_provider

log = logging.getLogger("quittance.fulfilment")
BATCH = 50
KINDS: tuple[tuple[Kind, type[Row]], ...] = (("delivery", Delivery), ("cancellation", Cancellation))


@dataclass(frozen=True, slots=True)
class Due:
    kind: Kind
    row_id: str
    merchant_id: str
    livemode: bool
    payment_id: str
    provider: str


def due(db: Database, settings: Settings, limit: int = BATCH) -> list[Due]:
    """Pending cancellations and deliveries old enough that their call has ended."""
    cutoff = clock.now() - timedelta(seconds=settings.payment_recovery_after)
    found: list[Due] = []
    with db.read() as session:
        for kind, model in KINDS:
            rows = session.execute(
                select(model.id, model.merchant_id, model.livemode, model.payment_id,
                       Payment.provider)
                .join(Payment, Payment.id == model.payment_id)
                .where(model.status == FulfilmentStatus.PENDING.value,
                       model.updated_at <= cutoff)
                .order_by(model.updated_at)
                .limit(limit)
            )  # fmt: skip
            for row_id, merchant_id, livemode, payment_id, provider in rows:
                found.append(Due(kind, row_id, merchant_id, livemode, str(payment_id),
                                 provider or "unknown"))  # fmt: skip
    return found


def _verdict(item: Due, row_amount: int, payment: Payment, result: PaymentResult | None
             ) -> Answer | None:  # fmt: skip
    """What the provider's status proves about a pending operation; None if nothing."""
    if item.kind == "delivery":
        captured = result.amount_received if result is not None else 0
        if captured >= payer_received(payment) + provider_amount(payment, row_amount):
            return Answer(SUCCEEDED, result, raw=result.raw if result is not None else {})
        return Answer(FAILED, error_code="capture_not_confirmed",
                      error_message="The provider has no record of this capture; nothing was "
                      "captured. Deliver again.")  # fmt: skip
    if row_amount != payment.amount_authorized or result is None:
        return None
    if result.outcome is not Outcome.AUTHORIZED:
        return Answer(SUCCEEDED, result, raw=result.raw)
    if result.amount_received == payer_received(payment) == 0:
        return Answer(FAILED, error_code="release_not_confirmed",
                      error_message="The provider still holds the whole authorisation; nothing "
                      "was released. Cancel again.")  # fmt: skip
    return None


def recover_pending(db: Database, settings: Settings) -> int:
    """Settle the pending cancellations and deliveries the provider can account for.

    Returns how many were settled. Meant to run in the worker loop next to the payment job.
    """
    settled = 0
    for item in due(db, settings):
        try:
            provider = get_provider(item.provider, settings, livemode=item.livemode)
            result = provider.status(item.payment_id)
        except (ProviderError, ProviderNotAvailable) as exc:
            log.warning("could not ask about %s %s: %s", item.kind, item.row_id, exc)
            continue
        with db.write() as session:
            row, invoice = lock_row(session, item.kind, item.merchant_id, item.row_id)
            if row.status != FulfilmentStatus.PENDING.value:
                continue
            payment = session.get(Payment, item.payment_id)
            assert payment is not None
            answer = _verdict(item, row.amount, payment, result)
            if answer is None:
                row.updated_at = clock.now()  # ask again after another recovery delay
                log.warning("the provider's status does not tell whether %s %s happened; "
                            "it stays pending", item.kind, item.row_id)  # fmt: skip
                continue
            apply_answer(session, invoice, row, answer, settings)
            settled += 1
    return settled
