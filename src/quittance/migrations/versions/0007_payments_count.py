"""invoices.payments_count: an invoice's payment attempts so far, kept on the invoice

A new attempt's number was the count of the invoice's payments, a query that SQLite (without
statistics) answered by walking every payment of the merchant. The invoice row, locked by the
attempt anyway, now carries the count; existing invoices are counted once here.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 13:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("payments_count", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.execute(
        "UPDATE invoices SET payments_count = "
        "(SELECT count(*) FROM payments WHERE payments.invoice_id = invoices.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_column("payments_count")
