from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from quittance.db.base import Base
from quittance.db.types import DecimalText, UTCDateTime


class FeeSchedule(Base):
    """A merchant's commission for one payment method in one currency (`domain.fees`)."""

    __tablename__ = "fee_schedules"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    livemode: Mapped[bool] = mapped_column(primary_key=True)
    method: Mapped[str] = mapped_column(String(32), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    percent: Mapped[Decimal] = mapped_column(DecimalText())
    fixed: Mapped[int]
    minimum: Mapped[int | None]
    maximum: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
