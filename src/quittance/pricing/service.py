"""Fee schedules and exchange rates, per merchant and mode.

A fee schedule is one row per method and currency, replaced whole by `PUT`. Exchange rates are
never changed in place: setting a rate adds a row, and the newest row of a pair applies, so
every converted payment's rate can be traced to the row it came from. Changes to a merchant's
fee schedules lock the merchant's payment options row of that mode first, so two concurrent
`PUT`s of one schedule queue instead of colliding on its key.
"""

import csv
import io
from dataclasses import dataclass

from pydantic_core import PydanticCustomError
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from quittance import clock
from quittance.auth.dependencies import Caller
from quittance.domain.errors import NotFound, QuittanceError
from quittance.domain.exchange import ExchangeRate
from quittance.domain.fees import FeeSchedule
from quittance.domain.ids import new_ordered_id
from quittance.domain.money import normalize_currency
from quittance.models import ExchangeRate as ExchangeRateRow
from quittance.models import FeeSchedule as FeeScheduleRow
from quittance.models import PaymentOptions
from quittance.payment.options import check_method_name
from quittance.pricing.repository import newest_rate
from quittance.pricing.schemas import ExchangeRateCreate, FeeScheduleSet, parse_decimal


class FeeScheduleNotFound(NotFound):
    code = "fee_schedule_not_found"


class ExchangeRateNotFound(QuittanceError):
    status = 422
    code = "exchange_rate_not_found"
    title = "No exchange rate for these currencies"


class RatesFileInvalid(QuittanceError):
    status = 422
    code = "rates_file_invalid"
    title = "The exchange rates file is not valid"


# -- fee schedules --------------------------------------------------------------------------


def fee_schedules(
    session: Session, caller: Caller, *, method: str | None = None, currency: str | None = None
) -> list[FeeScheduleRow]:
    """Every schedule of this merchant and mode, by method and currency."""
    query = select(FeeScheduleRow).where(
        FeeScheduleRow.merchant_id == caller.merchant_id,
        FeeScheduleRow.livemode == caller.livemode,
    )
    if method is not None:
        query = query.where(FeeScheduleRow.method == method)
    if currency is not None:
        query = query.where(FeeScheduleRow.currency == currency)
    return list(session.scalars(query.order_by(FeeScheduleRow.method, FeeScheduleRow.currency)))


def get_fee_schedule(
    session: Session, caller: Caller, method: str, currency: str
) -> FeeScheduleRow:
    """Return one schedule, or raise `fee_schedule_not_found`."""
    check_method_name(method)
    code = normalize_currency(currency)
    row = session.get(FeeScheduleRow, (caller.merchant_id, caller.livemode, method, code))
    if row is None:
        raise FeeScheduleNotFound(
            f"No fee schedule for {method} in {code} exists; its commission is 0.",
            method=method, currency=code,
        )  # fmt: skip
    return row


def set_fee_schedule(
    session: Session, caller: Caller, method: str, data: FeeScheduleSet
) -> FeeScheduleRow:
    """Create or replace a method's schedule in one currency, validated by the domain."""
    check_method_name(method)
    schedule = FeeSchedule(data.percent, data.fixed, data.minimum, data.maximum, data.currency)
    session.get(PaymentOptions, (caller.merchant_id, caller.livemode), with_for_update=True)
    key = (caller.merchant_id, caller.livemode, method, schedule.currency)
    row = session.get(FeeScheduleRow, key)
    now = clock.now()
    if row is None:
        row = FeeScheduleRow(
            merchant_id=caller.merchant_id, livemode=caller.livemode, method=method,
            currency=schedule.currency, created_at=now,
        )  # fmt: skip
        session.add(row)
    row.percent = schedule.percent
    row.fixed, row.minimum, row.maximum = schedule.fixed, schedule.minimum, schedule.maximum
    row.updated_at = now
    session.flush()
    return row


