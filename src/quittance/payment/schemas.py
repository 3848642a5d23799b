"""Pay requests and the payment document."""

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quittance.api.schemas import Currency, StrictModel
from quittance.clock import isoformat
from quittance.domain.exchange import ExchangeRate, conversion_of, convert
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
                {"payment_method": {"type": "bank_transfer"}, "payment_currency": "USD"},
                {},
            ]
        }
    )  # fmt: skip

    payment_method: str | PaymentMethodCreate | None = Field(
        default=None, description="A saved method's id, or a method to tokenise"
    )
    payment_currency: Currency | None = Field(
        default=None,
        description="The payer pays in this currency, converted at the merchant's newest rate "
        "from the invoice's currency (422 exchange_rate_not_found without one)",
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
    commission: int = Field(description="Commission recognised on the money received so far")
    payer_currency: str = Field(description="The currency the payer pays in")
    payer_amount: int = Field(description="What the provider was asked for, in payer_currency")
    payer_received: int = Field(description="What the provider has received, in payer_currency")
    exchange_rate: str | None = Field(description="payer_currency units per invoice unit")
    exchange: dict[str, Any] | None = Field(
        description="For a converted payment: the rate's pair, the exact value of the money "
        "received so far and the rounding of its conversion"
    )
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
        "commission": payment.commission or 0,
        "payer_currency": payment.payer_currency or payment.currency,
        "payer_amount": payment.amount if payment.payer_amount is None else payment.payer_amount,
        "payer_received": (
            payment.amount_received if payment.payer_amount is None else payment.payer_received
        ),
        "exchange_rate": _rate_text(payment.exchange_rate),
        "exchange": _exchange(payment),
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


def _rate_text(value: Decimal | None) -> str | None:
    """Render a rate without exponent or trailing zeros (`"1.0842"`)."""
    return None if value is None else f"{value.normalize():f}"


def _exchange(payment: Payment) -> dict[str, Any] | None:
    """The conversion of the money received so far: what it was worth exactly, and rounding.

    The invoice-currency value is the money received for the invoice plus, when the payer paid
    it on top, the commission (`payer_amount` above what the amount due converts to).
    """
    if payment.exchange_rate is None or payment.payer_currency in (None, payment.currency):
        return None
    assert payment.payer_currency is not None
    rate = ExchangeRate(payment.currency, payment.payer_currency, payment.exchange_rate)
    value = payment.amount_received
    plain = convert(payment.amount, payment.currency, payment.payer_currency, rate).amount_to
    if payment.payer_amount is not None and payment.payer_amount > plain:
        value += payment.commission
    conversion = conversion_of(value, payment.currency, payment.payer_received,
                               payment.payer_currency, rate)  # fmt: skip
    return {
        "base": rate.base,
        "quote": rate.quote,
        "rate": rate.rate_text,
        "amount": value,
        "exact": f"{conversion.exact:f}",
        "rounding": f"{conversion.rounding:f}",
    }
