"""Which worker jobs have something to do: one read for a whole round.

A round of jobs with nothing to do used to cost a write transaction per job; now it costs
this read (`Probe`: through the driver, no transaction). Each column asks exactly what its
job's own claim asks, with the same conditions (so the same indexes), at the check's `now`.
The job then takes its own `now` a moment later, which can only find more: every condition
holds from some time on (`<= now`, a lease that has run out), so what is due at the check is
still due for the job, unless another worker took it meanwhile. A row that becomes due in
between is the next round's, as it would have been had the round started a moment earlier.
"""

from datetime import datetime

from sqlalchemy import ColumnElement, Engine, bindparam, exists, select

from quittance.config import Settings
from quittance.db.types import UTCDateTime
from quittance.domain.invoice import EXPIRABLE
from quittance.fulfilment import tasks as fulfilment_tasks
from quittance.jobs.probe import Probe
from quittance.models import IdempotencyKey, Invoice
from quittance.payment import tasks as payment_tasks
from quittance.refund import tasks as refund_tasks
from quittance.webhook import repository as webhook_repository

NOW = bindparam("now", type_=UTCDateTime())
RECOVERY_CUTOFF = bindparam("recovery_cutoff", type_=UTCDateTime())

# Job name -> whether the job has work at NOW. A job missing here runs every round.
CHECKS: dict[str, ColumnElement[bool]] = {
    # As `invoice.repository.overdue` (the claim of `invoice.tasks.expire_overdue`).
    "expire_invoices": exists().where(Invoice.status.in_(EXPIRABLE), Invoice.expires_at <= NOW),
    # As `idempotency.service.purge_expired`.
    "purge_idempotency_keys": exists().where(IdempotencyKey.expires_at <= NOW),
    "settle_payments": exists().where(payment_tasks.is_due(NOW)),
    "settle_refunds": exists().where(refund_tasks.is_due(NOW)),
    "settle_fulfilment": fulfilment_tasks.any_due(RECOVERY_CUTOFF),
    "dispatch_webhooks": webhook_repository.any_due(NOW),
}

_STATEMENT = select(*(check.label(name) for name, check in CHECKS.items()))


class DueCheck:
    """The look for due work of every job at once, built for one database."""

    def __init__(self, engine: Engine) -> None:
        self._probe = Probe(engine, _STATEMENT, (NOW.key, RECOVERY_CUTOFF.key))

    def run(self, now: datetime, settings: Settings) -> dict[str, bool]:
        """Whether each job of `CHECKS` has work at `now`."""
        cutoff = fulfilment_tasks.recovery_cutoff(settings, now)
        row = self._probe.first(now=now, recovery_cutoff=cutoff)
        assert row is not None  # a SELECT without FROM has one row
        return {name: bool(value) for name, value in zip(CHECKS, row, strict=True)}
