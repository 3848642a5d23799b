from datetime import datetime

from sqlalchemy import ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column

from quittance.db.base import Base
from quittance.db.types import UTCDateTime


class PaymentOptions(Base):
    """A merchant's payment options (DESIGN §8, PayCore's "Payment options"), one set per mode,
    so trying a setting with a test key never changes how live invoices behave."""

    __tablename__ = "payment_options"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    livemode: Mapped[bool] = mapped_column(primary_key=True)
    invoice_lifetime: Mapped[int]  # seconds
    attempts_limit: Mapped[int]
    include_commission: Mapped[bool]
    # Whether a refund gives the commission back by default (a refund request may override).
    refund_commission: Mapped[bool] = mapped_column(default=False, server_default=false())
    allow_public_creation: Mapped[bool]
    public_fee_details: Mapped[bool]
    public_zero_fee_badge: Mapped[bool]
    expose_internal_callback_data: Mapped[bool]
    descriptor_template: Mapped[str] = mapped_column(String(200))
    return_url: Mapped[str | None] = mapped_column(String(2048))
    default_locale: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
