"""Write ledger transactions (DESIGN §11): append-only, balanced, in the caller's unit of work."""

from collections import defaultdict
from dataclasses import replace
from decimal import Decimal

from sqlalchemy.orm import Session

from quittance import clock
from quittance.db.rows import build, insert_rows
from quittance.domain.exchange import ExchangeRate, conversion_of
from quittance.domain.fees import Charge
from quittance.domain.ids import new_ordered_id
from quittance.domain.ledger import (
    Book,
    LedgerImbalance,
    Refs,
    Transaction,
    TransactionKind,
    capture,
    charge_commission,
    exchange,
)
from quittance.domain.ledger import refund as refund_posting
from quittance.models import LedgerEntry, LedgerTransaction, Payment


def post(session: Session, transaction: Transaction, refs: Refs | None = None) -> str:
    """Write a balanced transaction and its entries now, in the session's transaction.

    The domain already refuses an unbalanced `Transaction`; the rows are checked again here,
    just before they are written, so no code path between the two can break the invariant.
    """
    refs = refs or transaction.refs
    now = clock.now()
    # Ordered ids: two postings in one millisecond still list in the order they were made.
    transaction_id = new_ordered_id("ltx")
    row = build(
        LedgerTransaction,
        id=transaction_id, merchant_id=transaction.merchant_id, livemode=transaction.livemode,
        kind=transaction.kind.value, invoice_id=refs.invoice_id, payment_id=refs.payment_id,
        refund_id=refs.refund_id, description=transaction.description[:200], created_at=now,
    )  # fmt: skip
    entries = [
        build(
            LedgerEntry,
            id=f"{transaction_id}_{position:02d}",
            merchant_id=entry.account.merchant_id,
            livemode=entry.account.livemode,
            transaction_id=transaction_id,
            account=entry.account.code,
            currency=entry.currency,
            amount=entry.amount,
            created_at=now,
        )
        for position, entry in enumerate(transaction.entries)
    ]
    check_rows(row, entries)
    insert_rows(session, [row])
    insert_rows(session, list(entries))
    return transaction_id


def check_rows(row: LedgerTransaction, entries: list[LedgerEntry]) -> None:
    """Raise `ledger_unbalanced` unless the rows are one balanced transaction of one tenant."""
    if len(entries) < 2 or any(e.amount == 0 for e in entries):
        raise LedgerImbalance("A transaction needs two or more non-zero entries.",
                              reason="too_few_entries", sums={})  # fmt: skip
    if any((e.merchant_id, e.livemode) != (row.merchant_id, row.livemode) for e in entries):
        raise LedgerImbalance("An entry belongs to another merchant or mode than its transaction.",
                              reason="mixed_tenants", sums={})  # fmt: skip
    sums: dict[str, int] = defaultdict(int)
    for entry in entries:
        sums[entry.currency] += entry.amount
    off = {currency: total for currency, total in sums.items() if total != 0}
    if off:
        raise LedgerImbalance(
            "The entries do not sum to zero in every currency.", reason="not_zero_sum", sums=off
        )


