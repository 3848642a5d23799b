from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from quittance.db.base import Base
from quittance.db.types import UTCDateTime


class PaymentMethod(Base):
    """A way to pay, tokenised at the provider: never a card number or security code."""

    __tablename__ = "payment_methods"
    __table_args__ = (Index("ix_payment_methods_customer", "merchant_id", "customer_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    livemode: Mapped[bool]
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    type: Mapped[str] = mapped_column(String(32))  # card, bank_transfer, invoice
    provider: Mapped[str] = mapped_column(String(32))
    provider_token: Mapped[str | None] = mapped_column(String(128))
    brand: Mapped[str | None] = mapped_column(String(32))
    last4: Mapped[str | None] = mapped_column(String(4))
    exp_month: Mapped[int | None]
    exp_year: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    detached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
