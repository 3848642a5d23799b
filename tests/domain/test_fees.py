from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quittance.domain.fees import (
    Charge,
    FeeSchedule,
    InvalidFeeSchedule,
    PayerAmountTooLarge,
    charge,
    commission,
    exact_commission,
)
from quittance.domain.money import MAX_AMOUNT

CURRENCIES = ["JPY", "EUR", "KWD", "CLF", "USD", "BHD"]
amounts = st.integers(min_value=0, max_value=MAX_AMOUNT)
percents = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False)
bounds = st.none() | st.integers(min_value=0, max_value=10**9)


@st.composite
def schedules(draw: st.DrawFn) -> FeeSchedule:
    low, high = draw(bounds), draw(bounds)
    if low is not None and high is not None and low > high:
        low, high = high, low
    return FeeSchedule(
        percent=draw(percents),
        fixed=draw(st.integers(min_value=0, max_value=10**6)),
        minimum=low,
        maximum=high,
        currency=draw(st.sampled_from(CURRENCIES)),
    )


def eur(
    percent: str, fixed: int = 0, minimum: int | None = None, maximum: int | None = None
) -> FeeSchedule:
    return FeeSchedule(Decimal(percent), fixed, minimum, maximum, "EUR")


def test_percent_plus_fixed_is_rounded_once_half_up() -> None:
    # 2.9 % of 1999 = 57.971, + 30 = 87.971 → 88.
    schedule = eur("2.9", 30)
    assert exact_commission(schedule, 1999) == Decimal("87.971")
    assert commission(schedule, 1999) == 88
    # 1.5 % of 1000 = 15 exactly; 2.5 % of 10 = 0.25 → 0; 2.5 % of 100 = 2.5 → 3 (half up).
    assert commission(eur("1.5"), 1000) == 15
    assert commission(eur("2.5"), 10) == 0
    assert commission(eur("2.5"), 100) == 3
    assert commission(eur("0.0001"), 5000) == 0  # 0.005 → 0
    assert commission(eur("0.0001"), 5_000_000) == 5


def test_clamp_applies_to_the_exact_value_before_the_one_rounding() -> None:
    # 1 % of 1050 = 10.5: the maximum of 10 wins; rounding alone would have given 11.
    assert commission(eur("1", 0, None, 10), 1050) == 10
    # 1 % of 1049 = 10.49 → 10; a minimum of 11 lifts it to 11.
    assert commission(eur("1", 0, 11, None), 1049) == 11
    # 0.5 % of 99 = 0.495, below a minimum of 1: the commission is the minimum.
    assert exact_commission(eur("0.5", 0, 1, 5), 99) == Decimal(1)
    assert commission(eur("0.5", 0, 1, 5), 99) == 1
    assert commission(eur("100", 0, None, 250), 1999) == 250


def test_a_zero_schedule_charges_nothing_and_earns_the_badge() -> None:
    zero = FeeSchedule.zero("eur")
    assert zero.currency == "EUR"
    assert zero.is_zero
    assert commission(zero, 1999) == 0
    assert commission(zero, MAX_AMOUNT) == 0
    assert not eur("0", 1).is_zero
    assert not eur("0", 0, 1).is_zero
    assert eur("0", 0, 0, 100).is_zero


def test_who_pays_the_commission() -> None:
    schedule = eur("2.9", 30)
    assert charge(schedule, 1999, include_commission=True) == Charge(
        amount=1999, commission=88, payer_amount=2087, merchant_net=1999, currency="EUR",
        include_commission=True,
    )  # fmt: skip
    assert charge(schedule, 1999, include_commission=False) == Charge(
        amount=1999, commission=88, payer_amount=1999, merchant_net=1911, currency="EUR",
        include_commission=False,
    )  # fmt: skip
    # Taken from proceeds, the commission never exceeds the amount.
    taken = charge(schedule, 20, include_commission=False)
    assert (taken.commission, taken.payer_amount, taken.merchant_net) == (20, 20, 0)
    on_top = charge(schedule, 20, include_commission=True)
    assert (on_top.commission, on_top.payer_amount, on_top.merchant_net) == (31, 51, 20)


