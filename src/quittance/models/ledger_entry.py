from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from quittance.db.base import Base
from quittance.db.types import UTCDateTime


class LedgerEntry(Base):
    """One line of a ledger transaction: signed minor units (debit +, credit -); append-only."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_transaction", "transaction_id"),
        Index("ix_ledger_entries_tenant_account", "merchant_id", "livemode", "currency", "account"),
        CheckConstraint("amount <> 0", name="moves_money"),
    )

    # The transaction's id and the entry's position: `ltx_…_00`.
    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    livemode: Mapped[bool]
    transaction_id: Mapped[str] = mapped_column(ForeignKey("ledger_transactions.id"))
    account: Mapped[str] = mapped_column(String(64))  # domain.ledger.Account.code
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
