"""Exchange rates and conversions between currencies of different exponents.

An `ExchangeRate(base, quote, rate)` says 1 major unit of `base` is worth `rate` major units of
`quote`. Rates are `Decimal`, positive, with at most 12 decimal places and below 10**12, so
their text form is short and exact.

Conversion rule, for `amount` minor units of the source currency into the target currency:

    exact = amount x rate x 10**(exponent(target) - exponent(source))   rate stored source→target
    exact = amount / rate x 10**(exponent(target) - exponent(source))   rate stored target→source

then rounded once, half up, to the target's minor unit (`money.round_minor`). The rate is never
rounded or inverted on its own. A product is exact (at most 16 decimal places); a quotient is
kept to 30 decimal places, which decides the half-up rounding exactly: with at most 12 rate
decimals, a quotient that is not exactly on a half unit lies at least 10**-25/2 away from it.
`Conversion` records the rate used, that exact value and the rounding difference
`amount_to - exact`, which always lies in (-0.5, 0.5].

Money a payer sends in parts is valued in the invoice's currency by `received_value`, a
function of the cumulative total, anchored so that exactly the payer's amount is worth exactly
the invoice-currency total it was converted from (see there).
"""

from dataclasses import dataclass
from decimal import Decimal, localcontext

from quittance.domain.errors import QuittanceError
from quittance.domain.money import MAX_AMOUNT, exponent, normalize_currency, round_minor

# Rates carry at most this many decimal places and stay below RATE_LIMIT.
RATE_PLACES = 12
RATE_LIMIT = Decimal(10) ** 12
_RATE_QUANTUM = Decimal(1).scaleb(-RATE_PLACES)
# Working precision: products need at most 13 + 24 digits, quotients 29 + 30.
_PRECISION = 64
_QUOTIENT_QUANTUM = Decimal(1).scaleb(-30)


class InvalidExchangeRate(QuittanceError):
    status = 422
    code = "invalid_exchange_rate"
    title = "The exchange rate is not valid"


class ExchangeRateMismatch(QuittanceError):
    status = 422
    code = "exchange_rate_mismatch"
    title = "The exchange rate does not fit these currencies"


class ConvertedAmountTooLarge(QuittanceError):
    status = 422
    code = "converted_amount_too_large"
    title = "The converted amount is too large"


@dataclass(frozen=True, slots=True)
class ExchangeRate:
    """One major unit of `base` is worth `rate` major units of `quote`."""

    base: str
    quote: str
    rate: Decimal

    def __post_init__(self) -> None:
        try:
            base, quote = normalize_currency(self.base), normalize_currency(self.quote)
        except QuittanceError as error:
            raise InvalidExchangeRate(error.message, field="currency") from error
        if base == quote:
            raise InvalidExchangeRate(
                "An exchange rate needs two different currencies.", field="quote"
            )
        rate = self.rate
        if isinstance(rate, bool) or not isinstance(rate, Decimal) or not rate.is_finite():
            raise InvalidExchangeRate("The exchange rate must be a decimal number.", field="rate")
        if not 0 < rate < RATE_LIMIT:
            raise InvalidExchangeRate(
                f"The exchange rate must be above 0 and below {RATE_LIMIT:f}.", field="rate"
            )
        if rate != rate.quantize(_RATE_QUANTUM):
            raise InvalidExchangeRate(
                f"The exchange rate may have at most {RATE_PLACES} decimal places.", field="rate"
            )
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "quote", quote)

    @property
    def rate_text(self) -> str:
        """Return the rate as text for storage, without exponent or trailing zeros."""
        return f"{self.rate.normalize():f}"

    def __str__(self) -> str:
        return f"1 {self.base} = {self.rate_text} {self.quote}"


