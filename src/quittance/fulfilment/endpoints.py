"""`/v1/invoices/{id}/cancellations` and `/v1/invoices/{id}/deliveries`."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from starlette.responses import Response

from quittance.api.deps import DbDep, SettingsDep
from quittance.api.responses import dumps, json_response, page
from quittance.auth.dependencies import Caller, CallerDep
from quittance.config import Settings
from quittance.db.pagination import keyset_page
from quittance.db.uow import Database
from quittance.fulfilment import service
from quittance.fulfilment.schemas import (
    CancellationCreate,
    CancellationOut,
    DeliveryCreate,
    DeliveryOut,
    render_cancellation,
    render_delivery,
)
from quittance.idempotency.dependencies import IdempotentDep
from quittance.invoice.service import get_invoice
from quittance.models import Cancellation, Delivery

router = APIRouter(prefix="/v1", tags=["cancellations and deliveries"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "`invoice_not_found`"},
    409: {"description": "`invoice_not_cancellable`, `invoice_not_deliverable` (with "
                         "`invoice_status`), `fulfilment_pending`"},
    422: {"description": "`cancellation_exceeds_cancellable`, `delivery_exceeds_deliverable`, "
                         "`line_item_not_found`, `line_item_quantity_exceeded` and validation "
                         "codes"},
}  # fmt: skip


def _document(
    db: Database, caller: Caller, kind: service.Kind, row_id: str, settings: Settings
) -> dict[str, Any]:
    with db.read() as session:
        row = service.get_row(session, caller, kind, row_id)
        invoice = get_invoice(session, caller, row.invoice_id)
        return service.document(row, invoice, settings.public_base_url)


@router.post(
    "/invoices/{invoice_id}/cancellations", status_code=201, response_model=CancellationOut,
    responses=_ERRORS,
)  # fmt: skip
def create_cancellation(
    invoice_id: str, run: IdempotentDep, settings: SettingsDep,
    body: CancellationCreate | None = None,
) -> Response:  # fmt: skip
    """Cancel an invoice: everything still open (no body), an amount, or line items.

    An unpaid invoice is cancelled at once; an authorised one has its authorisation released
    at the provider. Answers with the cancellation (`succeeded`, `pending` or `failed`) and
    the invoice as it now stands."""

    def handle(db: Database) -> tuple[int, dict[str, Any]]:
        with db.write() as session:
            row_id, call = service.start_cancellation(session, run.caller, invoice_id, body,
                                                      settings)  # fmt: skip
        if call is not None:
            answer = service.call_provider(call, settings)
            with db.write() as session:
                service.record_answer(session, call, answer, settings)
        return 201, _document(db, run.caller, "cancellation", row_id, settings)

    return run.run_steps(handle)


@router.post(
    "/invoices/{invoice_id}/deliveries", status_code=201, response_model=DeliveryOut,
    responses=_ERRORS,
)  # fmt: skip
def create_delivery(
    invoice_id: str, run: IdempotentDep, settings: SettingsDep, body: DeliveryCreate | None = None
) -> Response:
    """Confirm a delivery: everything still open (no body), an amount, or line items.

    The provider captures the delivered part of the authorisation. Answers with the delivery
    (`succeeded`, `pending` or `failed`) and the invoice as it now stands."""

    def handle(db: Database) -> tuple[int, dict[str, Any]]:
        with db.write() as session:
            call = service.start_delivery(session, run.caller, invoice_id, body, settings)
        answer = service.call_provider(call, settings)
        with db.write() as session:
            service.record_answer(session, call, answer, settings)
        return 201, _document(db, run.caller, "delivery", call.row_id, settings)

    return run.run_steps(handle)


def _list_rows(
    model: type[Cancellation] | type[Delivery], render: Callable[[Any], dict[str, Any]],
    invoice_id: str, caller: Caller, db: Database, limit: int, starting_after: str | None,
) -> Response:  # fmt: skip
    """One page of an invoice's cancellations or deliveries, newest first."""
    with db.read() as session:
        get_invoice(session, caller, invoice_id)
        rows, has_more = keyset_page(
            session,
            select(model).where(
                model.merchant_id == caller.merchant_id,
                model.livemode == caller.livemode,
                model.invoice_id == invoice_id,
            ),
            model.id, limit=limit, starting_after=starting_after,
        )  # fmt: skip
    data = [render(row) for row in rows]
    path = f"/v1/invoices/{invoice_id}/{model.__tablename__}"
    return json_response(200, dumps(page(data, has_more, path)))


@router.get("/invoices/{invoice_id}/cancellations", responses=_ERRORS)
def list_cancellations(
    invoice_id: str, caller: CallerDep, db: DbDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[str | None, Query(pattern=r"^can_[0-9A-Z]{26}$")] = None,
) -> Response:  # fmt: skip
    """List an invoice's cancellations, newest first."""
    return _list_rows(Cancellation, render_cancellation, invoice_id, caller, db, limit,
                      starting_after)  # fmt: skip


@router.get("/invoices/{invoice_id}/deliveries", responses=_ERRORS)
def list_deliveries(
    invoice_id: str, caller: CallerDep, db: DbDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[str | None, Query(pattern=r"^dlv_[0-9A-Z]{26}$")] = None,
) -> Response:  # fmt: skip
    """List an invoice's deliveries, newest first."""
    return _list_rows(Delivery, render_delivery, invoice_id, caller, db, limit, starting_after)
