from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from quittance.db.base import Base
from quittance.db.types import UTCDateTime


class MethodConfig(Base):
    """How a merchant accepts one payment method: limits, countries, and its routing."""

    __tablename__ = "method_configs"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    livemode: Mapped[bool] = mapped_column(primary_key=True)
    method: Mapped[str] = mapped_column(String(32), primary_key=True)
    enabled: Mapped[bool]
    min_amount: Mapped[int | None]
    max_amount: Mapped[int | None]
    countries: Mapped[list[str] | None] = mapped_column(JSON)  # None: every country
    currencies: Mapped[list[str] | None] = mapped_column(JSON)  # None: every currency
    # Provider connection ids in the order they are tried within one attempt.
    connection_ids: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
