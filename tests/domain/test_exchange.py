from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quittance.domain.exchange import (
    ConvertedAmountTooLarge,
    ExchangeRate,
    ExchangeRateMismatch,
    InvalidExchangeRate,
    convert,
)
from quittance.domain.money import MAX_AMOUNT, CurrencyNotSupported, exponent

CURRENCIES = ["JPY", "EUR", "KWD", "CLF", "USD", "BHD"]
HALF = Decimal("0.5")
amounts = st.integers(min_value=0, max_value=MAX_AMOUNT)
rates = st.decimals(
    min_value=Decimal("0.000001"), max_value=Decimal(10**6), places=12, allow_nan=False
)


@st.composite
def currency_pairs(draw: st.DrawFn) -> tuple[str, str]:
    base = draw(st.sampled_from(CURRENCIES))
    quote = draw(st.sampled_from([c for c in CURRENCIES if c != base]))
    return base, quote


def test_euro_cents_into_yen() -> None:
    # 19.99 EUR x 160.25 = 3203.3975 JPY → 3203.
    rate = ExchangeRate("EUR", "JPY", Decimal("160.25"))
    result = convert(1999, "EUR", "JPY", rate)
    assert (result.amount_from, result.currency_from) == (1999, "EUR")
    assert (result.amount_to, result.currency_to) == (3203, "JPY")
    assert result.exact == Decimal("3203.3975")
    assert result.rounding == Decimal("-0.3975")
    assert result.rate is rate
    assert not result.inverse


def test_yen_into_euro_cents_divides_by_the_stored_rate() -> None:
    # 3203 JPY / 160.25 = 19.98751950... EUR = 1998.75195... cents → 1999.
    rate = ExchangeRate("EUR", "JPY", Decimal("160.25"))
    result = convert(3203, "JPY", "EUR", rate)
    assert result.inverse
    assert result.amount_to == 1999
    assert result.exact.quantize(Decimal("0.00001")) == Decimal("1998.75195")
    assert result.exact == Decimal("1998.751950078003120124804992199688")  # 30 places
    assert result.rounding == Decimal("0.248049921996879875195007800312")


def test_three_and_four_decimal_currencies() -> None:
    # 19.99 EUR x 0.3312 = 6.620688 KWD = 6620.688 fils → 6621.
    kwd = convert(1999, "EUR", "KWD", ExchangeRate("EUR", "KWD", Decimal("0.3312")))
    assert (kwd.amount_to, kwd.exact) == (6621, Decimal("6620.688"))
    # 19.99 EUR x 0.0276 = 0.551724 CLF = 5517.24 ten-thousandths → 5517.
    clf = convert(1999, "EUR", "CLF", ExchangeRate("EUR", "CLF", Decimal("0.0276")))
    assert (clf.amount_to, clf.exact, clf.rounding) == (5517, Decimal("5517.24"), Decimal("-0.24"))
    # 1.2345 CLF x 1000 = 1234.5 JPY: exactly half a yen rounds up.
    jpy = convert(12345, "CLF", "JPY", ExchangeRate("CLF", "JPY", Decimal("1000")))
    assert (jpy.amount_to, jpy.rounding) == (1235, HALF)
    # 1 fils at 3.0 EUR/KWD = 0.3 cents → 0; a sub-unit amount can vanish, and says so.
    tiny = convert(1, "KWD", "EUR", ExchangeRate("KWD", "EUR", Decimal("3.0")))
    assert (tiny.amount_to, tiny.rounding) == (0, Decimal("-0.3"))


def test_rates_are_validated_with_stable_codes() -> None:
    for base, quote, value in [
        ("EUR", "EUR", Decimal(1)),
        ("EUR", "USD", Decimal(0)),
        ("EUR", "USD", Decimal("-1.1")),
        ("EUR", "USD", Decimal("Infinity")),
        ("EUR", "USD", Decimal("1.0000000000001")),
        ("EUR", "USD", Decimal(10**12)),
        ("EUR", "XXX", Decimal(1)),
    ]:
        with pytest.raises(InvalidExchangeRate) as caught:
            ExchangeRate(base, quote, value)
        assert caught.value.code == "invalid_exchange_rate"
        assert caught.value.status == 422
    with pytest.raises(InvalidExchangeRate):
        ExchangeRate("EUR", "USD", 1.1)  # type: ignore[arg-type]


