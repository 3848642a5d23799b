"""`/v1/invoices`: create, retrieve, list and search, update, finalize, cancel, events."""

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from quittance import clock
from quittance.api.deps import DbDep, SettingsDep
from quittance.api.responses import dumps, json_response, page
from quittance.auth.dependencies import CallerDep, require_test_mode
from quittance.db.pagination import keyset_page, one_cursor
from quittance.domain.errors import ValidationFailed
from quittance.domain.invoice import Status
from quittance.domain.money import MAX_AMOUNT, CurrencyNotSupported, normalize_currency
from quittance.event.service import render_event
from quittance.idempotency.dependencies import IdempotentDep
from quittance.idempotency.service import IdempotentRequest
from quittance.invoice import repository, service
from quittance.invoice.repository import InvoiceFilters
from quittance.invoice.schemas import InvoiceCreate, InvoiceOut, InvoiceUpdate, render_invoice
from quittance.invoice.tasks import expire_overdue_for
from quittance.models import Event, Invoice

router = APIRouter(prefix="/v1", tags=["invoices"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key (`authentication_required`, "
                         "`invalid_api_key`)"},
    404: {"description": "`invoice_not_found`"},
    409: {"description": "The invoice's status does not allow this (`invoice_not_draft`, "
                         "`invoice_not_cancellable`, `idempotency_key_in_use`)"},
    422: {"description": "Validation failed; `errors` lists each field with its code"},
}  # fmt: skip


@router.post("/invoices", status_code=201, response_model=InvoiceOut, responses=_ERRORS)
async def create_invoice(
    body: InvoiceCreate, run: IdempotentDep, settings: SettingsDep
) -> Response:
    """Create an invoice and get the `redirect_url` to send the payer to."""
    return await create(run, body, settings.public_base_url)


async def create(run: IdempotentRequest, body: InvoiceCreate, base_url: str) -> Response:
    """The create, as the route and its fast lane (`invoice/fast_lane.py`) both run it."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        # Safe to run again after a rollback: every run makes a new invoice with new ids.
        return 201, service.create_invoice(session, run.caller, body, base_url)

    return await run.run_grouped(handle)


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut, responses=_ERRORS)
def retrieve_invoice(
    invoice_id: str, caller: CallerDep, db: DbDep, settings: SettingsDep
) -> Response:
    """Retrieve an invoice; an invoice past its lifetime is expired before it is shown."""
    with db.read() as session:
        invoice = service.get_invoice(session, caller, invoice_id)
    if service.is_overdue(invoice, clock.now()):
        with db.write() as session:
            invoice = service.load_for_change(session, caller, invoice_id, settings.public_base_url)
    return json_response(200, dumps(render_invoice(invoice, settings.public_base_url)))


def _filters(
    status: list[str] | None,
    reference: str | None,
    customer_email: str | None,
    currency: str | None,
    amount_gte: int | None,
    amount_lte: int | None,
    created_gte: datetime | None,
    created_lte: datetime | None,
    q: str | None,
) -> InvoiceFilters:
    statuses: list[str] = []
    for value in status or []:
        statuses.extend(part.strip() for part in value.split(",") if part.strip())
    known = {s.value for s in Status}
    unknown = [s for s in statuses if s not in known]
    if unknown:
        message = f"Unknown status {unknown[0]!r}; see GET /v1/invoice_statuses."
        raise ValidationFailed(
            message,
            code="invalid_value",
            errors=[{"field": "status", "code": "invalid_value", "message": message}],
        )
    if currency is not None:
        try:
            currency = normalize_currency(currency)
        except CurrencyNotSupported as exc:
            raise ValidationFailed(
                exc.message,
                code=exc.code,
                errors=[{"field": "currency", "code": exc.code, "message": exc.message}],
            ) from None

    def utc(value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:  # an offset pushes it past year 1 or 9999: clamp to the end
            return _CALENDAR_END if value.year > 1 else _CALENDAR_START

    return InvoiceFilters(
        statuses=tuple(statuses),
        reference=reference,
        customer_email=customer_email,
        currency=currency,
        amount_gte=amount_gte,
        amount_lte=amount_lte,
        created_gte=utc(created_gte),
        created_lte=utc(created_lte),
        q=q,
    )


_CALENDAR_START = datetime(1, 1, 1, tzinfo=UTC)
_CALENDAR_END = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
Cursor = Annotated[str | None, Query(pattern=r"^inv_[0-9A-Z]{26}$")]


@router.get("/invoices", responses=_ERRORS)
def list_invoices(
    request: Request,
    caller: CallerDep,
    db: DbDep,
    settings: SettingsDep,
    status: Annotated[
        list[str] | None,
        Query(description="One or more statuses, repeated or comma-separated"),
    ] = None,
    reference: Annotated[str | None, Query(max_length=255)] = None,
    customer_email: Annotated[str | None, Query(max_length=320)] = None,
    customer: Annotated[
        str | None, Query(pattern=r"^cus_[0-9A-Z]{26}$", description="A saved customer's id")
    ] = None,
    currency: Annotated[str | None, Query(max_length=3)] = None,
    amount_gte: Annotated[int | None, Query(ge=0, le=MAX_AMOUNT)] = None,
    amount_lte: Annotated[int | None, Query(ge=0, le=MAX_AMOUNT)] = None,
    created_gte: datetime | None = None,
    created_lte: datetime | None = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Free text over reference, description and customer",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Cursor = None,
    ending_before: Cursor = None,
) -> Response:
    """List invoices, newest first, with filters and cursor pagination."""
    one_cursor(starting_after, ending_before)
    filters = _filters(status, reference, customer_email, currency, amount_gte, amount_lte,
                       created_gte, created_lte, q)  # fmt: skip
    filters = replace(filters, customer_id=customer)
    now = clock.now()
    with db.read() as session:
        overdue = repository.any_overdue(session, caller, now)
    if overdue:
        with db.write() as session:
            expire_overdue_for(session, caller, settings.public_base_url)
    with db.read() as session:
        invoices, has_more = keyset_page(
            session,
            repository.filtered(caller, filters),
            Invoice.id,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
    data = [render_invoice(invoice, settings.public_base_url) for invoice in invoices]
    body = page(data, has_more, "/v1/invoices", backwards=ending_before is not None)
    return json_response(200, dumps(body))


@router.patch("/invoices/{invoice_id}", response_model=InvoiceOut, responses=_ERRORS)
def update_invoice(
    invoice_id: str, body: InvoiceUpdate, run: IdempotentDep, settings: SettingsDep
) -> Response:
    """Change a draft, or cancel any unpaid invoice with `{"status": "cancelled"}`."""

    def handle(session: Any) -> tuple[int, dict[str, Any]]:
        invoice = service.update_invoice(
            session, run.caller, invoice_id, body, settings.public_base_url
        )
        return 200, render_invoice(invoice, settings.public_base_url)

    return run.run(handle)


@router.post("/invoices/{invoice_id}/finalize", response_model=InvoiceOut, responses=_ERRORS)
def finalize_invoice(invoice_id: str, run: IdempotentDep, settings: SettingsDep) -> Response:
    """Make a draft payable (`draft` → `created`); the lifetime starts now."""

    def handle(session: Any) -> tuple[int, dict[str, Any]]:
        invoice = service.finalize_invoice(session, run.caller, invoice_id,
                                           settings.public_base_url)  # fmt: skip
        return 200, render_invoice(invoice, settings.public_base_url)

    return run.run(handle)


@router.post("/invoices/{invoice_id}/cancel", response_model=InvoiceOut, responses=_ERRORS)
def cancel_invoice(invoice_id: str, run: IdempotentDep, settings: SettingsDep) -> Response:
    """Cancel a draft or unpaid invoice (→ `cancelled`)."""

    def handle(session: Any) -> tuple[int, dict[str, Any]]:
        invoice = service.cancel_invoice(session, run.caller, invoice_id,
                                         settings.public_base_url)  # fmt: skip
        return 200, render_invoice(invoice, settings.public_base_url)

    return run.run(handle)


@router.get("/invoices/{invoice_id}/events", responses=_ERRORS)
def invoice_events(
    invoice_id: str,
    caller: CallerDep,
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
    starting_after: Annotated[str | None, Query(pattern=r"^evt_[0-9A-Z]{26}$")] = None,
) -> Response:
    """List an invoice's events, oldest first: its history."""
    with db.read() as session:
        service.get_invoice(session, caller, invoice_id)
        query = (
            select(Event)
            .where(
                Event.merchant_id == caller.merchant_id,
                Event.livemode == caller.livemode,
                Event.invoice_id == invoice_id,
            )
            .order_by(Event.id.asc())
            .limit(limit + 1)
        )
        if starting_after is not None:
            query = query.where(Event.id > starting_after)
        rows = list(session.scalars(query))
    data = [render_event(event) for event in rows[:limit]]
    return json_response(
        200, dumps(page(data, len(rows) > limit, f"/v1/invoices/{invoice_id}/events"))
    )


test_helpers = APIRouter(prefix="/v1/test_helpers", tags=["test helpers"])


@test_helpers.post("/invoices/{invoice_id}/expire", response_model=InvoiceOut,
                   responses=_ERRORS)  # fmt: skip
def advance_lifetime(invoice_id: str, run: IdempotentDep, settings: SettingsDep) -> Response:
    """Test mode only: advance the invoice past its lifetime, so it expires now."""
    require_test_mode(run.caller)

    def handle(session: Any) -> tuple[int, dict[str, Any]]:
        invoice = service.expire_now(session, run.caller, invoice_id, settings.public_base_url)
        return 200, render_invoice(invoice, settings.public_base_url)

    return run.run(handle)