def post_capture(
    session: Session, *, merchant_id: str, livemode: bool, provider: str, currency: str,
    received: int, invoice_id: str, payment_id: str, commission: int = 0,
    include_commission: bool = False, payer_currency: str | None = None,
    payer_received: int | None = None, exchange_rate: Decimal | None = None,
) -> str:  # fmt: skip
    """Post money a provider received for an invoice; return the capture's transaction id.

    `received` is what the payer paid, valued in the invoice's `currency`, and `commission` the
    part of it that is commission revenue. The ledger shape says who paid it:

    - commission on top (`include_commission`): one `capture` transaction debits the clearing
      account `received` and credits the merchant `received - commission` and commission
      revenue `commission`;
    - from the merchant's proceeds: the `capture` credits the merchant all of `received`, and a
      `commission` transaction then moves `commission` from the merchant's balance to revenue.

    So the merchant's credits in `capture` (and `exchange`) transactions are always exactly
    what the invoice's `amount_paid` grew by, which `quittance verify` checks.

    When the payer paid in another currency (`payer_currency`, `payer_received` minor units of
    it, `exchange_rate` payer units per invoice unit), the capture is booked in the payer's
    currency, an `exchange` transaction brings that money into the invoice's currency on the
    merchant's balance (its description records the rate and the rounding), and the commission
    follows in the invoice's currency: paid on top, as a `capture` transaction moving it from the
    merchant's balance to revenue; from proceeds, as a `commission` transaction.
    """
    book = Book(merchant_id, livemode)
    refs = Refs(invoice_id=invoice_id, payment_id=payment_id)
    converted = payer_currency is not None and payer_currency != currency
    if not converted:
        on_top = commission if include_commission else 0
        charge = Charge(received - on_top, on_top, received, received - on_top, currency,
                        include_commission=include_commission)  # fmt: skip
        capture_id = post(session, capture(book, charge, provider, refs))
        if commission and not include_commission:
            post(session, charge_commission(book, currency, commission, refs))
        return capture_id
    if payer_received is None or exchange_rate is None:
        raise ValueError("a converted capture needs payer_received and exchange_rate")
    assert payer_currency is not None
    paid = Charge(payer_received, 0, payer_received, payer_received, payer_currency,
                  include_commission=False)  # fmt: skip
    capture_id = post(session, capture(book, paid, provider, refs))
    rate = ExchangeRate(currency, payer_currency, exchange_rate)
    conversion = conversion_of(received, currency, payer_received, payer_currency, rate)
    post(session, exchange(book, conversion, refs=refs))
    if commission:
        moved = charge_commission(book, currency, commission, refs)
        if include_commission:
            moved = replace(moved, kind=TransactionKind.CAPTURE,
                            description="Commission paid on top, after exchange")  # fmt: skip
        post(session, moved)
    return capture_id


def post_refund(
    session: Session, *, merchant_id: str, livemode: bool, provider: str, currency: str,
    amount: int, invoice_id: str, payment_id: str, refund_id: str, commission_returned: int = 0,
    payer_currency: str | None = None, payer_amount: int | None = None,
) -> str:  # fmt: skip
    """Post money the provider sent back; return the refund's transaction id.

    The payer gets `amount` (invoice currency) back: the merchant's balance is debited
    `amount - commission_returned` and commission revenue `commission_returned`, the provider's
    clearing account credited `amount`.

    For a payment made in another currency, `payer_amount` of `payer_currency` is what the
    provider sends back. Then `commission_returned` first goes from revenue to the merchant's
    balance (a `commission` transaction), an `exchange` transaction in reverse turns `amount`
    of the invoice's currency on the merchant's balance into `payer_amount` of the payer's
    (at the payment's rate; the description records it and the rounding), and the `refund`
    transaction is booked in the payer's currency. Each transaction balances per currency.
    """
    book = Book(merchant_id, livemode)
    refs = Refs(invoice_id=invoice_id, payment_id=payment_id, refund_id=refund_id)
    if payer_currency is None or payer_currency == currency:
        # In the invoice's currency the payer gets `amount` back, plus the commission returned
        # when the payer had paid it on top.
        on_top = payer_amount is not None and payer_amount != amount
        if on_top and payer_amount != amount + commission_returned:
            raise ValueError("a refund in the invoice's currency sends back its amount, plus "
                             "the commission returned when it was paid on top")  # fmt: skip
        posting = refund_posting(book, currency, amount, provider, on_top=on_top,
                                 commission_returned=commission_returned, refs=refs)  # fmt: skip
        return post(session, posting)
    if payer_amount is None:
        raise ValueError("a refund in the payer's currency needs payer_amount")
    if not 0 <= commission_returned <= amount:
        raise ValueError("the commission returned must be between 0 and the refunded amount")
    if commission_returned:
        returned = charge_commission(book, currency, -commission_returned, refs)
        post(session, replace(returned, description="Commission returned with a refund"))
    payment = session.get(Payment, payment_id)
    stored = payment.exchange_rate if payment is not None else None
    rate = ExchangeRate(currency, payer_currency, stored if stored else Decimal(1))
    conversion = conversion_of(amount, currency, payer_amount, payer_currency, rate)
    post(session, exchange(book, conversion, reverse=True, refs=refs))
    posting = refund_posting(book, payer_currency, payer_amount, provider, refs=refs)
    return post(session, posting)
