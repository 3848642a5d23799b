from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from quittance.db.base import Base
from quittance.db.types import DecimalText, UTCDateTime


class ExchangeRate(Base):
    """One rate a merchant set (`quote` units per `base` unit); the newest of a pair applies.

    Rates are never updated in place: a new rate is a new row, so every payment's recorded
    rate can be traced to the row it came from.
    """

    __tablename__ = "exchange_rates"
    __table_args__ = (
        Index("ix_exchange_rates_tenant_pair", "merchant_id", "livemode", "base", "quote", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    livemode: Mapped[bool]
    base: Mapped[str] = mapped_column(String(3))
    quote: Mapped[str] = mapped_column(String(3))
    rate: Mapped[Decimal] = mapped_column(DecimalText())
    source: Mapped[str] = mapped_column(String(16))  # api, import
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
