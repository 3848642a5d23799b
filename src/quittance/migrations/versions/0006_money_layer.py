"""money layer: fee schedules, exchange rates, cancellations, deliveries; commission,
exchange and line-item quantities on payments, refunds and line items (DESIGN §3, §4, §8, §11)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 08:10:37.708820
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import quittance.db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exchange_rates",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("base", sa.String(length=3), nullable=False),
        sa.Column("quote", sa.String(length=3), nullable=False),
        sa.Column("rate", quittance.db.types.DecimalText(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", quittance.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_exchange_rates_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_rates")),
    )
    with op.batch_alter_table("exchange_rates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_exchange_rates_tenant_pair",
            ["merchant_id", "livemode", "base", "quote", "id"],
            unique=False,
        )

    op.create_table(
        "fee_schedules",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("percent", quittance.db.types.DecimalText(length=64), nullable=False),
        sa.Column("fixed", sa.BigInteger(), nullable=False),
        sa.Column("minimum", sa.BigInteger(), nullable=True),
        sa.Column("maximum", sa.BigInteger(), nullable=True),
        sa.Column("created_at", quittance.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", quittance.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_fee_schedules_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint(
            "merchant_id", "livemode", "method", "currency", name=op.f("pk_fee_schedules")
        ),
    )
    op.create_table(
        "cancellations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("line_items", sa.JSON(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.Column("created_at", quittance.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", quittance.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_cancellations_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_cancellations_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_cancellations_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cancellations")),
    )
    with op.batch_alter_table("cancellations", schema=None) as batch_op:
        batch_op.create_index("ix_cancellations_invoice", ["invoice_id", "id"], unique=False)
        batch_op.create_index(
            "ix_cancellations_tenant_id", ["merchant_id", "livemode", "id"], unique=False
        )

    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("line_items", sa.JSON(), nullable=True),
        sa.Column("provider_reference", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.Column("created_at", quittance.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", quittance.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_deliveries_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_deliveries_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_deliveries_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_invoice", ["invoice_id", "id"], unique=False)
        batch_op.create_index(
            "ix_deliveries_tenant_id", ["merchant_id", "livemode", "id"], unique=False
        )

    with op.batch_alter_table("invoice_line_items", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "quantity_cancelled", sa.BigInteger(), server_default=sa.text("0"), nullable=False
            )
        )
        batch_op.add_column(
            sa.Column(
                "quantity_delivered", sa.BigInteger(), server_default=sa.text("0"), nullable=False
            )
        )
        batch_op.add_column(
            sa.Column(
                "quantity_refunded", sa.BigInteger(), server_default=sa.text("0"), nullable=False
            )
        )

    with op.batch_alter_table("payment_options", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("refund_commission", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("commission", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(sa.Column("payer_currency", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("payer_amount", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "payer_received", sa.BigInteger(), server_default=sa.text("0"), nullable=False
            )
        )
        batch_op.add_column(
            sa.Column("exchange_rate", quittance.db.types.DecimalText(length=64), nullable=True)
        )

    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "commission_returned", sa.BigInteger(), server_default=sa.text("0"), nullable=False
            )
        )
        batch_op.add_column(sa.Column("line_items", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("payer_currency", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("payer_amount", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("next_check_at", quittance.db.types.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("lease_until", quittance.db.types.UTCDateTime(), nullable=True)
        )
        batch_op.create_index("ix_refunds_open", ["status", "next_check_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index("ix_refunds_open")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("next_check_at")
        batch_op.drop_column("payer_amount")
        batch_op.drop_column("payer_currency")
        batch_op.drop_column("line_items")
        batch_op.drop_column("commission_returned")

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("exchange_rate")
        batch_op.drop_column("payer_received")
        batch_op.drop_column("payer_amount")
        batch_op.drop_column("payer_currency")
        batch_op.drop_column("commission")

    with op.batch_alter_table("payment_options", schema=None) as batch_op:
        batch_op.drop_column("refund_commission")

    with op.batch_alter_table("invoice_line_items", schema=None) as batch_op:
        batch_op.drop_column("quantity_refunded")
        batch_op.drop_column("quantity_delivered")
        batch_op.drop_column("quantity_cancelled")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_tenant_id")
        batch_op.drop_index("ix_deliveries_invoice")

    op.drop_table("deliveries")
    with op.batch_alter_table("cancellations", schema=None) as batch_op:
        batch_op.drop_index("ix_cancellations_tenant_id")
        batch_op.drop_index("ix_cancellations_invoice")

    op.drop_table("cancellations")
    op.drop_table("fee_schedules")
    with op.batch_alter_table("exchange_rates", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_rates_tenant_pair")

    op.drop_table("exchange_rates")
