"""Customer request bodies, the customer document, and saved payment method documents."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quittance.api.schemas import Country, Email, Metadata, StrictModel
from quittance.clock import isoformat
from quittance.models import Customer, PaymentMethod
from quittance.payment_method.schemas import (
    PaymentMethodCreate,
    PaymentMethodOut,
    render_payment_method,
)

_EXAMPLE: dict[str, Any] = {
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "country": "DE",
    "metadata": {"crm_id": "4711"},
}


class CustomerCreate(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    email: Email | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    country: Country | None = Field(default=None, description="ISO 3166-1 alpha-2")
    metadata: Metadata = Field(default_factory=dict)


class CustomerUpdate(StrictModel):
    """Change any field; `null` clears it. `default_payment_method` must be attached."""

    email: Email | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    country: Country | None = None
    metadata: Metadata | None = None
    default_payment_method: str | None = Field(
        default=None, max_length=40, description="The id of one of the customer's methods"
    )


class PaymentMethodAttach(PaymentMethodCreate):
    """A method to tokenise and save on the customer; `default` makes it the default one."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12,
                                          "exp_year": 2030, "cvc": "123"}, "default": True},
                {"type": "bank_transfer"},
            ]
        }
    )  # fmt: skip

    default: bool = Field(
        default=False, description="Make it the default method (a customer without one: always)"
    )


class CustomerOut(BaseModel):
    """A customer: a payer the merchant knows, with saved payment methods."""

    model_config = ConfigDict(title="Customer")

    id: str = Field(examples=["cus_01JD3Z7Q8W0000000000000000"])
    object: Literal["customer"]
    livemode: bool
    email: str | None
    name: str | None
    country: str | None
    default_payment_method: str | None = Field(
        description="Id of the method `POST /v1/invoices/{id}/pay` uses without one"
    )
    metadata: dict[str, str]
    created_at: str
    updated_at: str


class CustomerPaymentMethodOut(PaymentMethodOut):
    """A payment method saved on a customer; only brand, last 4 and expiry of a card."""

    model_config = ConfigDict(title="CustomerPaymentMethod")

    detached_at: str | None = Field(description="When it was detached; it can no longer pay")


def render_customer(customer: Customer) -> dict[str, Any]:
    """Render the API document of a customer."""
    return {
        "id": customer.id,
        "object": "customer",
        "livemode": customer.livemode,
        "email": customer.email,
        "name": customer.name,
        "country": customer.country,
        "default_payment_method": customer.default_payment_method_id,
        "metadata": customer.metadata_,
        "created_at": isoformat(customer.created_at),
        "updated_at": isoformat(customer.updated_at),
    }


def render_saved_method(method: PaymentMethod) -> dict[str, Any]:
    """Render a customer's payment method (the payment method document and `detached_at`)."""
    detached_at = None if method.detached_at is None else isoformat(method.detached_at)
    return {**render_payment_method(method), "detached_at": detached_at}
