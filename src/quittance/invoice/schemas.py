"""Invoice request bodies, the response document, and its rendering."""

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetPydanticSchema, model_validator
from pydantic_core import PydanticCustomError, core_schema

from quittance.api.schemas import (
    Amount,
    Country,
    Currency,
    Email,
    Metadata,
    NonNegativeAmount,
    Rate,
    StrictModel,
    Url,
)
from quittance.clock import isoformat
from quittance.models import Invoice, InvoiceLineItem

MIN_LIFETIME = 60
MAX_LIFETIME = 366 * 24 * 3600


class CustomerIn(StrictModel):
    email: Email | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    country: Country | None = Field(default=None, description="ISO 3166-1 alpha-2")


_CUSTOMER_ID = re.compile(r"^cus_[0-9A-Z]{26}$")


def _customer_or_id(value: Any, handler: core_schema.ValidatorFunctionWrapHandler) -> Any:
    # A string is a saved customer's id (whether it exists is the service's question); anything
    # else must be a customer object, validated as one (its errors keep `customer.email`).
    if isinstance(value, str):
        if not _CUSTOMER_ID.match(value):
            raise PydanticCustomError(
                "invalid_format", "Give a customer object or a saved customer's id (cus_…)."
            )
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError(
            "invalid_type", "Give a customer object or a saved customer's id (cus_…)."
        )
    return handler(value)


CustomerRef = Annotated[
    CustomerIn | str,
    GetPydanticSchema(
        lambda _source, handler: core_schema.no_info_wrap_validator_function(
            _customer_or_id, handler(CustomerIn)
        ),
        lambda schema, handler: {
            "anyOf": [
                handler(schema),
                {"type": "string", "description": "A saved customer's id (`cus_…`)"},
            ]
        },
    ),
]


class LineItemIn(StrictModel):
    description: str = Field(min_length=1, max_length=500)
    quantity: int = Field(default=1, ge=1, le=1_000_000)
    unit_amount: NonNegativeAmount
    tax_rate: Rate = Field(default=Decimal(0), description='Percent, as a string: "19", "7.5"')


_EXAMPLE: dict[str, Any] = {
    "amount": 1999,
    "currency": "EUR",
    "reference": "order-1042",
    "description": "Two tickets",
    "customer": {"email": "ada@example.com", "name": "Ada Lovelace", "country": "DE"},
    "return_url": "https://shop.example/orders/1042?status={status}",
}


class InvoiceCreate(StrictModel):
    """Give either `amount` or `line_items` (the amount is then computed from them)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    amount: Amount | None = Field(default=None, description="Minor units (cents)")
    line_items: list[LineItemIn] | None = Field(default=None, min_length=1, max_length=100)
    currency: Currency
    reference: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=1000)
    customer: CustomerRef | None = Field(
        default=None,
        description="The payer's details, or a saved customer's id whose details are copied",
    )
    return_url: Url | None = None
    lifetime: int | None = Field(
        default=None,
        ge=MIN_LIFETIME,
        le=MAX_LIFETIME,
        description="Seconds from finalisation until expiry",
    )
    attempts_limit: int | None = Field(default=None, ge=1, le=100)
    metadata: Metadata = Field(default_factory=dict)
    status: Literal["draft"] | None = Field(
        default=None, description='"draft" creates an editable, unpayable invoice'
    )

    @model_validator(mode="after")
    def _amount_or_line_items(self) -> "InvoiceCreate":
        _check_amount_source(self.amount, self.line_items, required=True)
        return self


class InvoiceUpdate(StrictModel):
    """Change a draft (any field), or cancel with `{"status": "cancelled"}`."""

    amount: Amount | None = None
    line_items: list[LineItemIn] | None = Field(default=None, min_length=1, max_length=100)
    currency: Currency | None = None
    reference: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=1000)
    customer: CustomerRef | None = None
    return_url: Url | None = None
    lifetime: int | None = Field(default=None, ge=MIN_LIFETIME, le=MAX_LIFETIME)
    attempts_limit: int | None = Field(default=None, ge=1, le=100)
    metadata: Metadata | None = None
    status: Literal["cancelled"] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "InvoiceUpdate":
        fields = self.model_fields_set
        if "status" in fields and fields - {"status"}:
            raise PydanticCustomError(
                "status_with_other_fields",
                'Cancel with {"status": "cancelled"} alone; change other fields separately.',
            )
        if "status" in fields and self.status is None:
            raise PydanticCustomError("invalid_value", 'The only status to set is "cancelled".')
        for name in ("currency", "lifetime", "attempts_limit", "amount", "line_items"):
            if name in fields and getattr(self, name) is None:
                raise PydanticCustomError("field_not_nullable", f"{name} cannot be null.")
        _check_amount_source(self.amount, self.line_items, required=False)
        return self


def _check_amount_source(
    amount: int | None, lines: list[LineItemIn] | None, required: bool
) -> None:
    if amount is not None and lines is not None:
        raise PydanticCustomError(
            "amount_and_line_items", "Give either amount or line_items, not both."
        )
    if required and amount is None and lines is None:
        raise PydanticCustomError("amount_required", "Give an amount or line_items.")


class LineItem(BaseModel):
    id: str = Field(description="Names the line in cancellations and deliveries (`li_…`)")
    description: str
    quantity: int
    unit_amount: int
    tax_rate: str
    amount_net: int
    amount_tax: int
    amount: int
    quantity_cancelled: int = Field(description="Units cancelled before delivery")
    quantity_delivered: int = Field(description="Units delivered (their amount captured)")
    quantity_refunded: int = Field(description="Units refunded (returned)")


class Customer(BaseModel):
    email: str | None
    name: str | None
    country: str | None


class PaymentError(BaseModel):
    code: str
    message: str


class InvoiceOut(BaseModel):
    """An invoice. Amounts are integers of the currency's minor unit."""

    model_config = ConfigDict(title="Invoice")

    id: str = Field(examples=["inv_01JD3Z7Q8W0000000000000000"])
    object: Literal["invoice"]
    livemode: bool
    status: str = Field(examples=["created"])
    currency: str
    amount: int
    amount_paid: int
    amount_refunded: int
    amount_cancelled: int
    amount_authorized: int = Field(
        description="Authorised by a capture-on-delivery method, not yet delivered or cancelled"
    )
    amount_due: int = Field(description="amount - amount_paid; negative when overpaid")
    overpaid: bool
    commission: int
    payment_currency: str | None
    payment_amount: int | None
    exchange_rate: str | None
    paid_late: bool
    reference: str | None
    description: str | None
    customer: Customer | None
    customer_id: str | None = Field(description="The saved customer (`cus_…`), if any")
    line_items: list[LineItem]
    return_url: str | None
    redirect_url: str = Field(description="Send the payer here: the hosted payment page")
    lifetime: int
    expires_at: datetime | None
    attempts_limit: int
    attempts_count: int
    last_payment_error: PaymentError | None
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime
    finalized_at: datetime | None


