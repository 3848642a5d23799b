"""webhook_endpoints.deleted_at: a deleted endpoint's row stays, disabled and marked deleted

Each process caches a merchant's enabled endpoints for a few seconds; another process could
queue a delivery for an endpoint just deleted, and the foreign key to a removed row failed
that whole write. The row now stays (every read leaves it out), so the insert succeeds and
the dispatcher purges the delivery. The tenant index takes `deleted_at` before `id`, so the
API's reads skip deleted rows in the index.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 15:55:42.228871
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import quittance.db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deleted_at", quittance.db.types.UTCDateTime(), nullable=True)
        )
        batch_op.drop_index("ix_webhook_endpoints_tenant_id")
        batch_op.create_index(
            "ix_webhook_endpoints_tenant_id",
            ["merchant_id", "livemode", "deleted_at", "id"],
            unique=False,
        )


def downgrade() -> None:
    # Without the column a deleted endpoint would come back (disabled): remove it for good,
    # with what a stale process may have queued for it since.
    deleted = "SELECT id FROM webhook_endpoints WHERE deleted_at IS NOT NULL"
    of_deleted = f"SELECT id FROM webhook_deliveries WHERE endpoint_id IN ({deleted})"
    op.execute(f"DELETE FROM webhook_attempts WHERE delivery_id IN ({of_deleted})")
    op.execute(f"DELETE FROM webhook_deliveries WHERE endpoint_id IN ({deleted})")
    op.execute("DELETE FROM webhook_endpoints WHERE deleted_at IS NOT NULL")
    # `recreate="never"`: a plain DROP COLUMN (SQLite 3.35+). Copying the table instead would
    # drop the original, which the deliveries' foreign key refuses while they reference it.
    with op.batch_alter_table("webhook_endpoints", schema=None, recreate="never") as batch_op:
        batch_op.drop_index("ix_webhook_endpoints_tenant_id")
        batch_op.drop_column("deleted_at")
        batch_op.create_index(
            "ix_webhook_endpoints_tenant_id", ["merchant_id", "livemode", "id"], unique=False
        )
