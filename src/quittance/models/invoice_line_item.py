from decimal import Decimal

from sqlalchemy import ForeignKey, String, text
from sqlalchemy.orm import Mapped, mapped_column

from quittance.db.base import Base
from quittance.db.types import DecimalText


class InvoiceLineItem(Base):
    """One line of an invoice; its amounts are computed once, when it is written."""

    __tablename__ = "invoice_line_items"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    position: Mapped[int]
    description: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[int]
    unit_amount: Mapped[int]
    tax_rate: Mapped[Decimal] = mapped_column(DecimalText())
    amount_net: Mapped[int]
    amount_tax: Mapped[int]
    amount: Mapped[int]
    # Units cancelled before delivery, delivered (captured) and refunded so far. The amount of
    # a share of the units is allocated cumulatively (`domain.line_items.share`), so the shares
    # of one line always add up to its amount exactly.
    quantity_cancelled: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    quantity_delivered: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    quantity_refunded: Mapped[int] = mapped_column(default=0, server_default=text("0"))
