"""Commission: fee schedules and who pays them (DESIGN §8 `include_commission`).

A fee schedule belongs to one merchant, mode and method, in one currency. Its commission on an
amount (minor units of that currency) is computed in exactly this order:

1. exact = amount x percent / 100 + fixed, as an exact `Decimal` (no rounding);
2. clamp the exact value to [minimum, maximum] (each bound only when set);
3. round once, half up, to an integer of minor units (`money.round_minor`).

The bounds are whole minor units, so the rounded commission always lies inside them too. No
other step rounds. Who pays is decided afterwards by `charge`: with `include_commission` the
payer pays it on top of the amount; otherwise it is taken from the merchant's proceeds and then
never exceeds the amount (a merchant's net is never negative).

Money a payment receives (all at once, or in parts such as bank transfers) is split between the
invoice and commission by `split_received`, a function of the payment's cumulative total only,
so the parts recorded one after another always add up to the split of the total:

- commission on top (`Terms.on_top` = the commission the payer was asked for): money received
  first pays the invoice's amount, then the commission, and anything beyond is overpayment,
  which counts towards the invoice (no commission on it);
- from the merchant's proceeds: all money received counts towards the invoice, and the
  commission is the schedule's commission on the money received up to the amount asked,
  capped at the money received, so the merchant's net is never negative. Overpayment carries
  no commission here either.

Neither rule rounds again: the only rounding is the commission's own (step 3 above).
"""

from dataclasses import dataclass
from decimal import Decimal

from quittance.domain.errors import QuittanceError
from quittance.domain.money import MAX_AMOUNT, normalize_currency, round_minor

# Percentages carry at most this many decimal places (2.9 %, 1.4999 %).
PERCENT_PLACES = 4
_PERCENT_QUANTUM = Decimal(1).scaleb(-PERCENT_PLACES)
_HUNDRED = Decimal(100)


class InvalidFeeSchedule(QuittanceError):
    status = 422
    code = "invalid_fee_schedule"
    title = "The fee schedule is not valid"


class PayerAmountTooLarge(QuittanceError):
    status = 422
    code = "payer_amount_too_large"
    title = "The amount with commission is too large"


