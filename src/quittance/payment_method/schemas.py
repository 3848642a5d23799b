"""A payment method as given to the API (card details go to the provider, nowhere else)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from quittance.api.schemas import StrictModel
from quittance.clock import isoformat
from quittance.models import PaymentMethod

METHODS = ("card", "bank_transfer", "invoice")


class CardIn(StrictModel):
    number: str = Field(min_length=12, max_length=23, pattern=r"^[0-9 ]+$")
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)
    cvc: str = Field(min_length=3, max_length=4, pattern=r"^[0-9]+$")

    def __repr__(self) -> str:  # never let the number or code reach a log or a traceback
        return f"CardIn(last4={self.number[-4:]!r})"

    __str__ = __repr__


class PaymentMethodCreate(StrictModel):
    """A method to tokenise: a sandbox test card, a bank transfer, or the invoice method."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12,
                                          "exp_year": 2030, "cvc": "123"}},
                {"type": "bank_transfer"},
            ]
        }
    )  # fmt: skip

    type: Literal["card", "bank_transfer", "invoice"]
    card: CardIn | None = None

    @model_validator(mode="after")
    def _card_for_cards(self) -> "PaymentMethodCreate":
        if self.type == "card" and self.card is None:
            raise PydanticCustomError("card_required", "A card method needs card details.")
        if self.type != "card" and self.card is not None:
            raise PydanticCustomError("card_not_allowed", "Only card methods take card details.")
        return self


class CardOut(BaseModel):
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


class PaymentMethodOut(BaseModel):
    model_config = ConfigDict(title="PaymentMethod")

    id: str
    object: Literal["payment_method"]
    livemode: bool
    type: str
    customer: str | None
    card: CardOut | None
    created_at: str


def render_payment_method(method: PaymentMethod) -> dict[str, Any]:
    card = None
    if method.type == "card":
        card = {"brand": method.brand, "last4": method.last4, "exp_month": method.exp_month,
                "exp_year": method.exp_year}  # fmt: skip
    return {
        "id": method.id,
        "object": "payment_method",
        "livemode": method.livemode,
        "type": method.type,
        "customer": method.customer_id,
        "card": card,
        "created_at": isoformat(method.created_at),
    }
