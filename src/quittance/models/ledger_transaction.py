from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from quittance.db.base import Base
from quittance.db.types import UTCDateTime


class LedgerTransaction(Base):
    """One money movement of the double-entry ledger (DESIGN §11); append-only.

    Its entries (`ledger_entries`) sum to zero per currency; corrections are new transactions.
    """

    __tablename__ = "ledger_transactions"
    __table_args__ = (
        Index("ix_ledger_transactions_tenant_id", "merchant_id", "livemode", "id"),
        Index("ix_ledger_transactions_invoice", "invoice_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    livemode: Mapped[bool]
    kind: Mapped[str] = mapped_column(String(32))  # domain.ledger.TransactionKind
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"))
    payment_id: Mapped[str | None] = mapped_column(ForeignKey("payments.id"))
    refund_id: Mapped[str | None] = mapped_column(String(40))  # refunds have no table yet
    description: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