def _check_minor(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidFeeSchedule(
            f"The fee's {name} must be a whole number of minor units.", field=name
        )
    if not 0 <= value <= MAX_AMOUNT:
        raise InvalidFeeSchedule(
            f"The fee's {name} must be between 0 and {MAX_AMOUNT} minor units.", field=name
        )


def _check_percent(percent: Decimal) -> None:
    if not isinstance(percent, Decimal) or not percent.is_finite():
        raise InvalidFeeSchedule("The fee's percent must be a decimal number.", field="percent")
    if not 0 <= percent <= _HUNDRED:
        raise InvalidFeeSchedule("The fee's percent must be between 0 and 100.", field="percent")
    if percent != percent.quantize(_PERCENT_QUANTUM):
        raise InvalidFeeSchedule(
            f"The fee's percent may have at most {PERCENT_PLACES} decimal places.",
            field="percent",
        )


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """A commission rule: `percent` of the amount plus `fixed`, kept within [minimum, maximum]."""

    percent: Decimal
    fixed: int
    minimum: int | None
    maximum: int | None
    currency: str

    def __post_init__(self) -> None:
        _check_percent(self.percent)
        for name in ("fixed", "minimum", "maximum"):
            _check_minor(name, getattr(self, name))
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise InvalidFeeSchedule(
                "The fee's minimum must not be larger than its maximum.", field="minimum"
            )
        try:
            currency = normalize_currency(self.currency)
        except QuittanceError as error:
            raise InvalidFeeSchedule(error.message, field="currency") from error
        object.__setattr__(self, "currency", currency)

    @classmethod
    def zero(cls, currency: str) -> "FeeSchedule":
        """Return the schedule that charges nothing (the zero-fee badge case)."""
        return cls(Decimal(0), 0, None, None, currency)

    @property
    def is_zero(self) -> bool:
        """Tell whether every amount's commission is 0 (shown as a zero-fee badge)."""
        return self.percent == 0 and self.fixed == 0 and (self.minimum is None or self.minimum == 0)

    @property
    def percent_text(self) -> str:
        """Return the percent as text for storage, without exponent or trailing zeros."""
        return f"{self.percent.normalize():f}" if self.percent else "0"


def exact_commission(schedule: FeeSchedule, amount: int) -> Decimal:
    """Return the commission before its one rounding: percent and fixed, then clamped."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("amounts are integers of minor units")
    if not 0 <= amount <= MAX_AMOUNT:
        raise ValueError(f"amount {amount} is outside 0..{MAX_AMOUNT}")
    exact = Decimal(amount) * schedule.percent / _HUNDRED + schedule.fixed
    if schedule.minimum is not None and exact < schedule.minimum:
        exact = Decimal(schedule.minimum)
    if schedule.maximum is not None and exact > schedule.maximum:
        exact = Decimal(schedule.maximum)
    return exact


def commission(schedule: FeeSchedule, amount: int) -> int:
    """Return the commission on `amount` in minor units, rounded once, half up."""
    return round_minor(exact_commission(schedule, amount))


@dataclass(frozen=True, slots=True)
class Charge:
    """Who pays what for one amount: `payer_amount == merchant_net + commission`, always."""

    amount: int
    commission: int
    payer_amount: int
    merchant_net: int
    currency: str
    include_commission: bool


def charge(schedule: FeeSchedule, amount: int, *, include_commission: bool) -> Charge:
    """Split `amount` between payer, merchant and commission under the schedule.

    With `include_commission` the payer pays the commission on top and the merchant receives
    the whole amount; otherwise the payer pays the amount and the commission, capped at the
    amount, is taken from the merchant's proceeds.
    """
    fee = commission(schedule, amount)
    if include_commission:
        payer_amount = amount + fee
        if payer_amount > MAX_AMOUNT:
            raise PayerAmountTooLarge(
                f"The amount with commission would exceed {MAX_AMOUNT} minor units.",
                amount=amount,
                commission=fee,
            )
        return Charge(amount, fee, payer_amount, amount, schedule.currency, True)
    fee = min(fee, amount)
    return Charge(amount, fee, amount, amount - fee, schedule.currency, False)


@dataclass(frozen=True, slots=True)
class Terms:
    """What one payment attempt asked for, in the invoice's currency.

    `amount` is the invoice's part (what was due when the attempt started). With commission on
    top, `on_top` is the commission the payer was asked for on top of it; otherwise `on_top` is
    0 and `schedule` (None: no commission) prices the money received.
    """

    amount: int
    include_commission: bool
    on_top: int = 0
    schedule: FeeSchedule | None = None

    @property
    def total(self) -> int:
        """Return what the payer was asked for: the amount, plus the commission on top."""
        return self.amount + self.on_top


@dataclass(frozen=True, slots=True)
class Received:
    """A payment's money so far: `paid` counts towards the invoice, `commission` is revenue.

    With commission on top the payer's money is `paid + commission`; from proceeds it is `paid`,
    and the commission comes out of the merchant's share of it.
    """

    paid: int = 0
    commission: int = 0

    def money(self, terms: Terms) -> int:
        """Return the payer's money these amounts stand for."""
        return self.paid + (self.commission if terms.include_commission else 0)


def split_received(received: int, terms: Terms) -> Received:
    """Split a payment's cumulative `received` money between the invoice and commission."""
    if isinstance(received, bool) or not isinstance(received, int) or received < 0:
        raise ValueError("received money is a non-negative integer of minor units")
    if terms.include_commission:
        fee = min(max(received - terms.amount, 0), terms.on_top)
        return Received(received - fee, fee)
    if terms.schedule is None:
        return Received(received, 0)
    priced = min(received, terms.amount, MAX_AMOUNT)
    return Received(received, min(received, commission(terms.schedule, priced)))


def advance(before: Received, received: int, terms: Terms) -> Received:
    """Return a payment's split once its cumulative money has grown to `received`.

    Under unchanged terms this is exactly `split_received(received, terms)`. If the terms
    changed since `before` (a fee schedule edited while a transfer was still arriving), the
    commission already recorded is never taken back and grows by at most the new money, so
    every step moves a non-negative amount to the invoice and to commission.
    """
    new_money = received - before.money(terms)
    if new_money <= 0:
        return before
    target = split_received(received, terms)
    fee = min(max(target.commission, before.commission), before.commission + new_money)
    paid = received - fee if terms.include_commission else received
    return Received(paid, fee)
