from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quittance.domain.line_items import line_amounts, share


def test_tax_is_rounded_once_half_up() -> None:
    # 3 x 333 = 999 net; 19 % of 999 = 189.81 → 190.
    amounts = line_amounts(3, 333, Decimal("19"))
    assert (amounts.amount_net, amounts.amount_tax, amounts.amount) == (999, 190, 1189)
    # 7 % of 50 = 3.5 → 4 (half up, not banker's rounding to 4 either way: check 2.5 → 3).
    assert line_amounts(1, 50, Decimal("7")).amount_tax == 4
    assert line_amounts(1, 250, Decimal("1")).amount_tax == 3
    assert line_amounts(2, 1000, Decimal("0")).amount == 2000


@given(
    quantity=st.integers(1, 1_000_000),
    unit=st.integers(0, 10**6),
    rate=st.decimals(min_value=0, max_value=100, places=4, allow_nan=False),
)
def test_line_amounts_are_exact_integers(quantity: int, unit: int, rate: Decimal) -> None:
    amounts = line_amounts(quantity, unit, rate)
    exact_tax = Decimal(quantity * unit) * rate / 100
    assert amounts.amount_net == quantity * unit
    assert abs(Decimal(amounts.amount_tax) - exact_tax) <= Decimal("0.5")
    assert amounts.amount == amounts.amount_net + amounts.amount_tax


@given(
    amount=st.integers(min_value=0, max_value=10**12),
    steps=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20),
)
def test_shares_taken_one_after_another_add_up_to_the_line(amount: int, steps: list[int]) -> None:
    quantity = sum(steps)
    before, shares = 0, []
    for taking in steps:
        shares.append(share(amount, quantity, before, taking))
        before += taking
    assert sum(shares) == amount
    assert all(0 <= s <= amount for s in shares)


def test_a_share_of_units_is_rounded_half_up_once() -> None:
    assert share(100, 3, 0, 1) == 33  # 33.33
    assert share(100, 3, 1, 1) == 34  # 66.67 - 33
    assert share(100, 3, 2, 1) == 33
    assert share(5, 2, 0, 1) == 3  # 2.5 rounds up
    with pytest.raises(ValueError):
        share(100, 3, 2, 2)
