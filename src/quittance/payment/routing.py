"""Which methods a merchant accepts, with what limits, through which provider connections."""

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from quittance import clock
from quittance.db.cache import MISSING, MerchantCache
from quittance.domain.errors import QuittanceError
from quittance.domain.ids import new_id
from quittance.models import Invoice, MethodConfig, ProviderConnection

METHODS = ("card", "bank_transfer", "invoice")


class PaymentMethodNotAvailable(QuittanceError):
    status = 422
    code = "payment_method_not_available"
    title = "Payment method not available"


@dataclass(frozen=True, slots=True)
class Route:
    """A connection to try, copied out of the session for use outside a transaction."""

    connection_id: str
    provider: str
    options: dict[str, Any]


def ensure_defaults(session: Session, merchant_id: str, livemode: bool) -> None:
    """Give a test-mode merchant without any set-up the sandbox for every method."""
    if livemode:
        return
    # Any connection or method setting means the merchant has set up (or torn down) routing.
    for model in (ProviderConnection, MethodConfig):
        exists = session.scalar(
            select(model.merchant_id)
            .where(model.merchant_id == merchant_id, model.livemode.is_(False))
            .limit(1)
        )
        if exists is not None:
            return
    now = clock.now()
    connection = ProviderConnection(
        id=new_id("pcn"), merchant_id=merchant_id, livemode=False, provider="sandbox",
        name="Sandbox", options={}, enabled=True, created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(connection)
    for method in METHODS:
        if session.get(MethodConfig, (merchant_id, False, method)) is None:
            session.add(
                MethodConfig(
                    merchant_id=merchant_id, livemode=False, method=method, enabled=True,
                    min_amount=None, max_amount=None, countries=None, currencies=None,
                    connection_ids=[connection.id], updated_at=now,
                )
            )  # fmt: skip
    session.flush()


def method_configs(session: Session, merchant_id: str, livemode: bool) -> list[MethodConfig]:
    return list(
        session.scalars(
            select(MethodConfig)
            .where(MethodConfig.merchant_id == merchant_id, MethodConfig.livemode == livemode)
            .order_by(MethodConfig.method)
        )
    )


@dataclass(frozen=True, slots=True)
class Unavailable:
    """Why a method cannot pay an invoice: a stable code and a sentence for a person."""

    code: str
    message: str


def unavailability(config: "MethodConfig | MethodRouting | None", invoice: Invoice, amount: int,
                   country: str | None) -> Unavailable | None:  # fmt: skip
    """Say why a method cannot pay this invoice (code and sentence), or None when it can."""
    if config is None or not config.enabled:
        return Unavailable(
            code="method_disabled", message="The merchant does not accept this payment method."
        )
    if config.currencies is not None and invoice.currency not in config.currencies:
        return Unavailable(
            code="currency_not_accepted",
            message=f"This payment method does not take {invoice.currency}.",
        )
    if config.min_amount is not None and amount < config.min_amount:
        return Unavailable(
            code="amount_below_minimum",
            message=f"This payment method takes at least {config.min_amount} (minor units).",
        )
    if config.max_amount is not None and amount > config.max_amount:
        return Unavailable(
            code="amount_above_maximum",
            message=f"This payment method takes at most {config.max_amount} (minor units).",
        )
    if country is not None and config.countries is not None and country not in config.countries:
        return Unavailable(
            code="country_not_accepted",
            message=f"This payment method is not offered in {country}.",
        )
    if not config.connection_ids:
        return Unavailable(
            code="no_provider_connection",
            message="No provider connection is set up for this payment method.",
        )
    return None


def unavailable_reason(config: "MethodConfig | MethodRouting | None", invoice: Invoice,
                       amount: int, country: str | None) -> str | None:  # fmt: skip
    """Say why a method cannot pay this invoice, or None when it can."""
    found = unavailability(config, invoice, amount, country)
    return None if found is None else found.message


def check_method(session: Session, config: MethodConfig | None, invoice: Invoice, amount: int,
                 country: str | None) -> Unavailable | None:  # fmt: skip
    """Like `unavailability`, and also refuse a method none of whose connections is enabled."""
    found = unavailability(config, invoice, amount, country)
    if found is None and config is not None and not routes(session, config):
        found = Unavailable(
            code="no_provider_connection",
            message="No enabled provider connection is set up for this payment method.",
        )
    return found


def routes(session: Session, config: MethodConfig) -> list[Route]:
    """The enabled connections of a method, in the order they are tried."""
    rows = {
        c.id: c
        for c in session.scalars(
            select(ProviderConnection).where(
                ProviderConnection.merchant_id == config.merchant_id,
                ProviderConnection.livemode == config.livemode,
                ProviderConnection.id.in_(config.connection_ids),
                ProviderConnection.enabled.is_(True),
            )
        )
    }
    return [
        Route(rows[cid].id, rows[cid].provider, dict(rows[cid].options))
        for cid in config.connection_ids
        if cid in rows
    ]


@dataclass(frozen=True, slots=True)
class MethodRouting:
    """A method's settings and its enabled routes, copied out of the session (and cached)."""

    enabled: bool
    min_amount: int | None
    max_amount: int | None
    countries: tuple[str, ...] | None
    currencies: tuple[str, ...] | None
    connection_ids: tuple[str, ...]
    routes: tuple[Route, ...]


# Method routings per merchant, mode and method, so the pay path reads no settings rows.
_routing: MerchantCache[MethodRouting] = MerchantCache("routing", MethodConfig, ProviderConnection)


def method_routing(
    session: Session, merchant_id: str, livemode: bool, method: str
) -> MethodRouting | None:
    """A method's settings and enabled routes (None: the method was never configured)."""
    cached = _routing.get(merchant_id, livemode, method)
    if cached is not MISSING:
        return cast(MethodRouting, cached)
    generation = _routing.generation
    config = session.get(MethodConfig, (merchant_id, livemode, method))
    if config is None:
        return None
    value = MethodRouting(
        config.enabled, config.min_amount, config.max_amount,
        None if config.countries is None else tuple(config.countries),
        None if config.currencies is None else tuple(config.currencies),
        tuple(config.connection_ids), tuple(routes(session, config)),
    )  # fmt: skip
    _routing.put(session, merchant_id, livemode, method, value, generation)
    return value
