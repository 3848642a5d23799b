"""The pure fulfilment rules: which units a request takes and what they are worth."""

import itertools
import random

import pytest

from quittance.domain.errors import InvalidTransition
from quittance.domain.fulfilment import (
    FulfilmentStatus,
    Line,
    LineItemNotFound,
    LineItemQuantityExceeded,
    Taken,
    check_fulfilment_transition,
    take,
    take_all,
    total,
)

MUG = Line("li_mug", quantity=3, amount=3570, cancelled=0, delivered=0)
TEA = Line("li_tea", quantity=2, amount=713, cancelled=1, delivered=0)


def test_take_allocates_cumulative_shares() -> None:
    assert take([MUG, TEA], [("li_mug", 1), ("li_tea", 1)]) == [
        Taken("li_mug", 1, 1190), Taken("li_tea", 1, 356),  # the second Tea unit: 713 - 357
    ]  # fmt: skip
    # A line named twice is taken cumulatively.
    assert take([MUG], [("li_mug", 1), ("li_mug", 2)]) == [
        Taken("li_mug", 1, 1190), Taken("li_mug", 2, 2380),
    ]  # fmt: skip


def test_take_refuses_unknown_lines_and_closed_units() -> None:
    with pytest.raises(LineItemNotFound) as unknown:
        take([MUG], [("li_nope", 1)])
    assert unknown.value.extra == {"line_item": "li_nope"}
    with pytest.raises(LineItemQuantityExceeded) as exceeded:
        take([MUG, TEA], [("li_tea", 2)])
    assert exceeded.value.extra == {"line_item": "li_tea", "available": 1}
    with pytest.raises(LineItemQuantityExceeded) as twice:
        take([MUG], [("li_mug", 2), ("li_mug", 2)])
    assert twice.value.extra["available"] == 1


def test_take_all_takes_every_open_unit() -> None:
    done = Line("li_done", quantity=1, amount=199, cancelled=0, delivered=1)
    taken = take_all([MUG, TEA, done])
    assert taken == [Taken("li_mug", 3, 3570), Taken("li_tea", 1, 356)]
    assert total(taken) == 3926


@pytest.mark.parametrize("seed", range(20))
def test_shares_of_any_sequence_add_up_to_the_line(seed: int) -> None:
    rng = random.Random(seed)
    quantity, amount = rng.randint(1, 9), rng.randint(0, 100_000)
    line = Line("li", quantity, amount, 0, 0)
    shares = []
    while line.open:
        step = rng.randint(1, line.open)
        (taken,) = take([line], [("li", step)])
        shares.append(taken.amount)
        # Alternate cancellations and deliveries: both count as taken units.
        if rng.random() < 0.5:
            line = Line("li", quantity, amount, line.cancelled + step, line.delivered)
        else:
            line = Line("li", quantity, amount, line.cancelled, line.delivered + step)
    assert sum(shares) == amount
    assert all(share >= 0 for share in shares)


def test_fulfilment_transitions() -> None:
    statuses = list(FulfilmentStatus)
    allowed = {(FulfilmentStatus.PENDING, FulfilmentStatus.SUCCEEDED),
               (FulfilmentStatus.PENDING, FulfilmentStatus.FAILED)}  # fmt: skip
    for source, target in itertools.product(statuses, statuses):
        if (source, target) in allowed:
            check_fulfilment_transition(source, target)
        else:
            with pytest.raises(InvalidTransition) as refused:
                check_fulfilment_transition(source, target)
            assert refused.value.code == "invalid_fulfilment_transition"