@dataclass(frozen=True, slots=True)
class Conversion:
    """An amount converted at a rate: what was exact, what was paid, and the rounding."""

    amount_from: int
    currency_from: str
    amount_to: int
    currency_to: str
    rate: ExchangeRate
    exact: Decimal  # target minor units before the one rounding
    rounding: Decimal  # amount_to - exact, in (-0.5, 0.5]

    @property
    def inverse(self) -> bool:
        """Tell whether the stored rate was quoted target→source and divided by."""
        return self.rate.base == self.currency_to


def exact_value(amount_minor: int, source: str, target: str, rate: ExchangeRate) -> Decimal:
    """Return `amount_minor` of `source` in minor units of `target`, before any rounding."""
    source, target = normalize_currency(source), normalize_currency(target)
    shift = exponent(target) - exponent(source)
    with localcontext() as context:
        context.prec = _PRECISION
        if (rate.base, rate.quote) == (source, target):
            return (Decimal(amount_minor) * rate.rate).scaleb(shift)
        if (rate.base, rate.quote) == (target, source):
            quotient = (Decimal(amount_minor) / rate.rate).scaleb(shift)
            return quotient.quantize(_QUOTIENT_QUANTUM)
    raise ExchangeRateMismatch(
        f"A {rate.base}/{rate.quote} rate cannot convert {source} into {target}.",
        base=rate.base,
        quote=rate.quote,
    )


def convert(
    amount_minor: int, from_currency: str, to_currency: str, rate: ExchangeRate
) -> Conversion:
    """Convert minor units of one currency into another's, rounding once, half up."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError("amounts are integers of minor units")
    if not 0 <= amount_minor <= MAX_AMOUNT:
        raise ValueError(f"amount {amount_minor} is outside 0..{MAX_AMOUNT}")
    source, target = normalize_currency(from_currency), normalize_currency(to_currency)
    exact = exact_value(amount_minor, source, target, rate)
    with localcontext() as context:
        context.prec = _PRECISION
        amount_to = round_minor(exact)
        rounding = Decimal(amount_to) - exact
    if amount_to > MAX_AMOUNT:
        raise ConvertedAmountTooLarge(
            f"{amount_minor} {source} is more than {MAX_AMOUNT} minor units of {target}.",
            currency=target,
        )
    return Conversion(amount_minor, source, amount_to, target, rate, exact, rounding)


def conversion_of(
    amount_from: int, currency_from: str, amount_to: int, currency_to: str, rate: ExchangeRate
) -> Conversion:
    """Describe two amounts already exchanged at `rate`: the exact value and the rounding.

    For money that arrives in parts, each part's rounding is what its amount differs from the
    exact value of its counterpart; the parts' roundings add up to the whole's.
    """
    exact = exact_value(amount_from, currency_from, currency_to, rate)
    rate_currencies = {rate.base, rate.quote}
    if {normalize_currency(currency_from), normalize_currency(currency_to)} != rate_currencies:
        raise ExchangeRateMismatch("The rate does not fit these currencies.")
    with localcontext() as context:
        context.prec = _PRECISION
        rounding = Decimal(amount_to) - exact
    return Conversion(
        amount_from, normalize_currency(currency_from), amount_to,
        normalize_currency(currency_to), rate, exact, rounding,
    )  # fmt: skip


def received_value(
    received: int, asked: int, total: int, payer_currency: str, currency: str,
    rate: ExchangeRate,
) -> int:  # fmt: skip
    """Return what `received` minor units of the payer's currency are worth in the invoice's.

    The payer was asked for `asked` (the conversion of `total` in the invoice's currency).
    Exactly `asked` is worth exactly `total`, whatever the rounding of that conversion; less is
    valued at the rate (rounded once, half up) but never above `total`; more is `total` plus
    the excess valued at the rate. The value only grows with `received`, so money arriving in
    parts is valued by differences of this function and the parts add up exactly.
    """
    if received >= asked:
        excess = received - asked
        return total + (convert(excess, payer_currency, currency, rate).amount_to if excess else 0)
    return min(total, convert(received, payer_currency, currency, rate).amount_to)
