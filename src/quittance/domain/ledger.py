"""The double-entry ledger (DESIGN §11): accounts, entries, balanced transactions, postings.

Sign convention: an entry's `amount` is signed minor units, a debit positive and a credit
negative. Every transaction's entries sum to zero in each currency it touches, which
`Transaction` itself checks, so an unbalanced one cannot be built. Account kinds:

- `provider_clearing:<provider>` (asset): what the provider holds; captures debit it.
- `merchant_balance` (liability): what is owed to the merchant; a credit raises it, so a
  merchant who is owed money has a negative ledger balance.
- `commission_revenue` (revenue): commission earned from the merchant; credited.
- `refunds_payable` (liability): refunds promised to payers but not yet sent by the provider.
- `exchange`: the counterparty of conversions, one account per currency, so each currency of an
  exchange sums to zero on its own; its balances show the position taken in each currency.
Accounts are per merchant, mode and currency; a transaction never mixes merchants or modes.
The ledger is append-only: corrections are new transactions.
"""

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from quittance.domain.errors import QuittanceError
from quittance.domain.exchange import Conversion
from quittance.domain.fees import Charge
from quittance.domain.money import normalize_currency

_PROVIDER_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


class LedgerImbalance(QuittanceError):
    # A broken money invariant is a bug in Quittance, never the caller's doing.
    status = 500
    code = "ledger_unbalanced"
    title = "The ledger transaction does not balance"


class AccountKind(StrEnum):
    MERCHANT_BALANCE = "merchant_balance"
    PROVIDER_CLEARING = "provider_clearing"
    COMMISSION_REVENUE = "commission_revenue"
    REFUNDS_PAYABLE = "refunds_payable"
    EXCHANGE = "exchange"


class TransactionKind(StrEnum):
    CAPTURE = "capture"
    REFUND = "refund"
    REFUND_SETTLEMENT = "refund_settlement"
    COMMISSION = "commission"
    EXCHANGE = "exchange"
    CORRECTION = "correction"


@dataclass(frozen=True, slots=True)
class Account:
    """One ledger account: a merchant's, in one mode and currency, of one kind."""

    merchant_id: str
    livemode: bool
    currency: str
    kind: AccountKind
    provider: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.merchant_id, str) or not self.merchant_id:
            raise ValueError("an account belongs to a merchant")
        object.__setattr__(self, "currency", normalize_currency(self.currency))
        object.__setattr__(self, "kind", AccountKind(self.kind))
        if self.kind is AccountKind.PROVIDER_CLEARING:
            if self.provider is None or not _PROVIDER_NAME.fullmatch(self.provider):
                raise ValueError(f"invalid provider name {self.provider!r} for a clearing account")
        elif self.provider is not None:
            raise ValueError(f"a {self.kind.value} account names no provider")

    @property
    def code(self) -> str:
        """Return the account's kind as stored: `merchant_balance`, `provider_clearing:sandbox`."""
        return self.kind.value if self.provider is None else f"{self.kind.value}:{self.provider}"

    @classmethod
    def from_code(cls, merchant_id: str, livemode: bool, currency: str, code: str) -> "Account":
        """Rebuild an account from its stored code (the inverse of `code`)."""
        kind, _, provider = code.partition(":")
        return cls(merchant_id, livemode, currency, AccountKind(kind), provider or None)


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a transaction: `amount` signed minor units (debit +, credit -)."""

    account: Account
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("ledger amounts are integers of minor units")
        currency = normalize_currency(self.currency)
        if currency != self.account.currency:
            raise ValueError(f"a {currency} entry cannot post to a {self.account.currency} account")
        object.__setattr__(self, "currency", currency)


def _refuse(message: str, reason: str, sums: dict[str, int] | None = None) -> LedgerImbalance:
    return LedgerImbalance(message, reason=reason, sums=sums or {})


def check_balanced(entries: Iterable[Entry]) -> None:
    """Raise `ledger_unbalanced` unless the entries form one valid double-entry transaction."""
    lines = list(entries)
    if len(lines) < 2:
        raise _refuse("A transaction needs at least two entries.", "too_few_entries")
    if any(line.amount == 0 for line in lines):
        raise _refuse("A transaction entry must move money.", "zero_entry")
    if len({line.account.merchant_id for line in lines}) != 1:
        raise _refuse("A transaction cannot span merchants.", "mixed_merchants")
    if len({line.account.livemode for line in lines}) != 1:
        raise _refuse("A transaction cannot mix test and live mode.", "mixed_modes")
    sums: dict[str, int] = defaultdict(int)
    for line in lines:
        sums[line.currency] += line.amount
    off = {currency: total for currency, total in sums.items() if total != 0}
    if off:
        listed = ", ".join(f"{currency} {total:+d}" for currency, total in sorted(off.items()))
        raise _refuse(f"The entries do not sum to zero: {listed}.", "not_zero_sum", off)


@dataclass(frozen=True, slots=True)
class Refs:
    """What caused a transaction: the invoice, payment or refund, and a free reference."""

    invoice_id: str | None = None
    payment_id: str | None = None
    refund_id: str | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Transaction:
    """One money movement: balanced entries plus what caused them."""

    kind: TransactionKind
    entries: tuple[Entry, ...]
    description: str = ""
    refs: Refs = Refs()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", TransactionKind(self.kind))
        object.__setattr__(self, "entries", tuple(self.entries))
        check_balanced(self.entries)

    @property
    def merchant_id(self) -> str:
        """Return the merchant every entry belongs to."""
        return self.entries[0].account.merchant_id

    @property
    def livemode(self) -> bool:
        """Return the mode every entry belongs to."""
        return self.entries[0].account.livemode


def build_transaction(
    kind: TransactionKind,
    entries: Iterable[Entry],
    *,
    description: str = "",
    refs: Refs | None = None,
) -> Transaction:
    """Return a balanced transaction, or raise `ledger_unbalanced`."""
    return Transaction(kind, tuple(entries), description, refs or Refs())


def balances(entries: Iterable[Entry]) -> dict[Account, int]:
    """Sum entries per account (debit +, credit -)."""
    totals: dict[Account, int] = defaultdict(int)
    for line in entries:
        totals[line.account] += line.amount
    return dict(totals)


@dataclass(frozen=True, slots=True)
class Book:
    """The accounts of one merchant in one mode; the postings below are written into it."""

    merchant_id: str
    livemode: bool

    def account(self, kind: AccountKind, currency: str, provider: str | None = None) -> Account:
        """Return this merchant's account of `kind` in `currency`."""
        return Account(self.merchant_id, self.livemode, currency, kind, provider)

    def lines(self, currency: str, *postings: tuple[AccountKind, str | None, int]) -> list[Entry]:
        """Turn `(kind, provider, amount)` postings into entries, leaving out zero amounts."""
        return [
            Entry(self.account(kind, currency, provider), amount, currency)
            for kind, provider, amount in postings
            if amount != 0
        ]


