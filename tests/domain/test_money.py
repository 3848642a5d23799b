from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quittance.domain.iso4217 import EXPONENTS
from quittance.domain.money import (
    MAX_AMOUNT,
    CurrencyNotSupported,
    Money,
    exponent,
    normalize_currency,
    round_minor,
)


@pytest.mark.parametrize(
    ("code", "digits"), [("JPY", 0), ("EUR", 2), ("USD", 2), ("KWD", 3), ("BHD", 3), ("CLF", 4)]
)
def test_exponents_come_from_the_pinned_table(code: str, digits: int) -> None:
    assert exponent(code) == digits
    assert exponent(code.lower()) == digits


@pytest.mark.parametrize("code", ["XXX", "XAU", "BGN", "HRK", "EU", "EURO", "", "€"])
def test_unknown_or_withdrawn_codes_are_rejected(code: str) -> None:
    with pytest.raises(CurrencyNotSupported) as caught:
        normalize_currency(code)
    assert caught.value.code == "currency_not_supported"
    assert caught.value.status == 422


def test_table_is_sane() -> None:
    assert len(EXPONENTS) > 150
    assert all(len(code) == 3 and code.isupper() for code in EXPONENTS)
    assert set(EXPONENTS.values()) <= {0, 2, 3, 4}


def test_money_is_exact_in_major_units() -> None:
    assert Money(1999, "EUR").decimal == Decimal("19.99")
    assert Money(1999, "JPY").decimal == Decimal("1999")
    assert Money(1999, "KWD").decimal == Decimal("1.999")
    assert Money(1, "CLF").decimal == Decimal("0.0001")
    assert str(Money(5, "EUR")) == "0.05 EUR"


def test_money_refuses_floats_and_bools() -> None:
    with pytest.raises(TypeError):
        Money(19.99, "EUR")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, "EUR")


def test_from_decimal_refuses_more_digits_than_the_currency_has() -> None:
    assert Money.from_decimal(Decimal("19.99"), "EUR") == Money(1999, "EUR")
    assert Money.from_decimal(Decimal("1.234"), "KWD") == Money(1234, "KWD")
    with pytest.raises(ValueError, match="more decimals"):
        Money.from_decimal(Decimal("1.234"), "EUR")
    with pytest.raises(ValueError, match="more decimals"):
        Money.from_decimal(Decimal("1.5"), "JPY")


def test_arithmetic_needs_one_currency() -> None:
    assert Money(100, "EUR") + Money(1, "EUR") == Money(101, "EUR")
    assert Money(100, "EUR") - Money(101, "EUR") == Money(-1, "EUR")
    with pytest.raises(ValueError, match="cannot combine"):
        Money(100, "EUR") + Money(1, "USD")


@pytest.mark.parametrize(
    ("value", "rounded"),
    [("0.5", 1), ("1.5", 2), ("2.5", 3), ("-0.5", -1), ("0.49999", 0), ("189.81", 190)],
)
def test_rounding_is_half_up(value: str, rounded: int) -> None:
    assert round_minor(Decimal(value)) == rounded


@given(
    amount=st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT),
    currency=st.sampled_from(sorted(EXPONENTS)),
)
def test_decimal_round_trip_is_lossless(amount: int, currency: str) -> None:
    money = Money(amount, currency)
    assert Money.from_decimal(money.decimal, currency) == money
