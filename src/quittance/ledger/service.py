"""Write ledger transactions (DESIGN §11): append-only, balanced, in the caller's unit of work."""

from collections import defaultdict

from sqlalchemy.orm import Session

from quittance import clock
from quittance.db.rows import insert_rows
from quittance.domain.fees import Charge
from quittance.domain.ids import new_ordered_id
from quittance.domain.ledger import Book, LedgerImbalance, Refs, Transaction, capture
from quittance.domain.ledger import refund as refund_posting
from quittance.models import LedgerEntry, LedgerTransaction


def post(session: Session, transaction: Transaction, refs: Refs | None = None) -> str:
    """Write a balanced transaction and its entries now, in the session's transaction.

    The domain already refuses an unbalanced `Transaction`; the rows are checked again here,
    just before they are written, so no code path between the two can break the invariant.
    """
    refs = refs or transaction.refs
    now = clock.now()
    # Ordered ids: two postings in one millisecond still list in the order they were made.
    transaction_id = new_ordered_id("ltx")
    row = LedgerTransaction(
        id=transaction_id, merchant_id=transaction.merchant_id, livemode=transaction.livemode,
        kind=transaction.kind.value, invoice_id=refs.invoice_id, payment_id=refs.payment_id,
        refund_id=refs.refund_id, description=transaction.description[:200], created_at=now,
    )  # fmt: skip
    entries = [
        LedgerEntry(
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
    include_commission: bool = False,
) -> str:  # fmt: skip
    """Post money a provider received for an invoice: clearing debited, merchant credited.

    `received` is what the payer paid (in `currency`), `commission` the part of it that is
    commission revenue: on top of the invoice's money (`include_commission`) or taken from the
    merchant's proceeds; either way the merchant's balance is credited `received - commission`.
    """
    charge = Charge(received - commission, commission, received, received - commission,
                    currency, include_commission=include_commission)  # fmt: skip
    refs = Refs(invoice_id=invoice_id, payment_id=payment_id)
    return post(session, capture(Book(merchant_id, livemode), charge, provider, refs))


def post_refund(
    session: Session, *, merchant_id: str, livemode: bool, provider: str, currency: str,
    amount: int, invoice_id: str, payment_id: str, refund_id: str, commission_returned: int = 0,
) -> str:  # fmt: skip
    """Post money the provider sent back: merchant balance debited, provider clearing credited.

    `commission_returned` of `amount` is paid by commission revenue instead of the merchant.
    """
    refs = Refs(invoice_id=invoice_id, payment_id=payment_id, refund_id=refund_id)
    posting = refund_posting(Book(merchant_id, livemode), currency, amount, provider,
                             commission_returned=commission_returned, refs=refs)  # fmt: skip
    return post(session, posting)
