"""Fee schedule and exchange rate bodies and documents.

Percentages and rates travel as decimal strings (`"2.9"`, `"1.0842"`), never as JSON floats:
a float has already lost the digits the merchant wrote. A JSON integer is taken as it is.
"""

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from quittance.api.schemas import Currency, NonNegativeAmount, StrictModel
from quittance.clock import isoformat
from quittance.models import ExchangeRate as ExchangeRateRow
from quittance.models import FeeSchedule as FeeScheduleRow

_DECIMAL = re.compile(r"^-?[0-9]{1,30}(\.[0-9]{1,30})?$")


def parse_decimal(value: Any, code: str, name: str) -> Decimal:
    """Read a decimal string (or a JSON integer) exactly; anything else is refused with `code`."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PydanticCustomError(
            "invalid_type", 'Give the {name} as a decimal string such as "2.9".', {"name": name}
        )
    if isinstance(value, int):
        return Decimal(value)
    if not _DECIMAL.match(value):
        raise PydanticCustomError(
            code, "The {name} must be a decimal number such as 2.9; '{value}' is not one.",
            {"name": name, "value": value[:40]},
        )  # fmt: skip
    return Decimal(value)


Percent = Annotated[
    Decimal,
    BeforeValidator(lambda v: parse_decimal(v, "invalid_fee_schedule", "percent")),
    Field(examples=["2.9"], description="A decimal string, 0 to 100, at most 4 decimals"),
]
RateText = Annotated[
    Decimal,
    BeforeValidator(lambda v: parse_decimal(v, "invalid_exchange_rate", "rate")),
    Field(examples=["1.0842"], description="A decimal string above 0, at most 12 decimals"),
]


class FeeScheduleSet(StrictModel):
    """A method's commission in one currency: percent of the amount plus fixed, within bounds."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"currency": "EUR", "percent": "2.9", "fixed": 30,
                                         "minimum": None, "maximum": 500}]}
    )  # fmt: skip

    currency: Currency
    percent: Percent
    fixed: NonNegativeAmount = Field(default=0, description="Minor units added to the percent")
    minimum: NonNegativeAmount | None = Field(default=None, description="Minor units, or null")
    maximum: NonNegativeAmount | None = Field(default=None, description="Minor units, or null")


class FeeScheduleOut(BaseModel):
    model_config = ConfigDict(title="FeeSchedule")

    object: Literal["fee_schedule"]
    livemode: bool
    method: str
    currency: str
    percent: str
    fixed: int
    minimum: int | None
    maximum: int | None
    created_at: str
    updated_at: str


class ExchangeRateCreate(StrictModel):
    """One `base` unit is worth `rate` `quote` units; a new rate for a pair replaces the old."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"base": "EUR", "quote": "USD", "rate": "1.0842"}]}
    )

    base: Currency
    quote: Currency
    rate: RateText


class ExchangeRateOut(BaseModel):
    model_config = ConfigDict(title="ExchangeRate")

    id: str
    object: Literal["exchange_rate"]
    livemode: bool
    base: str
    quote: str
    rate: str
    source: Literal["api", "import"]
    created_at: str


def decimal_text(value: Decimal) -> str:
    """Render a rate or percent without exponent or trailing zeros (`"2.9"`, `"100"`)."""
    text = f"{value.normalize():f}"
    return text if value else "0"


def render_fee_schedule(row: FeeScheduleRow) -> dict[str, Any]:
    return {
        "object": "fee_schedule",
        "livemode": row.livemode,
        "method": row.method,
        "currency": row.currency,
        "percent": decimal_text(row.percent),
        "fixed": row.fixed,
        "minimum": row.minimum,
        "maximum": row.maximum,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
    }


def render_exchange_rate(row: ExchangeRateRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "exchange_rate",
        "livemode": row.livemode,
        "base": row.base,
        "quote": row.quote,
        "rate": decimal_text(row.rate),
        "source": row.source,
        "created_at": isoformat(row.created_at),
    }
