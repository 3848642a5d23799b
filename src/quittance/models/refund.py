from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, text
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
        Index("ix_refunds_open", "status", "next_check_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    livemode: Mapped[bool]
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32))  # pending, succeeded, failed
    # The commission given back to the merchant's payer with this refund (part of `amount`
    # paid by commission revenue instead of the merchant's balance).
    commission_returned: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # Line items refunded: [{"line_item": id, "quantity": n, "amount": minor units}], or None.
    line_items: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # What goes back in the payer's currency, when the payment was converted.
    payer_currency: Mapped[str | None] = mapped_column(String(3))
    payer_amount: Mapped[int | None]
    # When the worker should next ask the provider about a pending refund, and who holds it.
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(500))
    provider: Mapped[str] = mapped_column(String(32))
    provider_reference: Mapped[str | None] = mapped_column(String(128))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
