"""Provider connections, method settings and an invoice's pay options: bodies and documents."""

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from quittance.api.schemas import Amount, Currency, NonNegativeAmount, StrictModel
from quittance.clock import isoformat
from quittance.models import MethodConfig, ProviderConnection

# ISO 3166-1 alpha-2, the officially assigned codes (249). A CDN's placeholders such as `XX`
# (unknown) or `T1` (Tor) are not countries and are never taken for one.
_ISO_3166 = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
"""
ISO_COUNTRIES = frozenset(_ISO_3166.split())
MAX_ROUTE = 5  # connections tried within one attempt


def country_code(value: str) -> str | None:
    """Return the ISO 3166-1 alpha-2 code in `value` (any case), or None if it is none."""
    upper = value.strip().upper()
    return upper if upper in ISO_COUNTRIES else None


def _iso_country(value: str) -> str:
    code = value.upper()
    if code not in ISO_COUNTRIES:
        raise PydanticCustomError(
            "invalid_country",
            "Give countries as ISO 3166-1 alpha-2 codes such as DE; '{value}' is not one.",
            {"value": value},
        )
    return code


def _no_duplicates(values: list[str]) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise PydanticCustomError(
                "duplicate_items", "{value} is listed more than once.", {"value": value}
            )
        seen.add(value)
    return values


IsoCountry = Annotated[str, AfterValidator(_iso_country)]
ConnectionId = Annotated[str, Field(pattern=r"^pcn_[0-9A-Z]{26}$")]
Countries = Annotated[
    list[IsoCountry],
    Field(min_length=1, max_length=len(ISO_COUNTRIES)),
    AfterValidator(_no_duplicates),
]
Currencies = Annotated[
    list[Currency], Field(min_length=1, max_length=200), AfterValidator(_no_duplicates)
]
Route = Annotated[list[ConnectionId], Field(max_length=MAX_ROUTE), AfterValidator(_no_duplicates)]


class SandboxOptions(StrictModel):
    """How the sandbox connection behaves; every option is optional."""

    fail: Literal["error", "timeout"] | None = Field(
        default=None, description="Every call through the connection fails this way"
    )
    delay_ms: int | None = Field(
        default=None, ge=0, le=60_000, description="Answer after this many milliseconds"
    )
    settle_after_ms: int | None = Field(
        default=None, ge=0, le=86_400_000,
        description="When pending test cards settle (default 2000)",
    )  # fmt: skip

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ProviderConnectionCreate(StrictModel):
    """A connection to a provider account; only the test-mode `sandbox` exists so far."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"provider": "sandbox", "name": "Flaky acquirer",
                          "options": {"fail": "timeout"}}]
        }
    )  # fmt: skip

    provider: Literal["sandbox"]
    name: str = Field(min_length=1, max_length=100)
    options: SandboxOptions = Field(default_factory=SandboxOptions)
    enabled: bool = True


class ProviderConnectionUpdate(StrictModel):
    """Rename, re-configure (`options` replaces the whole object) or pause a connection."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    options: SandboxOptions | None = None
    enabled: bool | None = Field(
        default=None, description="false skips the connection in every route"
    )

    @model_validator(mode="after")
    def _no_nulls(self) -> "ProviderConnectionUpdate":
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise PydanticCustomError("field_not_nullable", f"{name} cannot be null.")
        return self


class MethodConfigUpdate(StrictModel):
    """Change how a method is accepted; omitted fields stay, `null` limits mean no limit."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"enabled": True, "min_amount": 100, "max_amount": 500000,
                          "countries": ["DE", "AT"], "currencies": ["EUR"],
                          "connections": ["pcn_01JD3Z7Q8W0000000000000000"]}]
        }
    )  # fmt: skip

    enabled: bool | None = None
    min_amount: NonNegativeAmount | None = Field(default=None, description="Minor units")
    max_amount: Amount | None = Field(default=None, description="Minor units")
    countries: Countries | None = Field(
        default=None, description="ISO 3166-1 alpha-2 codes; null: every country"
    )
    currencies: Currencies | None = Field(
        default=None, description="ISO 4217 codes; null: every currency"
    )
    connections: Route | None = Field(
        default=None, description="Provider connection ids, in the order they are tried"
    )

    @model_validator(mode="after")
    def _consistent(self) -> "MethodConfigUpdate":
        for name in ("enabled", "connections"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise PydanticCustomError("field_not_nullable", f"{name} cannot be null.")
        return self


class ProviderConnectionOut(BaseModel):
    model_config = ConfigDict(title="ProviderConnection")

    id: str
    object: Literal["provider_connection"]
    livemode: bool
    provider: str
    name: str
    options: dict[str, Any]
    enabled: bool
    methods: list[str] = Field(description="The methods that route through this connection")
    created_at: str
    updated_at: str


class MethodConfigOut(BaseModel):
    model_config = ConfigDict(title="MethodConfig")

    object: Literal["method_config"]
    method: str
    livemode: bool
    enabled: bool
    min_amount: int | None
    max_amount: int | None
    countries: list[str] | None
    currencies: list[str] | None
    connections: list[str]
    updated_at: str | None


class Fee(BaseModel):
    amount: int
    currency: str
    paid_by: Literal["payer", "merchant"] = Field(
        description="payer: on top of the amount (include_commission); merchant: from proceeds"
    )


class Total(BaseModel):
    amount: int
    currency: str


class MethodOption(BaseModel):
    method: str
    available: bool
    reason: str | None = Field(default=None, description="Only when not available: a code")
    message: str | None = Field(default=None, description="Only when not available")
    min_amount: int | None
    max_amount: int | None
    fee: Fee | None = Field(
        default=None, description="Only with public_fee_details: the method's commission"
    )
    zero_fee: bool | None = Field(
        default=None, description="Only with public_zero_fee_badge: the commission is 0"
    )
    total: Total | None = Field(
        default=None, description="Only with include_commission: the amount due plus the fee"
    )


class InvoicePaymentOptionsOut(BaseModel):
    model_config = ConfigDict(title="InvoicePaymentOptions")

    object: Literal["payment_options"]
    invoice: str
    livemode: bool
    payable: bool
    currency: str
    amount_due: int
    country: str | None
    country_source: Literal["query", "customer", "header"] | None
    methods: list[MethodOption]
    saved_methods: list[dict[str, Any]]


def render_connection(connection: ProviderConnection, methods: list[str]) -> dict[str, Any]:
    return {
        "id": connection.id,
        "object": "provider_connection",
        "livemode": connection.livemode,
        "provider": connection.provider,
        "name": connection.name,
        "options": connection.options,
        "enabled": connection.enabled,
        "methods": methods,
        "created_at": isoformat(connection.created_at),
        "updated_at": isoformat(connection.updated_at),
    }


def render_method(method: str, livemode: bool, config: MethodConfig | None) -> dict[str, Any]:
    """Render a method's settings; a method never configured is shown disabled."""
    if config is None:
        return {"object": "method_config", "method": method, "livemode": livemode,
                "enabled": False, "min_amount": None, "max_amount": None, "countries": None,
                "currencies": None, "connections": [], "updated_at": None}  # fmt: skip
    return {
        "object": "method_config",
        "method": method,
        "livemode": livemode,
        "enabled": config.enabled,
        "min_amount": config.min_amount,
        "max_amount": config.max_amount,
        "countries": config.countries,
        "currencies": config.currencies,
        "connections": list(config.connection_ids),
        "updated_at": isoformat(config.updated_at),
    }
