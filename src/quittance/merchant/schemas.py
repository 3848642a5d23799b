"""Payment options (DESIGN §8): the document and the update body."""

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from quittance.api.schemas import StrictModel, Url
from quittance.clock import isoformat
from quittance.invoice.schemas import MAX_LIFETIME, MIN_LIFETIME
from quittance.models import PaymentOptions

DEFAULTS: dict[str, Any] = {
    "invoice_lifetime": 24 * 3600,
    "attempts_limit": 5,
    "include_commission": False,
    "refund_commission": False,
    "allow_public_creation": False,
    "public_fee_details": False,
    "public_zero_fee_badge": False,
    "expose_internal_callback_data": False,
    "descriptor_template": "{merchant}*{reference}",
    "return_url": None,
    "default_locale": "en",
}
LOCALES = ("en", "de")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
PLACEHOLDERS = frozenset({"merchant", "reference", "invoice_id"})


class PaymentOptionsUpdate(StrictModel):
    """Change any of the merchant's payment options; omitted ones stay as they are."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"invoice_lifetime": 3600, "attempts_limit": 3}]}
    )

    invoice_lifetime: int | None = Field(default=None, ge=MIN_LIFETIME, le=MAX_LIFETIME)
    attempts_limit: int | None = Field(default=None, ge=1, le=100)
    include_commission: bool | None = None
    refund_commission: bool | None = None
    allow_public_creation: bool | None = None
    public_fee_details: bool | None = None
    public_zero_fee_badge: bool | None = None
    expose_internal_callback_data: bool | None = None
    descriptor_template: str | None = Field(default=None, min_length=1, max_length=200)
    return_url: Url | None = None
    default_locale: Literal["en", "de"] | None = None

    @field_validator("descriptor_template")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        if value is None:
            return value
        unknown = set(_PLACEHOLDER.findall(value)) - PLACEHOLDERS
        if unknown:
            raise PydanticCustomError(
                "invalid_placeholder",
                "Unknown placeholder {names}; the template may use merchant, reference and "
                "invoice_id, each in braces.",
                {"names": ", ".join(sorted(unknown))},
            )
        return value

    @model_validator(mode="after")
    def _no_null_settings(self) -> "PaymentOptionsUpdate":
        for name in self.model_fields_set - {"return_url"}:
            if getattr(self, name) is None:
                raise PydanticCustomError("field_not_nullable", f"{name} cannot be null.")
        return self


class PaymentOptionsOut(BaseModel):
    model_config = ConfigDict(title="PaymentOptions")

    object: Literal["payment_options"]
    livemode: bool
    invoice_lifetime: int = Field(description="Seconds; expires_at = finalized_at + lifetime")
    attempts_limit: int
    include_commission: bool = Field(
        description="The payer pays the commission on top of the invoice's amount"
    )
    refund_commission: bool = Field(
        description="Refunds give the commission back by default (a refund may override)"
    )
    allow_public_creation: bool
    public_fee_details: bool
    public_zero_fee_badge: bool
    expose_internal_callback_data: bool
    descriptor_template: str
    return_url: str | None
    default_locale: str
    updated_at: str


def render_options(options: PaymentOptions) -> dict[str, Any]:
    document: dict[str, Any] = {"object": "payment_options", "livemode": options.livemode}
    for name in DEFAULTS:
        document[name] = getattr(options, name)
    document["updated_at"] = isoformat(options.updated_at)
    return document
