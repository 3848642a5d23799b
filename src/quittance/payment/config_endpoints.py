"""Method configuration, provider connections, and an invoice's pay options."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from quittance import clock
from quittance.api.deps import DbDep, SettingsDep
from quittance.api.responses import dumps, json_response, page
from quittance.auth.dependencies import Caller, CallerDep
from quittance.db.uow import Database
from quittance.idempotency.dependencies import IdempotentDep
from quittance.invoice import service as invoices
from quittance.models import ProviderConnection
from quittance.payment import options as service
from quittance.payment.config_schemas import (
    InvoicePaymentOptionsOut,
    MethodConfigOut,
    MethodConfigUpdate,
    ProviderConnectionCreate,
    ProviderConnectionOut,
    ProviderConnectionUpdate,
    render_connection,
    render_method,
)

router = APIRouter(prefix="/v1", tags=["payment settings"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    404: {"description": "`provider_connection_not_found`, `method_not_found`, "
                         "`invoice_not_found`"},
    409: {"description": "`provider_connection_in_use` (names the `methods`), "
                         "`provider_connection_limit_reached`, `idempotency_key_in_use`"},
    422: {"description": "`provider_not_available` (the sandbox in live mode); validation "
                         "failed (`unknown_provider_connection`, `duplicate_items`, "
                         "`min_above_max`, `invalid_country`, …) with `errors` per field"},
}  # fmt: skip

ConnectionCursor = Annotated[str | None, Query(pattern=r"^pcn_[0-9A-Z]{26}$")]
Limit = Annotated[int, Query(ge=1, le=100)]


def _set_up_on_read(db: Database, caller: Caller) -> None:
    """Write a test-mode merchant's defaults before a read shows them (a rare first look)."""
    with db.read() as session:
        missing = service.needs_set_up(session, caller)
    if missing:
        with db.write() as session:
            service.set_up(session, caller)


def _render_connection(
    session: Session, caller: Caller, connection: ProviderConnection
) -> dict[str, Any]:
    methods = service.routed_methods(session, caller).get(connection.id, [])
    return render_connection(connection, methods)


# -- provider connections -------------------------------------------------------------------


@router.get("/settings/provider_connections", responses=_ERRORS)
def list_connections(
    caller: CallerDep, db: DbDep, limit: Limit = 20, starting_after: ConnectionCursor = None
) -> Response:
    """List the provider connections of this mode, newest first."""
    _set_up_on_read(db, caller)
    with db.read() as session:
        rows, has_more = service.connections(
            session, caller, limit=limit, starting_after=starting_after
        )
        used = service.routed_methods(session, caller)
    data = [render_connection(row, used.get(row.id, [])) for row in rows]
    return json_response(200, dumps(page(data, has_more, "/v1/settings/provider_connections")))


@router.post("/settings/provider_connections", status_code=201,
             response_model=ProviderConnectionOut, responses=_ERRORS)  # fmt: skip
def create_connection(body: ProviderConnectionCreate, run: IdempotentDep) -> Response:
    """Add a connection to a provider account (`sandbox`: test mode only).

    A method uses it once its `connections` name it (`PATCH /v1/settings/methods/{method}`)."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        connection = service.create_connection(session, run.caller, body)
        return 201, _render_connection(session, run.caller, connection)

    return run.run(handle)


@router.get("/settings/provider_connections/{connection_id}",
            response_model=ProviderConnectionOut, responses=_ERRORS)  # fmt: skip
def retrieve_connection(connection_id: str, caller: CallerDep, db: DbDep) -> Response:
    """Retrieve a connection with the methods that route through it."""
    _set_up_on_read(db, caller)
    with db.read() as session:
        connection = service.get_connection(session, caller, connection_id)
        document = _render_connection(session, caller, connection)
    return json_response(200, dumps(document))


@router.patch("/settings/provider_connections/{connection_id}",
              response_model=ProviderConnectionOut, responses=_ERRORS)  # fmt: skip
def update_connection(
    connection_id: str, body: ProviderConnectionUpdate, run: IdempotentDep
) -> Response:
    """Rename, re-configure (`options` is replaced whole) or pause (`enabled: false`) it."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        connection = service.update_connection(session, run.caller, connection_id, body)
        return 200, _render_connection(session, run.caller, connection)

    return run.run(handle)


