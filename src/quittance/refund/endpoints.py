"""`/v1/invoices/{id}/refunds`, `/v1/refunds`, and the refund test helpers."""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from starlette.responses import Response

from quittance.api.deps import DbDep, SettingsDep
from quittance.api.responses import dumps, json_response, page
from quittance.auth.dependencies import Caller, CallerDep, require_test_mode
from quittance.config import Settings
from quittance.db.pagination import keyset_page
from quittance.db.uow import Database
from quittance.idempotency.dependencies import IdempotentDep
from quittance.invoice.schemas import render_invoice
from quittance.invoice.service import get_invoice
from quittance.models import Refund
from quittance.payment.endpoints import SandboxRefused
from quittance.providers.registry import sandbox
from quittance.providers.sandbox import SandboxError
from quittance.refund import service
from quittance.refund.schemas import RefundCreate, RefundCreated, RefundOut, render_refund

router = APIRouter(prefix="/v1", tags=["refunds"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "`invoice_not_found`, `refund_not_found`"},
    409: {"description": "`invoice_not_refundable` (names the invoice's status)"},
    422: {"description": "`refund_exceeds_refundable`, `line_item_not_found`, "
                         "`refund_quantity_exceeds_refundable`, `amount_and_line_items`, "
                         "`duplicate_items` and validation codes"},
}  # fmt: skip


def _document(db: Database, caller: Caller, refund_id: str, settings: Settings) -> dict[str, Any]:
    with db.read() as session:
        refund = service.get_refund(session, caller, refund_id)
        invoice = get_invoice(session, caller, refund.invoice_id)
        document = render_refund(refund)
        document["invoice"] = render_invoice(invoice, settings.public_base_url)
    return document


@router.post(
    "/invoices/{invoice_id}/refunds", status_code=201, response_model=RefundCreated,
    responses=_ERRORS,
)  # fmt: skip
def create_refund(
    invoice_id: str, run: IdempotentDep, settings: SettingsDep, body: RefundCreate | None = None
) -> Response:
    """Refund an invoice: all that is refundable, an amount, or some line items' units.

    Money that more than one payment received is split into one refund per payment. Answers
    with the first refund (its `status` is `succeeded`, `pending` or `failed`), the invoice
    as it now stands, and in `refunds` every refund the request made."""

    def handle(db: Database) -> tuple[int, dict[str, Any]]:
        with db.write() as session:
            calls = service.start_refund(session, run.caller, invoice_id, body, settings)
        results = [service.call_provider(call, settings) for call in calls]
        with db.write() as session:
            refunds, invoice = service.record_results(session, calls, results, settings)
            document = render_refund(refunds[0])
            document["invoice"] = render_invoice(invoice, settings.public_base_url)
            document["refunds"] = [render_refund(refund) for refund in refunds]
        return 201, document

    return run.run_steps(handle)


@router.get("/refunds/{refund_id}", response_model=RefundOut, responses=_ERRORS)
def retrieve_refund(
    refund_id: str, caller: CallerDep, db: DbDep, settings: SettingsDep
) -> Response:
    """Retrieve a refund with its invoice."""
    return json_response(200, dumps(_document(db, caller, refund_id, settings)))


@router.get("/refunds")
def list_refunds(
    caller: CallerDep,
    db: DbDep,
    invoice: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[str | None, Query(pattern=r"^re_[0-9A-Z]{26}$")] = None,
) -> Response:
    """List refunds, newest first."""
    query = select(Refund).where(
        Refund.merchant_id == caller.merchant_id, Refund.livemode == caller.livemode
    )
    if invoice is not None:
        query = query.where(Refund.invoice_id == invoice)
    if status is not None:
        query = query.where(Refund.status == status)
    with db.read() as session:
        rows, has_more = keyset_page(
            session, query, Refund.id, limit=limit, starting_after=starting_after
        )
    data = [render_refund(r) for r in rows]
    return json_response(200, dumps(page(data, has_more, "/v1/refunds")))


test_helpers = APIRouter(prefix="/v1/test_helpers", tags=["test helpers"])


def _resolve(run: IdempotentDep, refund_id: str, settings: Settings, succeed: bool) -> Response:
    """Let the sandbox pay out or fail a pending refund, then record its answer."""
    require_test_mode(run.caller)

    def handle(db: Database) -> tuple[int, dict[str, Any]]:
        with db.read() as session:
            service.get_refund(session, run.caller, refund_id)
        try:
            result = sandbox(settings).resolve_refund(refund_id, succeed=succeed)
        except SandboxError as exc:
            raise SandboxRefused(exc.message, code=exc.code) from None
        with db.write() as session:
            refund, invoice = service.lock_refund(session, run.caller.merchant_id, refund_id)
            if refund.status == "pending":
                service.apply_result(session, invoice, refund, result, settings)
        return 200, _document(db, run.caller, refund_id, settings)

    return run.run_steps(handle)


@test_helpers.post("/refunds/{refund_id}/settle", response_model=RefundOut)
def settle_refund(refund_id: str, run: IdempotentDep, settings: SettingsDep) -> Response:
    """Test mode: a pending sandbox refund is paid out."""
    return _resolve(run, refund_id, settings, succeed=True)


@test_helpers.post("/refunds/{refund_id}/fail", response_model=RefundOut)
def fail_refund(refund_id: str, run: IdempotentDep, settings: SettingsDep) -> Response:
    """Test mode: a pending sandbox refund fails."""
    return _resolve(run, refund_id, settings, succeed=False)
