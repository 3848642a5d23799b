"""Provider connections and method settings per merchant and mode, and an invoice's pay options.

Every change to a merchant's routing first locks the merchant's payment options row of that
mode, so two changes (say, deleting a connection while a method is pointed at it) never
interleave, on PostgreSQL as on SQLite.
"""

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from quittance import clock
from quittance.auth.dependencies import Caller
from quittance.db.pagination import keyset_page
from quittance.domain.errors import Conflict, NotFound, ValidationFailed
from quittance.domain.fees import commission
from quittance.domain.ids import new_id
from quittance.domain.invoice import PAYABLE
from quittance.domain.money import MAX_AMOUNT
from quittance.models import (
    Customer,
    Invoice,
    MethodConfig,
    PaymentMethod,
    PaymentOptions,
    ProviderConnection,
)
from quittance.payment.config_schemas import (
    MethodConfigUpdate,
    ProviderConnectionCreate,
    ProviderConnectionUpdate,
    country_code,
)
from quittance.payment.routing import METHODS, Unavailable, check_method, ensure_defaults
from quittance.payment_method.schemas import render_payment_method
from quittance.pricing.repository import fee_schedule
from quittance.providers.registry import ProviderNotAvailable

MAX_CONNECTIONS = 50  # per merchant and mode
CountrySource = Literal["query", "customer", "header"]


class ProviderConnectionNotFound(NotFound):
    code = "provider_connection_not_found"


class ProviderConnectionInUse(Conflict):
    code = "provider_connection_in_use"
    title = "The provider connection is in use"


class ProviderConnectionLimitReached(Conflict):
    code = "provider_connection_limit_reached"
    title = "Too many provider connections"


class MethodNotFound(NotFound):
    code = "method_not_found"


# -- set-up ---------------------------------------------------------------------------------


def _lock_settings(session: Session, caller: Caller) -> None:
    """Serialise routing changes of one merchant and mode (see the module docstring)."""
    session.get(PaymentOptions, (caller.merchant_id, caller.livemode), with_for_update=True)


def _configs(session: Session, caller: Caller) -> dict[str, MethodConfig]:
    rows = session.scalars(
        select(MethodConfig).where(
            MethodConfig.merchant_id == caller.merchant_id,
            MethodConfig.livemode == caller.livemode,
        )
    )
    return {row.method: row for row in rows}


def needs_set_up(session: Session, caller: Caller) -> bool:
    """Whether a test-mode merchant has no method settings yet (the defaults are missing)."""
    return not caller.livemode and not _configs(session, caller)


def set_up(session: Session, caller: Caller) -> None:
    """Give a test-mode merchant that has no method settings the sandbox defaults."""
    if needs_set_up(session, caller):
        ensure_defaults(session, caller.merchant_id, caller.livemode)


# -- provider connections -------------------------------------------------------------------


def connections(
    session: Session, caller: Caller, *, limit: int, starting_after: str | None
) -> tuple[list[ProviderConnection], bool]:
    """One page of the merchant's connections in this mode, newest first."""
    query = select(ProviderConnection).where(
        ProviderConnection.merchant_id == caller.merchant_id,
        ProviderConnection.livemode == caller.livemode,
    )
    return keyset_page(
        session, query, ProviderConnection.id, limit=limit, starting_after=starting_after
    )


def get_connection(session: Session, caller: Caller, connection_id: str) -> ProviderConnection:
    connection = session.scalars(
        select(ProviderConnection).where(
            ProviderConnection.id == connection_id,
            ProviderConnection.merchant_id == caller.merchant_id,
            ProviderConnection.livemode == caller.livemode,
        )
    ).first()
    if connection is None:
        raise ProviderConnectionNotFound(f"No provider connection {connection_id!r} exists.")
    return connection


def routed_methods(session: Session, caller: Caller) -> dict[str, list[str]]:
    """Map each connection id to the methods that route through it, in method order."""
    configs = _configs(session, caller)
    used: dict[str, list[str]] = {}
    for method in METHODS:
        config = configs.get(method)
        for connection_id in config.connection_ids if config is not None else ():
            used.setdefault(connection_id, []).append(method)
    return used


