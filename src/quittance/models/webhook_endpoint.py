from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from quittance.db.base import Base
from quittance.db.types import UTCDateTime


class WebhookEndpoint(Base):
    """A URL of the merchant's that receives signed events, with its signing secret."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        # `deleted_at` before `id`: the API's reads (deleted_at IS NULL) skip deleted rows.
        Index("ix_webhook_endpoints_tenant_id", "merchant_id", "livemode", "deleted_at", "id"),
        Index("ix_webhook_endpoints_enabled", "enabled", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    livemode: Mapped[bool]
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500))
    # Event types sent here: exact names, `invoice.*` prefixes, or `*` for all.
    enabled_events: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool]
    # Why it is disabled: `manual`, `gone` (answered 410) or `failing` (failed for too long).
    disabled_reason: Mapped[str | None] = mapped_column(String(32))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Start of the current run of failed attempts; cleared by any success.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Kept as is, not hashed: HMAC signing needs the secret itself.
    secret: Mapped[str] = mapped_column(String(128))
    # After a rotation the old secret signs too, until `previous_secret_expires_at`.
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set when the merchant deletes it: the row stays, disabled, and every read leaves it out.
    # Another process's cached endpoints may still name it for a few seconds, and a delivery
    # queued there must not fail that write on the foreign key (the dispatcher purges those).
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
