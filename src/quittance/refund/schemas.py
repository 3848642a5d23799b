"""Refund requests and the refund document."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quittance.api.schemas import Amount, StrictModel
from quittance.clock import isoformat
from quittance.models import Refund


class RefundCreate(StrictModel):
    """Refund an amount, or without one everything still refundable."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"amount": 500, "reason": "Returned item"}, {}]}
    )

    amount: Amount | None = Field(
        default=None, description="Minor units to refund; default: everything refundable"
    )
    reason: str | None = Field(default=None, max_length=500, description="Why, for the records")


class RefundOut(BaseModel):
    model_config = ConfigDict(title="Refund")

    id: str
    object: Literal["refund"]
    livemode: bool
    invoice: str | dict[str, Any]
    payment: str
    amount: int
    currency: str
    status: str
    reason: str | None
    provider: str
    provider_reference: str | None
    error: dict[str, str] | None
    created_at: str
    updated_at: str


def render_refund(refund: Refund) -> dict[str, Any]:
    error = None
    if refund.error_code:
        error = {"code": refund.error_code, "message": refund.error_message or ""}
    return {
        "id": refund.id,
        "object": "refund",
        "livemode": refund.livemode,
        "invoice": refund.invoice_id,
        "payment": refund.payment_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "status": refund.status,
        "reason": refund.reason,
        "provider": refund.provider,
        "provider_reference": refund.provider_reference,
        "error": error,
        "created_at": isoformat(refund.created_at),
        "updated_at": isoformat(refund.updated_at),
    }