def create_connection(
    session: Session, caller: Caller, data: ProviderConnectionCreate
) -> ProviderConnection:
    """Add a connection; methods use it once their `connections` name it."""
    if caller.livemode and data.provider == "sandbox":
        raise ProviderNotAvailable(
            "The sandbox provider takes test-mode payments only; use a test key.",
            provider=data.provider,
        )
    _lock_settings(session, caller)
    set_up(session, caller)
    count = len(
        session.scalars(
            select(ProviderConnection.id).where(
                ProviderConnection.merchant_id == caller.merchant_id,
                ProviderConnection.livemode == caller.livemode,
            )
        ).all()
    )
    if count >= MAX_CONNECTIONS:
        raise ProviderConnectionLimitReached(
            f"A merchant may have at most {MAX_CONNECTIONS} provider connections in each mode."
        )
    now = clock.now()
    connection = ProviderConnection(
        id=new_id("pcn"), merchant_id=caller.merchant_id, livemode=caller.livemode,
        provider=data.provider, name=data.name, options=data.options.stored(),
        enabled=data.enabled, created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(connection)
    session.flush()
    return connection


def update_connection(
    session: Session, caller: Caller, connection_id: str, data: ProviderConnectionUpdate
) -> ProviderConnection:
    """Rename, re-configure or pause a connection; routes keep naming it."""
    _lock_settings(session, caller)
    set_up(session, caller)
    connection = get_connection(session, caller, connection_id)
    fields = data.model_fields_set
    if "name" in fields and data.name is not None:
        connection.name = data.name
    if "options" in fields and data.options is not None:
        connection.options = data.options.stored()
    if "enabled" in fields and data.enabled is not None:
        connection.enabled = data.enabled
    connection.updated_at = clock.now()
    return connection


def delete_connection(session: Session, caller: Caller, connection_id: str) -> None:
    """Delete a connection that no method routes through (409 otherwise)."""
    _lock_settings(session, caller)
    set_up(session, caller)
    connection = get_connection(session, caller, connection_id)
    methods = routed_methods(session, caller).get(connection.id, [])
    if methods:
        raise ProviderConnectionInUse(
            f"Methods route through this connection ({', '.join(methods)}); remove it from "
            "their connections first (PATCH /v1/settings/methods/{method}).",
            methods=methods,
        )
    session.delete(connection)
    session.flush()


# -- methods --------------------------------------------------------------------------------


def check_method_name(method: str) -> None:
    if method not in METHODS:
        raise MethodNotFound(
            f"No payment method {method!r}; the methods are {', '.join(METHODS)}.",
            methods=list(METHODS),
        )


def method_settings(session: Session, caller: Caller) -> list[tuple[str, MethodConfig | None]]:
    """Every method with its settings (None: never configured, so not accepted)."""
    configs = _configs(session, caller)
    return [(method, configs.get(method)) for method in METHODS]


def update_method(
    session: Session, caller: Caller, method: str, data: MethodConfigUpdate
) -> MethodConfig:
    """Change a method's limits, countries, currencies or route; validate the result whole."""
    check_method_name(method)
    _lock_settings(session, caller)
    set_up(session, caller)
    fields = data.model_fields_set
    if data.connections is not None:
        _check_route(session, caller, data.connections)
    config = session.get(MethodConfig, (caller.merchant_id, caller.livemode, method))
    now = clock.now()
    if config is None:  # a mode never set up (live): the method starts off, without a route
        config = MethodConfig(
            merchant_id=caller.merchant_id, livemode=caller.livemode, method=method,
            enabled=False, min_amount=None, max_amount=None, countries=None, currencies=None,
            connection_ids=[], updated_at=now,
        )  # fmt: skip
        session.add(config)
    min_amount = data.min_amount if "min_amount" in fields else config.min_amount
    max_amount = data.max_amount if "max_amount" in fields else config.max_amount
    if min_amount is not None and max_amount is not None and min_amount > max_amount:
        field = "min_amount" if "min_amount" in fields else "max_amount"
        message = f"min_amount ({min_amount}) is above max_amount ({max_amount})."
        raise ValidationFailed(
            message, code="min_above_max",
            errors=[{"field": field, "code": "min_above_max", "message": message}],
        )  # fmt: skip
    if "enabled" in fields and data.enabled is not None:
        config.enabled = data.enabled
    config.min_amount, config.max_amount = min_amount, max_amount
    if "countries" in fields:
        config.countries = data.countries
    if "currencies" in fields:
        config.currencies = data.currencies
    if data.connections is not None:
        config.connection_ids = list(data.connections)
    config.updated_at = now
    session.flush()
    return config


def _check_route(session: Session, caller: Caller, route: list[str]) -> None:
    known = set(
        session.scalars(
            select(ProviderConnection.id).where(
                ProviderConnection.merchant_id == caller.merchant_id,
                ProviderConnection.livemode == caller.livemode,
                ProviderConnection.id.in_(route),
            )
        )
    )
    code = "unknown_provider_connection"
    errors = [
        {"field": f"connections.{index}", "code": code,
         "message": f"No provider connection {connection_id!r} exists in this mode."}
        for index, connection_id in enumerate(route)
        if connection_id not in known
    ]  # fmt: skip
    if errors:
        raise ValidationFailed(errors[0]["message"], code=code, errors=errors)


# -- an invoice's pay options ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PayerCountry:
    code: str | None
    source: CountrySource | None


def payer_country(
    session: Session, invoice: Invoice, query: str | None, header: str | None
) -> PayerCountry:
    """The payer's country: the query, else the customer's, else the CDN header's."""
    if query is not None:
        code = country_code(query)
        if code is None or len(query) != 2:
            message = "Give the country as an ISO 3166-1 alpha-2 code such as DE."
            raise ValidationFailed(
                message,
                code="invalid_country",
                errors=[{"field": "country", "code": "invalid_country", "message": message}],
            )
        return PayerCountry(code, "query")
    customer_country = invoice.customer_country
    if customer_country is None and invoice.customer_id is not None:
        customer = session.get(Customer, invoice.customer_id)
        customer_country = customer.country if customer is not None else None
    if customer_country is not None:
        return PayerCountry(customer_country.upper(), "customer")
    code = country_code(header) if header is not None else None
    if code is not None:
        return PayerCountry(code, "header")
    return PayerCountry(None, None)


def method_fee(session: Session, invoice: Invoice, method: str, due: int) -> int:
    """The commission `method` charges on the amount due, in the invoice's minor units.

    It comes from the merchant's fee schedule of that method and currency (none: 0), rounded
    once, half up (`domain.fees`). Who pays it is the payment options' `include_commission`.
    """
    schedule = fee_schedule(session, invoice.merchant_id, invoice.livemode, method,
                            invoice.currency)  # fmt: skip
    if schedule is None or due <= 0:
        return 0
    return commission(schedule, min(due, MAX_AMOUNT))


def pay_options(
    session: Session, caller: Caller, invoice: Invoice, country: PayerCountry
) -> dict[str, Any]:
    """The methods the payer may use for this invoice, and the customer's saved methods."""
    options = session.get(PaymentOptions, (caller.merchant_id, caller.livemode))
    assert options is not None  # created with the merchant
    payable = invoice.status in PAYABLE
    due = invoice.amount - invoice.amount_paid
    blocked = None
    if not payable:
        blocked = Unavailable(
            code="invoice_not_payable",
            message=f"An invoice that is {invoice.status} cannot be paid.",
        )
    available: dict[str, bool] = {}
    methods = []
    for method, config in method_settings(session, caller):
        found = blocked or check_method(session, config, invoice, due, country.code)
        available[method] = found is None
        entry: dict[str, Any] = {"method": method, "available": found is None}
        if found is not None:
            entry.update(reason=found.code, message=found.message)
        entry["min_amount"] = config.min_amount if config is not None else None
        entry["max_amount"] = config.max_amount if config is not None else None
        fee = method_fee(session, invoice, method, due)
        if options.public_fee_details:
            entry["fee"] = {
                "amount": fee,
                "currency": invoice.currency,
                "paid_by": "payer" if options.include_commission else "merchant",
            }
        if options.public_zero_fee_badge:
            entry["zero_fee"] = fee == 0
        if options.include_commission:  # the payer pays more than the amount due
            entry["total"] = {"amount": max(due, 0) + fee, "currency": invoice.currency}
        methods.append(entry)
    return {
        "object": "payment_options",
        "invoice": invoice.id,
        "livemode": invoice.livemode,
        "payable": payable,
        "currency": invoice.currency,
        "amount_due": due,
        "country": country.code,
        "country_source": country.source,
        "methods": methods,
        "saved_methods": _saved_methods(session, caller, invoice, available),
    }


def _saved_methods(
    session: Session, caller: Caller, invoice: Invoice, available: dict[str, bool]
) -> list[dict[str, Any]]:
    if invoice.customer_id is None:
        return []
    customer = session.get(Customer, invoice.customer_id)
    default = customer.default_payment_method_id if customer is not None else None
    rows = session.scalars(
        select(PaymentMethod)
        .where(
            PaymentMethod.merchant_id == caller.merchant_id,
            PaymentMethod.livemode == caller.livemode,
            PaymentMethod.customer_id == invoice.customer_id,
            PaymentMethod.detached_at.is_(None),
        )
        .order_by(PaymentMethod.id)
    )
    return [
        {**render_payment_method(row), "available": available.get(row.type, False),
         "default": row.id == default}
        for row in rows
    ]  # fmt: skip
