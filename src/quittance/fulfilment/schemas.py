"""Cancellation and delivery requests, and their documents."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from quittance.api.schemas import Amount, StrictModel
from quittance.clock import isoformat
from quittance.models import Cancellation, Delivery


class LineItemTake(StrictModel):
    """Units of one line item: its `id` from the invoice's `line_items`, and how many."""

    line_item: str = Field(min_length=1, max_length=48, description="The line item's `id`")
    quantity: int = Field(ge=1, le=1_000_000)


class _Fulfilment(StrictModel):
    amount: Amount | None = Field(default=None, description="Minor units")
    line_items: list[LineItemTake] | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _amount_or_line_items(self) -> "_Fulfilment":
        if self.amount is not None and self.line_items is not None:
            raise PydanticCustomError(
                "amount_and_line_items", "Give either amount or line_items, not both."
            )
        return self

    def wanted(self) -> list[tuple[str, int]] | None:
        if self.line_items is None:
            return None
        return [(item.line_item, item.quantity) for item in self.line_items]


class CancellationCreate(_Fulfilment):
    """Cancel everything still open (no body), an amount, or units of line items."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {},
                {"amount": 500, "reason": "Out of stock"},
                {"line_items": [{"line_item": "li_01JD3Z7Q8W0000000000000000_0", "quantity": 1}]},
            ]
        }
    )

    reason: str | None = Field(default=None, max_length=500, description="Why, for the records")


class DeliveryCreate(_Fulfilment):
    """Deliver everything still open (no body), an amount, or units of line items."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {},
                {"line_items": [{"line_item": "li_01JD3Z7Q8W0000000000000000_0", "quantity": 2}]},
            ]
        }
    )


class LineItemTaken(BaseModel):
    line_item: str
    quantity: int
    amount: int


class CancellationOut(BaseModel):
    model_config = ConfigDict(title="Cancellation")

    id: str
    object: Literal["cancellation"]
    livemode: bool
    invoice: str | dict[str, Any]
    payment: str | None
    amount: int
    currency: str
    line_items: list[LineItemTaken]
    reason: str | None
    status: str
    error: dict[str, str] | None
    created_at: str
    updated_at: str


class DeliveryOut(BaseModel):
    model_config = ConfigDict(title="Delivery")

    id: str
    object: Literal["delivery"]
    livemode: bool
    invoice: str | dict[str, Any]
    payment: str | None
    amount: int
    currency: str
    line_items: list[LineItemTaken]
    status: str
    provider_reference: str | None
    error: dict[str, str] | None
    created_at: str
    updated_at: str


def _error(code: str | None, message: str | None) -> dict[str, str] | None:
    return None if not code else {"code": code, "message": message or ""}


def render_cancellation(row: Cancellation) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "cancellation",
        "livemode": row.livemode,
        "invoice": row.invoice_id,
        "payment": row.payment_id,
        "amount": row.amount,
        "currency": row.currency,
        "line_items": list(row.line_items or []),
        "reason": row.reason,
        "status": row.status,
        "error": _error(row.error_code, row.error_message),
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
    }


def render_delivery(row: Delivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "delivery",
        "livemode": row.livemode,
        "invoice": row.invoice_id,
        "payment": row.payment_id,
        "amount": row.amount,
        "currency": row.currency,
        "line_items": list(row.line_items or []),
        "status": row.status,
        "provider_reference": row.provider_reference,
        "error": _error(row.error_code, row.error_message),
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
    }
