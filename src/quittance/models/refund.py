from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from quittance.db.base import Base
from quittance.db.types import UTCDateTime


class Refund(Base):
    """Money sent back to the payer through one payment, with its own small state machine.

    It is written and committed before the provider is called (its id is the provider's
    idempotency key), and the provider's answer is recorded in a second commit.
    """

    __tablename__ = "refunds"
    __table_args__ = (
        Index("ix_refunds_tenant_id", "merchant_id", "livemode", "id"),
        Index("ix_refunds_invoice", "invoice_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    livemode: Mapped[bool]
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32))  # pending, succeeded, failed
    reason: Mapped[str | None] = mapped_column(String(500))
    provider: Mapped[str] = mapped_column(String(32))
    provider_reference: Mapped[str | None] = mapped_column(String(128))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
