"""Money as an integer count of a currency's minor unit, never a float."""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from quittance.domain.errors import QuittanceError
from quittance.domain.iso4217 import EXPONENTS

# The largest amount one invoice, line or payment may carry, in minor units. It keeps every sum
# Quittance forms far inside a signed 64-bit column.
MAX_AMOUNT = 999_999_999_999

# The one rounding mode Quittance uses when a computation leaves a fraction of a minor unit.
ROUNDING = ROUND_HALF_UP


class CurrencyNotSupported(QuittanceError):
    status = 422
    code = "currency_not_supported"
    title = "Currency not supported"


def normalize_currency(code: str) -> str:
    """Return the upper-case ISO 4217 code, or raise `currency_not_supported`."""
    upper = code.upper()
    if len(upper) != 3 or upper not in EXPONENTS:
        raise CurrencyNotSupported(f"{code!r} is not an active ISO 4217 currency code.")
    return upper


def exponent(currency: str) -> int:
    """Return how many decimal places the currency's minor unit has (JPY 0, EUR 2, KWD 3)."""
    return EXPONENTS[normalize_currency(currency)]


def round_minor(value: Decimal) -> int:
    """Round an exact amount of minor units to an integer, half up; the only rounding step."""
    return int(value.quantize(Decimal(1), rounding=ROUNDING))


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: `amount` minor units of `currency`."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("money amounts are integers of minor units")
        normalize_currency(self.currency)

    @property
    def decimal(self) -> Decimal:
        """Return the amount in major units, exactly (`1999 EUR` → `Decimal('19.99')`)."""
        return Decimal(self.amount).scaleb(-exponent(self.currency))

    @classmethod
    def from_decimal(cls, value: Decimal, currency: str) -> "Money":
        """Build money from major units; raises if the value has more digits than the currency."""
        scaled = value.scaleb(exponent(currency))
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more decimals than {currency} allows")
        return cls(int(scaled), normalize_currency(currency))

    def __add__(self, other: "Money") -> "Money":
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def _same_currency(self, other: "Money") -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} and {other.currency}")

    def __str__(self) -> str:
        return f"{self.decimal:f} {self.currency}"
