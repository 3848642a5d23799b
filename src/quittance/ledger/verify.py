"""Check every ledger invariant over the whole database (`quittance verify`, DESIGN §11).

1. Each transaction has two or more entries of its own merchant and mode, summing to zero in
   each currency.
2. Each invoice's amounts equal its ledger movements in the invoice's currency (entries are
   debit +, credit -):
   - `amount_paid`: the credits to the merchant's balance of its `capture` and `exchange`
     transactions not made by a refund. Commission paid on top is credited to revenue inside
     the capture (or moved there by a `capture` transaction after an exchange), commission
     from proceeds is taken by a separate `commission` transaction, so either way these
     credits are exactly the money received for the invoice;
   - `amount_refunded`: the debits to the merchant's balance and commission revenue of the
     transactions made by its refunds (`refund`, a reverse `exchange`, a returned commission);
   - `commission`: its net credits to commission revenue (charged, less returned).
3. Each invoice's status events chain from its creation through rows of
   `domain.invoice.TRANSITIONS`, each one leaving from where the previous one arrived, and the
   last one arrives at the invoice's status: one event per transition.

It reads only, and reports a reconciliation per merchant, mode and currency: received (captured
into provider clearing), refunded, commission (net revenue), exchange (money converted into this
currency on the merchant's balance, negative when converted out of it) and net (the merchant's
balance), so that net = received - refunded - commission + exchange.
"""

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from quittance.domain.invoice import TRANSITIONS, Status, Trigger
from quittance.domain.ledger import AccountKind, TransactionKind
from quittance.models import Event, Invoice, LedgerEntry, LedgerTransaction, Refund

