from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from quittance.db.base import Base
from quittance.db.types import UTCDateTime


class Cancellation(Base):
    """A merchant's cancellation of all or part of an invoice before money or goods moved."""

    __tablename__ = "cancellations"
    __table_args__ = (
        Index("ix_cancellations_tenant_id", "merchant_id", "livemode", "id"),
        Index("ix_cancellations_invoice", "invoice_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    livemode: Mapped[bool]
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    # The authorisation released at the provider, when the invoice was authorised.
    payment_id: Mapped[str | None] = mapped_column(ForeignKey("payments.id"))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # Line items cancelled: [{"line_item": id, "quantity": n, "amount": minor units}], or None.
    line_items: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(32))  # succeeded, failed
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