def render_line(line: InvoiceLineItem) -> dict[str, Any]:
    return {
        "id": line.id,
        "description": line.description,
        "quantity": line.quantity,
        "unit_amount": line.unit_amount,
        "tax_rate": format(line.tax_rate, "f"),
        "amount_net": line.amount_net,
        "amount_tax": line.amount_tax,
        "amount": line.amount,
        # Columns a Core insert leaves unset read as None until reloaded: count them as 0.
        "quantity_cancelled": line.quantity_cancelled or 0,
        "quantity_delivered": line.quantity_delivered or 0,
        "quantity_refunded": line.quantity_refunded or 0,
    }


def render_invoice(invoice: Invoice, base_url: str, status: str | None = None) -> dict[str, Any]:
    """Render the API document of an invoice (its line items must be loaded)."""
    customer = None
    if invoice.customer_email or invoice.customer_name or invoice.customer_country:
        customer = {
            "email": invoice.customer_email,
            "name": invoice.customer_name,
            "country": invoice.customer_country,
        }
    amount_due = invoice.amount - invoice.amount_paid
    return {
        "id": invoice.id,
        "object": "invoice",
        "livemode": invoice.livemode,
        "status": status or invoice.status,
        "currency": invoice.currency,
        "amount": invoice.amount,
        "amount_paid": invoice.amount_paid,
        "amount_refunded": invoice.amount_refunded,
        "amount_cancelled": invoice.amount_cancelled,
        "amount_authorized": invoice.amount_authorized or 0,
        "amount_due": amount_due,
        "overpaid": amount_due < 0,
        "commission": invoice.commission,
        "payment_currency": invoice.payment_currency,
        "payment_amount": invoice.payment_amount,
        "exchange_rate": None if invoice.exchange_rate is None else str(invoice.exchange_rate),
        "paid_late": invoice.paid_late,
        "reference": invoice.reference,
        "description": invoice.description,
        "customer": customer,
        "customer_id": invoice.customer_id,
        "line_items": [render_line(line) for line in invoice.line_items],
        "return_url": invoice.return_url,
        "redirect_url": f"{base_url}/pay/{invoice.pay_token}",
        "lifetime": invoice.lifetime,
        "expires_at": None if invoice.expires_at is None else isoformat(invoice.expires_at),
        "attempts_limit": invoice.attempts_limit,
        "attempts_count": invoice.attempts_count,
        "last_payment_error": invoice.last_payment_error,
        "metadata": invoice.metadata_,
        "created_at": isoformat(invoice.created_at),
        "updated_at": isoformat(invoice.updated_at),
        "finalized_at": None if invoice.finalized_at is None else isoformat(invoice.finalized_at),
    }