_BALANCE = AccountKind.MERCHANT_BALANCE.value
_COMMISSION = AccountKind.COMMISSION_REVENUE.value
_CLEARING = AccountKind.PROVIDER_CLEARING.value
_CAPTURE = TransactionKind.CAPTURE.value
_REFUND = TransactionKind.REFUND.value
_EXCHANGE = TransactionKind.EXCHANGE.value
_ROWS = {(t.source, t.target, t.trigger): t.event for t in TRANSITIONS}


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant: which rule, on what (`ltx_…`, `inv_…`), and a sentence."""

    rule: str
    subject: str
    message: str


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """Money of one merchant, mode and currency (minor units, all positive when normal)."""

    merchant_id: str
    livemode: bool
    currency: str
    received: int = 0
    refunded: int = 0
    commission: int = 0
    net: int = 0  # what the merchant is owed: the credit balance of merchant_balance
    exchange: int = 0  # converted into this currency (+) or out of it (-) for the merchant


@dataclass(slots=True)
class Report:
    violations: list[Violation] = field(default_factory=list)
    reconciliation: list[Reconciliation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def verify(session: Session) -> Report:
    """Check every invariant and build the reconciliation; never writes."""
    report = Report()
    report.violations += _unbalanced(session)
    report.violations += _invoice_amounts(session)
    report.violations += _status_chains(session)
    report.reconciliation = _reconcile(session)
    return report


def _unbalanced(session: Session) -> Iterator[Violation]:
    off = session.execute(
        select(LedgerEntry.transaction_id, LedgerTransaction.invoice_id, LedgerEntry.currency,
               func.sum(LedgerEntry.amount))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .group_by(LedgerEntry.transaction_id, LedgerTransaction.invoice_id, LedgerEntry.currency)
        .having(func.sum(LedgerEntry.amount) != 0)
        .order_by(LedgerEntry.transaction_id, LedgerEntry.currency)
    )  # fmt: skip
    for transaction_id, invoice_id, currency, total in off:
        yield Violation("transaction_balanced", transaction_id,
                        f"entries sum to {currency} {int(total):+d}, not zero"
                        f"{_of(invoice_id)}")  # fmt: skip
    count = func.count(LedgerEntry.id)
    few = session.execute(
        select(LedgerTransaction.id, LedgerTransaction.invoice_id, count)
        .outerjoin(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .group_by(LedgerTransaction.id, LedgerTransaction.invoice_id)
        .having(count < 2)
        .order_by(LedgerTransaction.id)
    )
    for transaction_id, invoice_id, entries in few:
        yield Violation("transaction_balanced", transaction_id,
                        f"has {entries} entries; a transaction needs two or more"
                        f"{_of(invoice_id)}")  # fmt: skip
    foreign = session.execute(
        select(LedgerEntry.id, LedgerEntry.transaction_id)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(
            (LedgerEntry.merchant_id != LedgerTransaction.merchant_id)
            | (LedgerEntry.livemode != LedgerTransaction.livemode)
        )
        .order_by(LedgerEntry.id)
    )
    for entry_id, transaction_id in foreign:
        yield Violation("transaction_balanced", transaction_id,
                        f"entry {entry_id} belongs to another merchant or mode")  # fmt: skip


def _of(invoice_id: str | None) -> str:
    return f" (invoice {invoice_id})" if invoice_id else ""


def _invoice_amounts(session: Session) -> Iterator[Violation]:
    by_refund = LedgerTransaction.refund_id.is_not(None)
    captured = func.sum(
        case(
            (
                ~by_refund
                & LedgerTransaction.kind.in_([_CAPTURE, _EXCHANGE])
                & (LedgerEntry.account == _BALANCE),
                -LedgerEntry.amount,
            ),
            else_=0,
        )
    )
    refunded = func.sum(
        case(
            (by_refund & LedgerEntry.account.in_([_BALANCE, _COMMISSION]), LedgerEntry.amount),
            else_=0,
        )
    )
    earned = func.sum(case((LedgerEntry.account == _COMMISSION, -LedgerEntry.amount), else_=0))
    moved: dict[tuple[str, str], tuple[int, int, int]] = {
        (invoice_id, currency): (int(paid), int(back), int(fee))
        for invoice_id, currency, paid, back, fee in session.execute(
            select(LedgerTransaction.invoice_id, LedgerEntry.currency, captured, refunded, earned)
            .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
            .where(LedgerTransaction.invoice_id.is_not(None))
            .group_by(LedgerTransaction.invoice_id, LedgerEntry.currency)
        )
    }
    # Commission a payer had paid on top and got back with a refund: the ledger's refunds
    # debit it from revenue beside the invoice money, so it is counted beside amount_refunded.
    on_top_back = {
        invoice_id: int(total or 0)
        for invoice_id, total in session.execute(
            select(Refund.invoice_id, func.sum(Refund.payer_amount - Refund.amount))
            .where(
                Refund.status == "succeeded",
                Refund.payer_currency == Refund.currency,
                Refund.payer_amount.is_not(None),
            )
            .group_by(Refund.invoice_id)
        )
    }
    invoices = session.execute(
        select(Invoice.id, Invoice.currency, Invoice.amount_paid, Invoice.amount_refunded,
               Invoice.commission)
        .order_by(Invoice.id)
        .execution_options(yield_per=1000)
    )  # fmt: skip
    for invoice_id, currency, amount_paid, amount_refunded, commission in invoices:
        paid, back, fee = moved.get((invoice_id, currency), (0, 0, 0))
        if paid != amount_paid:
            yield Violation("invoice_paid", invoice_id,
                            f"amount_paid is {currency} {amount_paid} but its captures credit "
                            f"{currency} {paid} to the merchant balance")  # fmt: skip
        returned_on_top = on_top_back.get(invoice_id, 0)
        if back != amount_refunded + returned_on_top:
            extra = f" (and {returned_on_top} commission paid on top)" if returned_on_top else ""
            yield Violation("invoice_refunded", invoice_id,
                            f"amount_refunded is {currency} {amount_refunded}{extra} but its "
                            f"refunds debit {currency} {back}")  # fmt: skip
        if fee != (commission or 0):
            yield Violation("invoice_commission", invoice_id,
                            f"commission is {currency} {commission} but its commission revenue "
                            f"moved {currency} {fee}")  # fmt: skip


def _status_chains(session: Session) -> Iterator[Violation]:
    statuses = {row.id: row.status for row in session.execute(select(Invoice.id, Invoice.status))}
    events = session.execute(
        select(Event.invoice_id, Event.id, Event.type, Event.previous_status, Event.status,
               Event.trigger)
        .where(Event.invoice_id.is_not(None), Event.trigger.is_not(None))
        .order_by(Event.invoice_id, Event.id)
        .execution_options(yield_per=1000)
    )  # fmt: skip
    seen: set[str] = set()
    for invoice_id, chain in groupby(events, key=lambda row: row[0]):
        seen.add(invoice_id)
        current: str | None = None
        for _, event_id, kind, previous, status, trigger in chain:
            try:
                key = (None if previous is None else Status(previous), Status(str(status)),
                       Trigger(str(trigger)))  # fmt: skip
            except ValueError:
                key = None
            if key is None or key not in _ROWS:
                yield Violation("status_events", invoice_id,
                                f"event {event_id} ({previous} -> {status} by {trigger}) is not "
                                "a transition of the status table")  # fmt: skip
            elif _ROWS[key] != kind:
                named = _ROWS[key]
                yield Violation("status_events", invoice_id,
                                f"event {event_id} is {kind}, the table names {named}")  # fmt: skip
            if previous != current:
                yield Violation("status_events", invoice_id,
                                f"event {event_id} leaves {previous}, but the invoice was "
                                f"{current}")  # fmt: skip
            current = status
        if invoice_id in statuses and statuses[invoice_id] != current:
            yield Violation("status_events", invoice_id,
                            f"the invoice is {statuses[invoice_id]} but its last status event "
                            f"arrives at {current}")  # fmt: skip
    for invoice_id in sorted(set(statuses) - seen):
        yield Violation("status_events", invoice_id, "the invoice has no status event")


def _reconcile(session: Session) -> list[Reconciliation]:
    rows = session.execute(
        select(LedgerEntry.merchant_id, LedgerEntry.livemode, LedgerEntry.currency,
               LedgerTransaction.kind, LedgerEntry.account, func.sum(LedgerEntry.amount))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .group_by(LedgerEntry.merchant_id, LedgerEntry.livemode, LedgerEntry.currency,
                  LedgerTransaction.kind, LedgerEntry.account)
    )  # fmt: skip
    totals: dict[tuple[str, bool, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for merchant_id, livemode, currency, kind, account, total in rows:
        money = totals[(merchant_id, bool(livemode), currency)]
        amount = int(total)
        if kind == _CAPTURE and account.partition(":")[0] == _CLEARING:
            money["received"] += amount
        if kind == _REFUND and account in (_BALANCE, _COMMISSION):
            money["refunded"] += amount
        if account == _COMMISSION:
            money["commission"] -= amount
        if account == _BALANCE:
            money["net"] -= amount
            if kind == _EXCHANGE:
                money["exchange"] -= amount
    return [
        Reconciliation(merchant_id, livemode, currency, **money)
        for (merchant_id, livemode, currency), money in sorted(totals.items())
    ]
