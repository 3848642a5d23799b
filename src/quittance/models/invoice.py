from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from quittance.db.base import Base
from quittance.db.types import DecimalText, UTCDateTime
from quittance.models.invoice_line_item import InvoiceLineItem


class Invoice(Base):
    """What a payer owes a merchant, and everything that happened to it."""

    __tablename__ = "invoices"
    __table_args__ = (
        Index("ix_invoices_tenant_id", "merchant_id", "livemode", "id"),
        Index("ix_invoices_tenant_reference", "merchant_id", "livemode", "reference"),
        Index("ix_invoices_tenant_customer_email", "merchant_id", "livemode", "customer_email"),
        Index("ix_invoices_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    livemode: Mapped[bool]
    status: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int]
    amount_paid: Mapped[int] = mapped_column(default=0)
    amount_refunded: Mapped[int] = mapped_column(default=0)
    amount_cancelled: Mapped[int] = mapped_column(default=0)
    commission: Mapped[int] = mapped_column(default=0)
    payment_currency: Mapped[str | None] = mapped_column(String(3))
    payment_amount: Mapped[int | None]
    exchange_rate: Mapped[Decimal | None] = mapped_column(DecimalText())
    paid_late: Mapped[bool] = mapped_column(default=False)
    reference: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(1000))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    # Authorised, not yet captured (capture-on-delivery methods); not part of amount_paid.
    amount_authorized: Mapped[int] = mapped_column(default=0)
    customer_email: Mapped[str | None] = mapped_column(String(320))
    customer_name: Mapped[str | None] = mapped_column(String(200))
    customer_country: Mapped[str | None] = mapped_column(String(2))
    return_url: Mapped[str | None] = mapped_column(String(2048))
    pay_token: Mapped[str] = mapped_column(String(64), unique=True)
    lifetime: Mapped[int]  # seconds, counted from finalisation
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts_limit: Mapped[int]
    attempts_count: Mapped[int] = mapped_column(default=0)  # failed attempts
    # Every payment attempt so far, whatever became of it: the next attempt's number minus 1.
    payments_count: Mapped[int] = mapped_column(default=0, server_default="0")
    last_payment_error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    # Reference, description and customer, case-folded in Python so free-text search behaves
    # the same on SQLite (whose LIKE folds ASCII only) and PostgreSQL.
    search_text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    line_items: Mapped[list[InvoiceLineItem]] = relationship(
        order_by=InvoiceLineItem.position, lazy="raise", cascade="all, delete-orphan"
    )
