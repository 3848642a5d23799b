"""Line-item arithmetic: exact amounts from quantity, unit amount and tax rate.

Rounding rule (documented in docs/api.md): for each line, net = quantity x unit_amount (exact
integer); tax = net x tax_rate / 100, rounded once, half up, to the currency's minor unit;
amount = net + tax. The invoice amount is the exact integer sum of its line amounts.
"""

from dataclasses import dataclass
from decimal import Decimal

from quittance.domain.money import MAX_AMOUNT, round_minor


@dataclass(frozen=True, slots=True)
class LineAmounts:
    amount_net: int
    amount_tax: int
    amount: int


def line_amounts(quantity: int, unit_amount: int, tax_rate: Decimal) -> LineAmounts:
    """Compute one line's net, tax and gross amounts in minor units."""
    net = quantity * unit_amount
    tax = round_minor(Decimal(net) * tax_rate / Decimal(100))
    return LineAmounts(net, tax, net + tax)


def total(lines: list[LineAmounts]) -> int:
    """Sum line amounts exactly; raises if the total leaves the allowed range."""
    amount = sum(line.amount for line in lines)
    if amount > MAX_AMOUNT:
        raise OverflowError("the line items add up to more than the largest allowed amount")
    return amount


def share(amount: int, quantity: int, before: int, taking: int) -> int:
    """Return the amount of `taking` units of a line after `before` of its units were taken.

    Shares are allocated cumulatively: the first `n` units of a line are worth
    `amount x n / quantity`, rounded once, half up; a share is the difference of two such
    values. So shares taken one after another always add up to exactly the line's amount,
    whatever the order or size of the steps (cancellations, deliveries, refunds by items).
    """
    if not 0 <= before <= quantity or not 0 <= taking <= quantity - before:
        raise ValueError(f"cannot take {taking} of {quantity} units after {before}")

    def first(units: int) -> int:
        return round_minor(Decimal(amount) * units / quantity)

    return first(before + taking) - first(before)
