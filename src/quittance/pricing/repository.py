"""Fee schedule and exchange rate look-ups used while pricing a payment (no writes)."""

import threading
import time
from typing import Any, cast

from sqlalchemy import bindparam, select
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, object_session

from quittance.db.uow import after_commit
from quittance.domain.exchange import ExchangeRate
from quittance.domain.fees import FeeSchedule
from quittance.models import ExchangeRate as ExchangeRateRow
from quittance.models import FeeSchedule as FeeScheduleRow


def schedule_of(row: FeeScheduleRow) -> FeeSchedule:
    """Return the domain schedule a stored row describes."""
    return FeeSchedule(row.percent, row.fixed, row.minimum, row.maximum, row.currency)


def fee_schedule(
    session: Session, merchant_id: str, livemode: bool, method: str, currency: str
) -> FeeSchedule | None:
    """Return the schedule of a method in a currency, or None (no commission)."""
    found = _schedules.get(merchant_id, livemode, (method, currency))
    if found is not _MISSING:
        return cast(FeeSchedule | None, found)
    generation = _schedules.generation
    parameters = {"merchant_id": merchant_id, "livemode": livemode, "method": method,
                  "currency": currency}  # fmt: skip
    row = session.scalars(_FEE_SCHEDULE, parameters).one_or_none()
    schedule = None if row is None else schedule_of(row)
    if _CHANGED not in session.info:  # never cache what this transaction has not committed
        _schedules.put(merchant_id, livemode, (method, currency), schedule, generation)
    return schedule


_MISSING: Any = object()


class _ScheduleCache:
    """Fee schedules (and their absence) per merchant and mode, so a pay reads no pricing row.

    A schedule set or deleted through this process forgets the merchant's schedules when it is
    flushed and again once committed, and a value read before such a change is never stored
    after it (the generation check); other processes see a change within `ttl` seconds, as
    with the payment options and the routing.
    """

    def __init__(self, ttl: float = 5.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self.generation = 0
        self._entries: dict[tuple[str, bool], tuple[float, dict[tuple[str, str], Any]]] = {}
        self._lock = threading.Lock()

    def get(self, merchant_id: str, livemode: bool, key: tuple[str, str]) -> Any:
        entry = self._entries.get((merchant_id, livemode))
        if entry is None or entry[0] <= time.monotonic():
            return _MISSING
        return entry[1].get(key, _MISSING)

    def put(
        self, merchant_id: str, livemode: bool, key: tuple[str, str], value: Any, generation: int
    ) -> None:
        with self._lock:
            if generation != self.generation:
                return  # something changed while it was being read
            entry = self._entries.get((merchant_id, livemode))
            if entry is None or entry[0] <= time.monotonic():
                if len(self._entries) >= self.size:
                    self._entries.clear()
                entry = self._entries[(merchant_id, livemode)] = (time.monotonic() + self.ttl, {})
            entry[1][key] = value

    def forget(self, merchant_id: str, livemode: bool) -> None:
        with self._lock:
            self.generation += 1
            self._entries.pop((merchant_id, livemode), None)


_schedules = _ScheduleCache()
# Key in `session.info`: this unit of work has written fee schedules.
_CHANGED = "quittance_fee_schedules_changed"


@sa_event.listens_for(FeeScheduleRow, "after_insert")
@sa_event.listens_for(FeeScheduleRow, "after_update")
@sa_event.listens_for(FeeScheduleRow, "after_delete")
def _forget_schedules(_mapper: object, _connection: object, target: FeeScheduleRow) -> None:
    """A schedule was written: forget the merchant's schedules now and once committed."""
    merchant_id, livemode = target.merchant_id, target.livemode
    _schedules.forget(merchant_id, livemode)
    session = object_session(target)
    if session is not None:
        session.info[_CHANGED] = True
        after_commit(session, lambda: _schedules.forget(merchant_id, livemode))


# Built once (this runs on every pay; `Session.get` builds a query for every row it misses).
_FEE_SCHEDULE = select(FeeScheduleRow).where(
    FeeScheduleRow.merchant_id == bindparam("merchant_id"),
    FeeScheduleRow.livemode == bindparam("livemode"),
    FeeScheduleRow.method == bindparam("method"),
    FeeScheduleRow.currency == bindparam("currency"),
)


def newest_rate(
    session: Session, merchant_id: str, livemode: bool, base: str, quote: str
) -> ExchangeRate | None:
    """Return the newest rate set for exactly this pair (never the inverse), or None."""
    row = session.scalars(
        select(ExchangeRateRow)
        .where(
            ExchangeRateRow.merchant_id == merchant_id,
            ExchangeRateRow.livemode == livemode,
            ExchangeRateRow.base == base,
            ExchangeRateRow.quote == quote,
        )
        .order_by(ExchangeRateRow.id.desc())
        .limit(1)
    ).first()
    return None if row is None else ExchangeRate(row.base, row.quote, row.rate)
