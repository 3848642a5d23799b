"""Ledger queries, always scoped to one merchant and mode."""

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from quittance import clock
from quittance.auth.dependencies import Caller
from quittance.domain.errors import NotFound
from quittance.models import LedgerEntry, LedgerTransaction


class LedgerTransactionNotFound(NotFound):
    code = "ledger_transaction_not_found"


def transactions(caller: Caller, invoice_id: str | None = None) -> Select[LedgerTransaction]:
    """Return the caller's transactions, optionally those of one invoice."""
    query = select(LedgerTransaction).where(
        LedgerTransaction.merchant_id == caller.merchant_id,
        LedgerTransaction.livemode == caller.livemode,
    )
    if invoice_id is not None:
        query = query.where(LedgerTransaction.invoice_id == invoice_id)
    return query


def get_transaction(session: Session, caller: Caller, transaction_id: str) -> LedgerTransaction:
    """Return one of the caller's transactions, or raise `ledger_transaction_not_found`."""
    row = session.scalars(
        transactions(caller).where(LedgerTransaction.id == transaction_id)
    ).first()
    if row is None:
        raise LedgerTransactionNotFound(f"No ledger transaction {transaction_id!r} exists.")
    return row


def entries_of(
    session: Session, caller: Caller, transaction_ids: list[str]
) -> dict[str, list[LedgerEntry]]:
    """Return the entries of these transactions, by transaction id, in posting order."""
    found: dict[str, list[LedgerEntry]] = {tid: [] for tid in transaction_ids}
    if not transaction_ids:
        return found
    rows = session.scalars(
        select(LedgerEntry)
        .where(
            LedgerEntry.merchant_id == caller.merchant_id,
            LedgerEntry.livemode == caller.livemode,
            LedgerEntry.transaction_id.in_(transaction_ids),
        )
        .order_by(LedgerEntry.id)
    )
    for entry in rows:
        found[entry.transaction_id].append(entry)
    return found


def balances(session: Session, caller: Caller) -> list[tuple[str, str, int]]:
    """Return `(account, currency, balance)` for each of the caller's accounts: sums of entries."""
    rows = session.execute(
        select(LedgerEntry.account, LedgerEntry.currency, func.sum(LedgerEntry.amount))
        .where(
            LedgerEntry.merchant_id == caller.merchant_id,
            LedgerEntry.livemode == caller.livemode,
        )
        .group_by(LedgerEntry.account, LedgerEntry.currency)
        .order_by(LedgerEntry.account, LedgerEntry.currency)
    )
    return [(account, currency, int(total)) for account, currency, total in rows]


def render_transaction(row: LedgerTransaction, entries: list[LedgerEntry]) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "ledger_transaction",
        "livemode": row.livemode,
        "kind": row.kind,
        "invoice_id": row.invoice_id,
        "payment_id": row.payment_id,
        "refund_id": row.refund_id,
        "description": row.description,
        "created_at": clock.isoformat(row.created_at),
        "entries": [
            {"account": e.account, "currency": e.currency, "amount": e.amount} for e in entries
        ],
    }