def test_rate_text_and_normalised_codes() -> None:
    rate = ExchangeRate("eur", "jpy", Decimal("160.250000000000"))
    assert (rate.base, rate.quote, rate.rate_text) == ("EUR", "JPY", "160.25")
    assert str(rate) == "1 EUR = 160.25 JPY"
    assert ExchangeRate("USD", "IRR", Decimal("42000")).rate_text == "42000"
    assert ExchangeRate("IRR", "USD", Decimal("0.000023809524")).rate_text == "0.000023809524"


def test_a_rate_for_other_currencies_is_refused() -> None:
    rate = ExchangeRate("EUR", "JPY", Decimal("160.25"))
    with pytest.raises(ExchangeRateMismatch) as caught:
        convert(1999, "EUR", "USD", rate)
    assert caught.value.code == "exchange_rate_mismatch"
    with pytest.raises(ExchangeRateMismatch):
        convert(1999, "EUR", "EUR", rate)
    with pytest.raises(CurrencyNotSupported):
        convert(1999, "EUR", "XXX", rate)
    with pytest.raises(ValueError):
        convert(-1, "EUR", "JPY", rate)
    with pytest.raises(TypeError):
        convert(19.99, "EUR", "JPY", rate)  # type: ignore[arg-type]


def test_a_conversion_beyond_the_largest_amount_is_refused() -> None:
    rate = ExchangeRate("KWD", "IRR", Decimal("137000"))
    with pytest.raises(ConvertedAmountTooLarge) as caught:
        convert(MAX_AMOUNT, "KWD", "IRR", rate)
    assert caught.value.code == "converted_amount_too_large"


@given(pair=currency_pairs(), amount=amounts, value=rates, stored_inverse=st.booleans())
def test_conversion_rounds_once_half_up(
    pair: tuple[str, str], amount: int, value: Decimal, stored_inverse: bool
) -> None:
    source, target = pair
    rate = ExchangeRate(target, source, value) if stored_inverse else ExchangeRate(*pair, value)
    try:
        result = convert(amount, source, target, rate)
    except ConvertedAmountTooLarge:
        return
    assert result.inverse is stored_inverse
    assert isinstance(result.amount_to, int)
    assert 0 <= result.amount_to <= MAX_AMOUNT
    # Half up: the rounding lies in (-1/2, 1/2].
    assert -HALF < result.rounding <= HALF
    with localcontext() as context:
        context.prec = 100
        scale = Decimal(10) ** (exponent(target) - exponent(source))
        expected = (Decimal(amount) / value if stored_inverse else Decimal(amount) * value) * scale
        assert result.rounding + result.exact == result.amount_to
        if stored_inverse:
            assert abs(result.exact - expected) <= Decimal("0.5e-30")  # kept to 30 places
        else:
            assert result.exact == expected  # a product is exact


@given(pair=currency_pairs(), amount=amounts, value=rates)
def test_round_trip_stays_within_the_two_roundings(
    pair: tuple[str, str], amount: int, value: Decimal
) -> None:
    source, target = pair
    rate = ExchangeRate(source, target, value)
    try:
        there = convert(amount, source, target, rate)
    except ConvertedAmountTooLarge:
        return
    # The first rounding (at most 1/2 target unit) comes back divided by the effective rate.
    effective = value * Decimal(10) ** (exponent(target) - exponent(source))
    try:
        back = convert(there.amount_to, target, source, rate)
    except ConvertedAmountTooLarge:
        assert amount + HALF + HALF / effective > MAX_AMOUNT
        return
    assert abs(back.amount_to - amount) <= HALF + HALF / effective
    if effective > 1:
        # Into a finer unit and back, the error is under half a unit: the trip is lossless.
        assert back.amount_to == amount


def test_into_a_finer_unit_and_back_is_lossless() -> None:
    # A cent is worth 1.6025 yen: cents → yen → cents gives the cents back.
    rate = ExchangeRate("EUR", "JPY", Decimal("160.25"))
    for amount in (1, 1999, 999_999, MAX_AMOUNT // 1000):
        there = convert(amount, "EUR", "JPY", rate)
        assert convert(there.amount_to, "JPY", "EUR", rate).amount_to == amount
    # Yen → cents → yen does not: 1 yen is 0.624 cents → 1 cent → 1.6025 yen → 2 yen.
    assert convert(convert(1, "JPY", "EUR", rate).amount_to, "EUR", "JPY", rate).amount_to == 2
