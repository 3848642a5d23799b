"""The split of received money between the invoice and commission, and its valuation in the
invoice's currency (pure domain rules, property-tested)."""

from decimal import Decimal

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

from quittance.domain.exchange import (
    ConvertedAmountTooLarge,
    ExchangeRate,
    convert,
    received_value,
)
from quittance.domain.fees import (
    FeeSchedule,
    Received,
    Terms,
    advance,
    charge,
    commission,
    split_received,
)

amounts = st.integers(min_value=1, max_value=10**9)
parts = st.lists(st.integers(min_value=1, max_value=10**8), min_size=1, max_size=12)


@st.composite
def schedules(draw: st.DrawFn) -> FeeSchedule:
    low = draw(st.none() | st.integers(min_value=0, max_value=10**5))
    high = draw(st.none() | st.integers(min_value=0, max_value=10**6))
    if low is not None and high is not None and low > high:
        low, high = high, low
    percent = draw(st.decimals(min_value=0, max_value=100, places=4, allow_nan=False))
    return FeeSchedule(percent, draw(st.integers(0, 10**4)), low, high, "EUR")


@st.composite
def terms(draw: st.DrawFn) -> Terms:
    amount, schedule = draw(amounts), draw(schedules())
    if draw(st.booleans()):
        return Terms(amount, True, charge(schedule, amount, include_commission=True).commission)
    return Terms(amount, False, 0, draw(st.none() | st.just(schedule)))


@given(terms(), parts)
def test_parts_recorded_one_after_another_add_up_to_the_split_of_the_whole(
    deal: Terms, steps: list[int]
) -> None:
    before, total = Received(), 0
    for step in steps:
        total += step
        after = advance(before, total, deal)
        # Each part moves a non-negative amount to the invoice and to commission, and exactly
        # the new money (the commission on top is part of the payer's money).
        paid, fee = after.paid - before.paid, after.commission - before.commission
        assert paid >= 0 and fee >= 0
        assert after.money(deal) - before.money(deal) == step
        before = after
    assert before == split_received(total, deal)


@given(terms(), amounts)
def test_the_merchants_share_is_never_negative(deal: Terms, received: int) -> None:
    split = split_received(received, deal)
    assert 0 <= split.commission <= received
    merchant = split.paid - (0 if deal.include_commission else split.commission)
    assert merchant >= 0


@given(terms())
def test_paying_exactly_what_was_asked_pays_the_invoice_and_the_commission(deal: Terms) -> None:
    split = split_received(deal.total, deal)
    assert split.paid == deal.amount
    expected = deal.on_top if deal.include_commission else (
        0 if deal.schedule is None else min(deal.amount, commission(deal.schedule, deal.amount))
    )  # fmt: skip
    assert split.commission == expected


def test_on_top_the_invoice_is_paid_first_then_the_commission_then_overpayment() -> None:
    deal = Terms(10000, True, 150)
    assert split_received(6000, deal) == Received(6000, 0)
    assert split_received(10100, deal) == Received(10000, 100)
    assert split_received(10150, deal) == Received(10000, 150)
    assert split_received(10300, deal) == Received(10150, 150)  # 150 overpaid, no commission


def test_from_proceeds_the_commission_is_priced_on_the_money_received() -> None:
    schedule = FeeSchedule(Decimal(1), 30, None, None, "EUR")
    deal = Terms(5000, False, 0, schedule)
    assert split_received(20, deal) == Received(20, 20)  # 30.2 is capped at the 20 received
    assert split_received(2020, deal) == Received(2020, 50)  # 20.2 + 30 = 50.2
    assert split_received(5520, deal) == Received(5520, 80)  # priced on the 5000 asked only


def test_the_commission_is_rounded_once_over_the_whole_not_per_part() -> None:
    # 2.5 % of 100 is 2.5 and rounds up to 3 for each half; of 200 it is exactly 5.
    deal = Terms(200, False, 0, FeeSchedule(Decimal("2.5"), 0, None, None, "EUR"))
    first = advance(Received(), 100, deal)
    second = advance(first, 200, deal)
    assert (first.commission, second.commission - first.commission) == (3, 2)
    assert second.commission == commission(deal.schedule, 200) == 5  # type: ignore[arg-type]


def test_a_schedule_changed_mid_way_never_takes_commission_back() -> None:
    cheap = Terms(1000, False, 0, FeeSchedule(Decimal(1), 0, None, None, "EUR"))
    dear = Terms(1000, False, 0, FeeSchedule(Decimal(50), 0, None, None, "EUR"))
    first = advance(Received(), 500, dear)  # 250
    assert advance(first, 1000, cheap) == Received(1000, 250)  # 10 would be less: kept at 250
    low = advance(Received(), 500, cheap)  # 5
    assert advance(low, 510, dear) == Received(510, 15)  # at most the 10 new units


def test_received_money_must_be_a_count_of_minor_units() -> None:
    with pytest.raises(ValueError):
        split_received(-1, Terms(100, False))


RATES = st.decimals(min_value=Decimal("0.1"), max_value=Decimal(5000), places=6,
                    allow_nan=False)  # fmt: skip
PAIRS = st.sampled_from([("EUR", "USD"), ("EUR", "JPY"), ("KWD", "JPY"), ("JPY", "KWD"),
                         ("EUR", "KWD"), ("CLF", "EUR")])  # fmt: skip


@given(
    PAIRS,
    RATES,
    st.integers(1, 10**6),
    st.lists(st.integers(min_value=1, max_value=10**6), max_size=10),
)
def test_money_in_the_payers_currency_is_valued_exactly_and_only_grows(
    pair: tuple[str, str], value: Decimal, total: int, steps: list[int]
) -> None:
    currency, payer_currency = pair
    rate = ExchangeRate(currency, payer_currency, value)
    try:
        asked = convert(total, currency, payer_currency, rate).amount_to
        convert(asked + sum(steps), payer_currency, currency, rate)
    except ConvertedAmountTooLarge:
        reject()  # beyond the largest amount (JPY to KWD at 5,000): refused, not valued
    # Exactly the payer's amount is worth exactly the total, whatever the rounding.
    assert received_value(asked, asked, total, payer_currency, currency, rate) == total
    seen, received = 0, 0
    for step in [*steps, max(0, asked - sum(steps))]:
        received += step
        worth = received_value(received, asked, total, payer_currency, currency, rate)
        assert worth >= seen
        if received < asked:
            assert worth <= total
        seen = worth
    assert seen >= total if received >= asked else seen <= total


def test_a_partial_transfer_is_valued_at_the_rate_rounded_half_up() -> None:
    rate = ExchangeRate("EUR", "JPY", Decimal("161.23"))
    # 8000 JPY / 161.23 = 49.6185... EUR = 4961.85 cents → 4962.
    assert received_value(8000, 16123, 10000, "JPY", "EUR", rate) == 4962
    assert received_value(16123, 16123, 10000, "JPY", "EUR", rate) == 10000
    # 100 JPY more than asked: 0.62 EUR more.
    assert received_value(16223, 16123, 10000, "JPY", "EUR", rate) == 10062