K, T = AccountKind, TransactionKind


def capture(book: Book, charge: Charge, provider: str, refs: Refs | None = None) -> Transaction:
    """Post a captured payment: clearing debited with what the payer paid, split by the charge.

    The provider's clearing account is debited `payer_amount`, the merchant's balance credited
    `merchant_net` and commission revenue credited `commission`, whichever side paid it.
    """
    entries = book.lines(
        charge.currency,
        (K.PROVIDER_CLEARING, provider, charge.payer_amount),
        (K.MERCHANT_BALANCE, None, -charge.merchant_net),
        (K.COMMISSION_REVENUE, None, -charge.commission),
    )
    return build_transaction(T.CAPTURE, entries, description="Payment captured", refs=refs)


def refund(
    book: Book,
    currency: str,
    amount: int,
    provider: str,
    *,
    commission_returned: int = 0,
    on_top: bool = False,
    pending: bool = False,
    refs: Refs | None = None,
) -> Transaction:
    """Post a refund of `amount` to the payer, with `commission_returned` paid by commission.

    From the merchant's proceeds (default) the commission returned is part of `amount`: the
    merchant's balance is debited `amount - commission_returned`, commission revenue
    `commission_returned`, and the payer gets `amount`. When the payer had paid the commission
    on top (`on_top`), it goes back to the payer on top of `amount`: the merchant's balance is
    debited `amount`, commission revenue `commission_returned`, and the payer gets both. The
    payout is credited to the provider's clearing account, or to `refunds_payable` when the
    provider has not sent the money yet (`pending`).
    """
    if not 0 <= commission_returned <= amount:
        raise ValueError("the commission returned must be between 0 and the refunded amount")
    paid_out = amount + commission_returned if on_top else amount
    payout = (
        (K.REFUNDS_PAYABLE, None, -paid_out)
        if pending
        else (K.PROVIDER_CLEARING, provider, -paid_out)
    )
    entries = book.lines(
        currency,
        (K.MERCHANT_BALANCE, None, amount if on_top else amount - commission_returned),
        (K.COMMISSION_REVENUE, None, commission_returned),
        payout,
    )
    return build_transaction(T.REFUND, entries, description="Refund", refs=refs)


def settle_refund(
    book: Book, currency: str, amount: int, provider: str, refs: Refs | None = None
) -> Transaction:
    """Post a pending refund's payout: refunds payable debited, provider clearing credited."""
    entries = book.lines(
        currency,
        (K.REFUNDS_PAYABLE, None, amount),
        (K.PROVIDER_CLEARING, provider, -amount),
    )
    return build_transaction(
        T.REFUND_SETTLEMENT,
        entries,
        description="Refund paid out",
        refs=refs,
    )


def charge_commission(
    book: Book, currency: str, amount: int, refs: Refs | None = None
) -> Transaction:
    """Post a commission charged on its own: merchant balance debited, revenue credited."""
    entries = book.lines(
        currency,
        (K.MERCHANT_BALANCE, None, amount),
        (K.COMMISSION_REVENUE, None, -amount),
    )
    return build_transaction(T.COMMISSION, entries, description="Commission", refs=refs)


def exchange(
    book: Book, conversion: Conversion, *, reverse: bool = False, refs: Refs | None = None
) -> Transaction:
    """Post a conversion on the merchant's balance through the exchange accounts.

    `conversion` goes from the invoice's currency to the payer's. By default the merchant's
    balance gives up the payer's amount (`amount_to`) and receives the invoice's amount
    (`amount_from`), as after a payment in another currency; `reverse` swaps the two sides,
    as for a refund paid back in the payer's currency. Each currency sums to zero on its own.
    """
    sign = -1 if reverse else 1
    paid = sign * conversion.amount_to
    owed = sign * conversion.amount_from
    entries = book.lines(
        conversion.currency_to, (K.MERCHANT_BALANCE, None, paid), (K.EXCHANGE, None, -paid)
    ) + book.lines(
        conversion.currency_from, (K.EXCHANGE, None, owed), (K.MERCHANT_BALANCE, None, -owed)
    )
    description = f"Exchange at {conversion.rate}, rounding {conversion.rounding:f}"
    return build_transaction(T.EXCHANGE, entries, description=description, refs=refs)
