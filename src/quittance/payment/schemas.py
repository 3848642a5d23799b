"""Pay requests and the payment document."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quittance.api.schemas import StrictModel
from quittance.clock import isoformat
from quittance.models import Payment
from quittance.payment_method.schemas import PaymentMethodCreate


class PayRequest(StrictModel):
    """Pay with a saved method (`pm_…`), an inline one, or, without either, the customer's
    default method."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"payment_method": "pm_01JD3Z7Q8W0000000000000000"},
                {"payment_method": {"type": "card", "card": {
                    "number": "4242424242424242", "exp_month": 12, "exp_year": 2030,
                    "cvc": "123"}}},
                {},
            ]
        }
    )  # fmt: skip

    payment_method: str | PaymentMethodCreate | None = Field(
        default=None, description="A saved method's id, or a method to tokenise"
    )


class PaymentOut(BaseModel):
    model_config = ConfigDict(title="Payment")

    id: str
    object: Literal["payment"]
    livemode: bool
    invoice: str
    attempt: int
    status: str
    method: str
    payment_method: str | None
    amount: int
    currency: str
    amount_received: int
    amount_authorized: int
    captured: bool
    provider: str | None
    provider_reference: str | None
    routing: list[dict[str, Any]]
    error: dict[str, str] | None
    next_action: dict[str, Any] | None
    created_at: str
    updated_at: str


def render_payment(payment: Payment, *, expose_provider_response: bool = False) -> dict[str, Any]:
    error = None
    if payment.error_code:
        error = {"code": payment.error_code, "message": payment.error_message or ""}
    document: dict[str, Any] = {
        "id": payment.id,
        "object": "payment",
        "livemode": payment.livemode,
        "invoice": payment.invoice_id,
        "attempt": payment.attempt,
        "status": payment.status,
        "method": payment.method,
        "payment_method": payment.payment_method_id,
        "amount": payment.amount,
        "currency": payment.currency,
        "amount_received": payment.amount_received,
        "amount_authorized": payment.amount_authorized,
        "captured": payment.amount_received > 0 and payment.amount_authorized == 0,
        "provider": payment.provider,
        "provider_reference": payment.provider_reference,
        "routing": payment.routing,
        "error": error,
        "next_action": payment.next_action,
        "created_at": isoformat(payment.created_at),
        "updated_at": isoformat(payment.updated_at),
    }
    if expose_provider_response:
        document["provider_response"] = payment.provider_response
    return document
