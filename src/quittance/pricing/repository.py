"""Fee schedule and exchange rate look-ups used while pricing a payment (no writes)."""

from typing import cast

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from quittance.db.cache import MISSING, MerchantCache
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
    if found is not MISSING:
        return cast(FeeSchedule | None, found)
    generation = _schedules.generation
    parameters = {"merchant_id": merchant_id, "livemode": livemode, "method": method,
                  "currency": currency}  # fmt: skip
    row = session.scalars(_FEE_SCHEDULE, parameters).one_or_none()
    schedule = None if row is None else schedule_of(row)
    _schedules.put(session, merchant_id, livemode, (method, currency), schedule, generation)
    return schedule


# Fee schedules (and their absence) per merchant, mode, method and currency: a pay reads no
# pricing row.
_schedules: MerchantCache[FeeSchedule | None] = MerchantCache("fee_schedules", FeeScheduleRow)

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