def test_the_payer_amount_stays_within_the_largest_amount() -> None:
    with pytest.raises(PayerAmountTooLarge) as caught:
        charge(eur("1"), MAX_AMOUNT, include_commission=True)
    assert caught.value.code == "payer_amount_too_large"
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"percent": Decimal("-0.01")}, "percent"),
        ({"percent": Decimal("100.0001")}, "percent"),
        ({"percent": Decimal("1.23456")}, "percent"),
        ({"percent": Decimal("NaN")}, "percent"),
        ({"percent": 2.9}, "percent"),
        ({"fixed": -1}, "fixed"),
        ({"fixed": 1.5}, "fixed"),
        ({"fixed": True}, "fixed"),
        ({"minimum": -1}, "minimum"),
        ({"maximum": MAX_AMOUNT + 1}, "maximum"),
        ({"minimum": 11, "maximum": 10}, "minimum"),
        ({"currency": "XXX"}, "currency"),
    ],
)
def test_invalid_schedules_are_refused_with_a_stable_code(
    kwargs: dict[str, object], field: str
) -> None:
    values: dict[str, object] = {
        "percent": Decimal("2.9"), "fixed": 30, "minimum": None, "maximum": None,
        "currency": "EUR",
    }  # fmt: skip
    values.update(kwargs)
    with pytest.raises(InvalidFeeSchedule) as caught:
        FeeSchedule(**values)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_fee_schedule"
    assert caught.value.status == 422
    assert caught.value.extra["field"] == field


def test_percent_trailing_zeros_are_not_extra_decimals() -> None:
    schedule = eur("2.900000")
    assert schedule.percent_text == "2.9"
    assert eur("100").percent_text == "100"
    assert eur("0").percent_text == "0"


def test_commission_refuses_amounts_outside_the_range() -> None:
    with pytest.raises(ValueError):
        commission(eur("1"), -1)
    with pytest.raises(ValueError):
        commission(eur("1"), MAX_AMOUNT + 1)
    with pytest.raises(TypeError):
        commission(eur("1"), 19.99)  # type: ignore[arg-type]


@given(schedule=schedules(), amount=amounts)
def test_commission_is_one_half_up_rounding_of_the_clamped_exact_value(
    schedule: FeeSchedule, amount: int
) -> None:
    fee = commission(schedule, amount)
    exact = Decimal(amount) * schedule.percent / 100 + schedule.fixed
    if schedule.minimum is not None:
        exact = max(exact, Decimal(schedule.minimum))
    if schedule.maximum is not None:
        exact = min(exact, Decimal(schedule.maximum))
    assert isinstance(fee, int)
    # Half up: fee - 1/2 <= exact < fee + 1/2.
    assert Decimal(fee) - Decimal("0.5") <= exact < Decimal(fee) + Decimal("0.5")
    # The bounds are whole units, so the rounded fee lies within them exactly.
    assert schedule.minimum is None or fee >= schedule.minimum
    assert schedule.maximum is None or fee <= schedule.maximum
    assert fee >= 0


@given(schedule=schedules(), amount=amounts, include=st.booleans())
def test_the_charge_always_adds_up(schedule: FeeSchedule, amount: int, include: bool) -> None:
    try:
        split = charge(schedule, amount, include_commission=include)
    except PayerAmountTooLarge:
        assert include
        assert amount + commission(schedule, amount) > MAX_AMOUNT
        return
    assert split.merchant_net + split.commission == split.payer_amount
    assert 0 <= split.merchant_net <= split.payer_amount <= MAX_AMOUNT
    assert split.currency == schedule.currency
    if include:
        assert split.merchant_net == amount
        assert split.commission == commission(schedule, amount)
    else:
        assert split.payer_amount == amount
        assert split.commission == min(commission(schedule, amount), amount)
        assert split.commission <= amount


@given(schedule=schedules(), low=amounts, high=amounts)
def test_commission_never_falls_as_the_amount_grows(
    schedule: FeeSchedule, low: int, high: int
) -> None:
    low, high = min(low, high), max(low, high)
    assert commission(schedule, low) <= commission(schedule, high)
