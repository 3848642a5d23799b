"""The pure refund rules: splitting over payments, proportional shares, line units, outcomes."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quittance.domain.invoice import Status, Trigger
from quittance.domain.refund import (
    LineUnits,
    RefundStatus,
    invoice_after_round,
    proportional,
    round_outcome,
    split,
)

R = RefundStatus


def test_split_takes_the_most_room_first_and_the_fewest_payments() -> None:
    rooms = [("pay_a", 2000), ("pay_b", 3000), ("pay_c", 0)]
    assert split(2500, rooms) == [("pay_b", 2500)]
    assert split(3000, rooms) == [("pay_b", 3000)]
    assert split(4000, rooms) == [("pay_b", 3000), ("pay_a", 1000)]
    assert split(5000, rooms) == [("pay_b", 3000), ("pay_a", 2000)]
    # Equal rooms: the older payment (smaller id) first.
    assert split(1500, [("pay_b", 1000), ("pay_a", 1000)]) == [("pay_a", 1000), ("pay_b", 500)]


@pytest.mark.parametrize("amount", [0, -1, 5001])
def test_split_refuses_what_the_rooms_cannot_hold(amount: int) -> None:
    with pytest.raises(ValueError):
        split(amount, [("pay_a", 2000), ("pay_b", 3000)])


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=6), st.data())
def test_split_parts_add_up_within_each_room(rooms: list[int], data: st.DataObject) -> None:
    named = [(f"pay_{i}", room) for i, room in enumerate(rooms)]
    total = sum(rooms)
    if total == 0:
        return
    amount = data.draw(st.integers(1, total))
    parts = split(amount, named)
    assert sum(part for _, part in parts) == amount
    assert all(0 < part <= dict(named)[name] for name, part in parts)
    assert len({name for name, _ in parts}) == len(parts)


@given(
    st.integers(0, 10**9), st.integers(1, 10**6),
    st.lists(st.integers(1, 1000), min_size=1, max_size=8),
)  # fmt: skip
def test_proportional_shares_add_up_to_the_total(
    total: int, received: int, steps: list[int]
) -> None:
    """However a payment's money is refunded, the shares returned add up to `total`."""
    before, returned = 0, 0
    for step in steps:
        taking = min(step, received - before)
        if taking == 0:
            break
        returned += proportional(total, received, before, taking)
        before += taking
    if before < received:
        returned += proportional(total, received, before, received - before)
    assert returned == total


def test_proportional_rounds_once_half_up() -> None:
    assert proportional(150, 5000, 0, 50) == 2  # 1.5
    assert proportional(150, 5000, 0, 16) == 0  # 0.48
    assert proportional(150, 5000, 50, 16) == 0  # 1.98 - 1.5 -> 2 - 2
    assert proportional(4300, 5000, 0, 1000) == 860
    assert proportional(0, 5000, 0, 1000) == 0
    assert proportional(150, 0, 0, 0) == 0


def test_line_units_paid_up_front_after_cancellations() -> None:
    # 1189 over 3 units, the first cancelled: 793 is left for the two paid units.
    line = LineUnits(amount=1189, quantity=3, offset=1, paid=2, refunded=0)
    assert line.refundable == 2
    assert line.refund_amount(1) == 397
    assert LineUnits(1189, 3, 1, 2, 1).refund_amount(1) == 396
    assert line.refund_amount(2) == 1189 - 396
    with pytest.raises(ValueError):
        line.refund_amount(3)
    assert LineUnits(1189, 3, 0, 3, 3).refundable == 0


def test_line_units_of_delivered_units_share_what_was_captured() -> None:
    line = LineUnits(amount=792, quantity=2, offset=0, paid=2, refunded=0)
    assert [line.refund_amount(1), LineUnits(792, 2, 0, 2, 1).refund_amount(1)] == [396, 396]


@given(st.integers(0, 10**9), st.integers(1, 50), st.data())
def test_line_refunds_take_exactly_what_remains(
    amount: int, quantity: int, data: st.DataObject
) -> None:
    cancelled = data.draw(st.integers(0, quantity - 1))
    line = LineUnits(amount, quantity, cancelled, quantity - cancelled, 0)
    taken = 0
    while line.refundable:
        step = data.draw(st.integers(1, line.refundable))
        taken += line.refund_amount(step)
        line = LineUnits(amount, quantity, cancelled, quantity - cancelled, line.refunded + step)
    remaining = amount - LineUnits(amount, quantity, 0, quantity, 0).refund_amount(cancelled)
    assert taken == remaining


@pytest.mark.parametrize(
    ("statuses", "outcome"),
    [
        ([R.SUCCEEDED], R.SUCCEEDED),
        ([R.FAILED], R.FAILED),
        ([R.PENDING], R.PENDING),
        ([R.SUCCEEDED, R.FAILED], R.SUCCEEDED),
        ([R.FAILED, R.SUCCEEDED], R.SUCCEEDED),
        ([R.SUCCEEDED, R.PENDING], R.PENDING),
        ([R.FAILED, R.FAILED], R.FAILED),
    ],
)
def test_a_request_sums_up_its_refunds(statuses: list[RefundStatus], outcome: R) -> None:
    assert round_outcome(statuses) is outcome


@pytest.mark.parametrize(
    ("outcome", "paid", "refunded", "authorized", "expected"),
    [
        (R.PENDING, 5000, 0, 0, (Status.REFUND_PENDING, Trigger.REFUND_PENDING)),
        (R.FAILED, 5000, 1000, 0, (Status.REFUND_FAILED, Trigger.REFUND_FAILED)),
        (R.SUCCEEDED, 5000, 5000, 0, (Status.REFUNDED, Trigger.REFUND_SUCCEEDED)),
        (R.SUCCEEDED, 5000, 4999, 0, (Status.PARTIALLY_REFUNDED, Trigger.REFUND_PARTIAL)),
        # An authorisation left to capture keeps the invoice open.
        (R.SUCCEEDED, 792, 792, 2500, (Status.PARTIALLY_REFUNDED, Trigger.REFUND_PARTIAL)),
    ],
)
def test_the_invoice_follows_the_request(
    outcome: R, paid: int, refunded: int, authorized: int, expected: tuple[Status, Trigger]
) -> None:
    assert invoice_after_round(outcome, paid, refunded, authorized) == expected
