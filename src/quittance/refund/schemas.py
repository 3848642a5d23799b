"""Refund requests and the refund document."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from quittance.api.schemas import Amount, StrictModel
from quittance.clock import isoformat
from quittance.models import Refund


class RefundLineIn(StrictModel):
    """Units of one invoice line to refund."""

    line_item: str = Field(min_length=1, max_length=48, description="The line item's id (`li_…`)")
    quantity: int = Field(ge=1, le=1_000_000, description="Units to refund")


class RefundCreate(StrictModel):
    """Refund an amount, some line items, or without either everything still refundable."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"amount": 500, "reason": "Returned item"},
                {"line_items": [{"line_item": "li_01JD3Z0000000000000000000000_0", "quantity": 1}]},
                {"refund_commission": True},
                {},
            ]
        }
    )

    amount: Amount | None = Field(
        default=None, description="Minor units to refund; default: everything refundable"
    )
    line_items: list[RefundLineIn] | None = Field(
        default=None, min_length=1, max_length=100,
        description="Refund these units instead of an amount; the amount is their share",
    )  # fmt: skip
    refund_commission: bool | None = Field(
        default=None,
        description="Give the commission back in proportion; default: the payment option",
    )
    reason: str | None = Field(default=None, max_length=500, description="Why, for the records")

    @field_validator("line_items")
    @classmethod
    def _each_line_once(cls, items: list[RefundLineIn] | None) -> list[RefundLineIn] | None:
        seen: set[str] = set()
        for item in items or []:
            if item.line_item in seen:
                raise PydanticCustomError(
                    "duplicate_items", "{value} is listed more than once.",
                    {"value": item.line_item},
                )  # fmt: skip
            seen.add(item.line_item)
        return items

    @model_validator(mode="after")
    def _amount_or_line_items(self) -> "RefundCreate":
        if self.amount is not None and self.line_items is not None:
            raise PydanticCustomError(
                "amount_and_line_items", "Give either amount or line_items, not both."
            )
        return self


class RefundLine(BaseModel):
    line_item: str
    quantity: int
    amount: int


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
    commission_returned: int
    line_items: list[RefundLine] | None
    payer_currency: str | None
    payer_amount: int | None
    reason: str | None
    provider: str
    provider_reference: str | None
    error: dict[str, str] | None
    created_at: str
    updated_at: str


class RefundCreated(RefundOut):
    """The first refund of the request, the invoice, and every refund the request made."""

    model_config = ConfigDict(title="RefundCreated")

    refunds: list[RefundOut] = Field(
        description="One refund per payment the money goes back through, this one first"
    )


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
        "commission_returned": refund.commission_returned,
        "line_items": refund.line_items,
        "payer_currency": refund.payer_currency,
        "payer_amount": refund.payer_amount,
        "reason": refund.reason,
        "provider": refund.provider,
        "provider_reference": refund.provider_reference,
        "error": error,
        "created_at": isoformat(refund.created_at),
        "updated_at": isoformat(refund.updated_at),
    }
