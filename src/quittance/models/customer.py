from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from quittance.db.base import Base
from quittance.db.types import UTCDateTime


class Customer(Base):
    """A payer the merchant knows, with saved payment methods and a default one."""

    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_tenant_id", "merchant_id", "livemode", "id"),
        Index("ix_customers_tenant_email", "merchant_id", "livemode", "email"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    livemode: Mapped[bool]
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2))
    # A plain column (not a foreign key): methods point at customers, and one cycle is enough.
    default_payment_method_id: Mapped[str | None] = mapped_column(String(40))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