def delete_fee_schedule(session: Session, caller: Caller, method: str, currency: str) -> None:
    """Delete a schedule: the method then charges no commission in that currency."""
    session.get(PaymentOptions, (caller.merchant_id, caller.livemode), with_for_update=True)
    session.delete(get_fee_schedule(session, caller, method, currency))
    session.flush()


# -- exchange rates -------------------------------------------------------------------------


def add_rate(
    session: Session, merchant_id: str, livemode: bool, rate: ExchangeRate, source: str
) -> ExchangeRateRow:
    """Store a new rate for its pair; from now on it is the pair's newest."""
    row = ExchangeRateRow(
        id=new_ordered_id("xr"), merchant_id=merchant_id, livemode=livemode, base=rate.base,
        quote=rate.quote, rate=rate.rate, source=source, created_at=clock.now(),
    )  # fmt: skip
    session.add(row)
    return row


def create_rate(session: Session, caller: Caller, data: ExchangeRateCreate) -> ExchangeRateRow:
    """Set a rate through the API."""
    rate = ExchangeRate(data.base, data.quote, data.rate)
    row = add_rate(session, caller.merchant_id, caller.livemode, rate, "api")
    session.flush()
    return row


def rates(
    caller: Caller, *, base: str | None = None, quote: str | None = None
) -> Select[ExchangeRateRow]:
    """The caller's rates, optionally of one base and/or quote currency."""
    query = select(ExchangeRateRow).where(
        ExchangeRateRow.merchant_id == caller.merchant_id,
        ExchangeRateRow.livemode == caller.livemode,
    )
    if base is not None:
        query = query.where(ExchangeRateRow.base == base)
    if quote is not None:
        query = query.where(ExchangeRateRow.quote == quote)
    return query


def rate_for(
    session: Session, merchant_id: str, livemode: bool, currency: str, payer_currency: str
) -> ExchangeRate:
    """Return the rate that converts an invoice's currency into the payer's, or refuse."""
    rate = newest_rate(session, merchant_id, livemode, currency, payer_currency)
    if rate is None:
        raise ExchangeRateNotFound(
            f"No exchange rate from {currency} to {payer_currency} is set; set one with "
            f"POST /v1/exchange_rates (base {currency}, quote {payer_currency}).",
            base=currency, quote=payer_currency,
        )  # fmt: skip
    return rate


@dataclass(frozen=True, slots=True)
class RateLine:
    line: int
    rate: ExchangeRate


def parse_rates_csv(text: str) -> list[RateLine]:
    """Read `base,quote,rate` rows after a header; refuse the whole file on any bad line."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [cell.strip().lower() for cell in header] != ["base", "quote", "rate"]:
        raise RatesFileInvalid(
            "Line 1: the file must start with the header base,quote,rate.", line=1
        )
    parsed: list[RateLine] = []
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 3:
            raise RatesFileInvalid(
                f"Line {line}: expected 3 columns (base,quote,rate), found {len(row)}.", line=line
            )
        base, quote, text_rate = (cell.strip() for cell in row)
        try:
            value = parse_decimal(text_rate, "invalid_exchange_rate", "rate")
            parsed.append(RateLine(line, ExchangeRate(base, quote, value)))
        except QuittanceError as error:
            raise RatesFileInvalid(f"Line {line}: {error.message}", line=line) from None
        except PydanticCustomError as error:
            raise RatesFileInvalid(f"Line {line}: {error.message()}", line=line) from None
    if not parsed:
        raise RatesFileInvalid("The file holds no rates after its header.", line=1)
    return parsed


def import_rates(session: Session, merchant_id: str, livemode: bool, text: str) -> int:
    """Add every rate of a CSV file (all or none, in the caller's unit of work)."""
    lines = parse_rates_csv(text)
    for entry in lines:
        add_rate(session, merchant_id, livemode, entry.rate, "import")
    session.flush()
    return len(lines)
