"""Field types shared by request schemas, with Quittance's stable error codes."""

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from quittance.domain.money import MAX_AMOUNT, CurrencyNotSupported, normalize_currency


class StrictModel(BaseModel):
    """A request body: unknown fields are refused, values are not coerced, and text holds no
    NUL characters (PostgreSQL cannot store them, and no invoice field needs one)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul_characters(cls, data: Any) -> Any:
        path = _find_nul(data, "")
        if path is not None:
            raise PydanticCustomError(
                "invalid_characters",
                "{field} contains a NUL character, which is not allowed.",
                {"field": path or "The body"},
            )
        return data


def _find_nul(value: Any, path: str) -> str | None:
    """Return the path of the first string (or key) holding a NUL character, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return path or "a key"
            found = _find_nul(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_nul(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


def _amount(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "invalid_type", "Amounts are integers of the currency's minor unit (cents)."
        )
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or abs(value) > MAX_AMOUNT:
            raise PydanticCustomError(
                "amount_too_large", "The amount may be at most {max}.", {"max": MAX_AMOUNT}
            )
        raise PydanticCustomError(
            "amount_not_integer",
            "Amounts are integers of the currency's minor unit (cents), without a fraction.",
        )
    if value > MAX_AMOUNT:
        raise PydanticCustomError(
            "amount_too_large", "The amount may be at most {max}.", {"max": MAX_AMOUNT}
        )
    return value


def _positive(value: int) -> int:
    if value <= 0:
        raise PydanticCustomError("amount_not_positive", "The amount must be greater than zero.")
    return value


def _non_negative(value: int) -> int:
    if value < 0:
        raise PydanticCustomError("amount_negative", "The amount must not be negative.")
    return value


def _currency(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("invalid_type", "A currency is a three-letter ISO 4217 code.")
    try:
        return normalize_currency(value)
    except CurrencyNotSupported as exc:
        raise PydanticCustomError("currency_not_supported", exc.message) from None


def _rate(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PydanticCustomError(
            "invalid_type", 'Give rates as a decimal string such as "19" or "7.5".'
        )
    try:
        rate = Decimal(str(value))
    except InvalidOperation:
        raise PydanticCustomError("invalid_rate", "This is not a decimal number.") from None
    if not rate.is_finite() or rate < 0 or rate > 100:
        raise PydanticCustomError("invalid_rate", "A tax rate is between 0 and 100 percent.")
    if rate.as_tuple().exponent < -4:  # type: ignore[operator]
        raise PydanticCustomError("invalid_rate", "A tax rate has at most four decimals.")
    return rate


_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise PydanticCustomError("invalid_email", "This is not an email address.")
    return value


def _url(value: str) -> str:
    if not _URL.match(value):
        raise PydanticCustomError("invalid_url", "Give an absolute http or https URL.")
    return value


def _country(value: str) -> str:
    upper = value.upper()
    if not _COUNTRY.match(upper):
        raise PydanticCustomError(
            "invalid_country", "Give the country as an ISO 3166-1 alpha-2 code such as DE."
        )
    return upper


def _metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 50:
        raise PydanticCustomError("metadata_too_large", "Metadata holds at most 50 keys.")
    for key, item in value.items():
        if not key or len(key) > 40:
            raise PydanticCustomError(
                "metadata_invalid", "Metadata keys are 1 to 40 characters long."
            )
        if len(item) > 500:
            raise PydanticCustomError(
                "metadata_invalid", "Metadata values are at most 500 characters long."
            )
    return value


Amount = Annotated[int, BeforeValidator(_amount), AfterValidator(_positive)]
NonNegativeAmount = Annotated[int, BeforeValidator(_amount), AfterValidator(_non_negative)]
Currency = Annotated[
    str, BeforeValidator(_currency), Field(examples=["EUR"], description="ISO 4217 code")
]
Rate = Annotated[Decimal, BeforeValidator(_rate)]
Email = Annotated[str, Field(max_length=320), AfterValidator(_email)]
Url = Annotated[str, Field(max_length=2048), AfterValidator(_url)]
Country = Annotated[str, Field(min_length=2, max_length=2), AfterValidator(_country)]
Metadata = Annotated[dict[str, str], AfterValidator(_metadata)]
