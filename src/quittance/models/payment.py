from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from quittance.db.base import Base
from quittance.db.types import DecimalText, UTCDateTime


class Payment(Base):
    """One attempt to pay an invoice at a provider (PayCore's low-level "payment").

    It is written and committed before the provider is called (its id is the provider's
    idempotency key), and the provider's answer is recorded in a second commit.
    """

    __tablename__ = "payments"
    __table_args__ = (
        Index("ix_payments_tenant_id", "merchant_id", "livemode", "id"),
        Index("ix_payments_invoice", "invoice_id", "id"),
        Index("ix_payments_open", "status", "next_check_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    livemode: Mapped[bool]
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    attempt: Mapped[int]
    status: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(32))
    payment_method_id: Mapped[str | None] = mapped_column(ForeignKey("payment_methods.id"))
    customer_id: Mapped[str | None] = mapped_column(String(40))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # Money the provider has received (captured or transferred) for this payment.
    amount_received: Mapped[int]
    # Money authorised and not yet captured or released (capture-on-delivery methods).
    amount_authorized: Mapped[int]
    # Commission recognised on the money received so far (invoice currency, minor units).
    commission: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # What the provider was asked to charge and has received, in the payer's currency: the
    # invoice's amount plus commission on top (`include_commission`), converted when the payer
    # pays in another currency (`exchange_rate`: payer currency units per invoice currency unit).
    payer_currency: Mapped[str | None] = mapped_column(String(3))
    payer_amount: Mapped[int | None]
    payer_received: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    exchange_rate: Mapped[Decimal | None] = mapped_column(DecimalText())
    provider: Mapped[str | None] = mapped_column(String(32))
    connection_id: Mapped[str | None] = mapped_column(String(40))
    provider_reference: Mapped[str | None] = mapped_column(String(128))
    routing: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # every connection tried
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    next_action: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    provider_response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # When the worker should next ask the provider (open payments) and who holds it now.
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