@router.delete("/settings/provider_connections/{connection_id}", responses=_ERRORS)
def delete_connection(connection_id: str, run: IdempotentDep) -> Response:
    """Delete a connection no method routes through; otherwise `409 provider_connection_in_use`."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        service.delete_connection(session, run.caller, connection_id)
        return 200, {"id": connection_id, "object": "provider_connection", "deleted": True}

    return run.run(handle)


# -- methods --------------------------------------------------------------------------------


@router.get("/settings/methods", responses=_ERRORS)
def list_methods(caller: CallerDep, db: DbDep) -> Response:
    """The three methods (card, bank_transfer, invoice) with their limits and routes."""
    _set_up_on_read(db, caller)
    with db.read() as session:
        data = [
            render_method(method, caller.livemode, config)
            for method, config in service.method_settings(session, caller)
        ]
    return json_response(200, dumps(page(data, False, "/v1/settings/methods")))


@router.get("/settings/methods/{method}", response_model=MethodConfigOut, responses=_ERRORS)
def retrieve_method(method: str, caller: CallerDep, db: DbDep) -> Response:
    """One method's settings."""
    service.check_method_name(method)
    _set_up_on_read(db, caller)
    with db.read() as session:
        config = dict(service.method_settings(session, caller))[method]
    return json_response(200, dumps(render_method(method, caller.livemode, config)))


@router.patch("/settings/methods/{method}", response_model=MethodConfigOut, responses=_ERRORS)
def update_method(method: str, body: MethodConfigUpdate, run: IdempotentDep) -> Response:
    """Enable or disable a method; set its amount limits (minor units of the invoice's
    currency), countries, currencies and the connections tried in order (at most 5)."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        config = service.update_method(session, run.caller, method, body)
        return 200, render_method(method, run.caller.livemode, config)

    return run.run(handle)


# -- pay options ----------------------------------------------------------------------------


@router.get("/invoices/{invoice_id}/payment_options", response_model=InvoicePaymentOptionsOut,
            responses=_ERRORS, tags=["invoices"])  # fmt: skip
def invoice_payment_options(
    invoice_id: str,
    request: Request,
    caller: CallerDep,
    db: DbDep,
    settings: SettingsDep,
    country: Annotated[
        str | None,
        Query(
            min_length=2,
            max_length=2,
            description="The payer's country (ISO 3166-1 alpha-2); otherwise the customer's, "
            "otherwise the CDN header named by QUITTANCE_COUNTRY_HEADER",
        ),
    ] = None,
) -> Response:
    """The methods the payer may use for this invoice (with reasons for the others), each
    method's amount limits and fee, and the customer's saved methods.

    An invoice that cannot be paid (paid, expired, cancelled, a draft…) still answers, with
    every method unavailable for the reason `invoice_not_payable`."""
    header = request.headers.get(settings.country_header)
    _set_up_on_read(db, caller)
    with db.read() as session:
        invoice = invoices.get_invoice(session, caller, invoice_id)
        payer = service.payer_country(session, invoice, country, header)
        overdue = invoices.is_overdue(invoice, clock.now())
        document = None if overdue else service.pay_options(session, caller, invoice, payer)
    if document is None:  # expire it first, so an overdue invoice never looks payable
        with db.write() as session:
            invoice = invoices.load_for_change(
                session, caller, invoice_id, settings.public_base_url
            )
            document = service.pay_options(session, caller, invoice, payer)
    return json_response(200, dumps(document))
