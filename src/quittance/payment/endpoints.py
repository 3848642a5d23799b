"""`/v1/invoices/{id}/pay`, `/v1/payments`, and the payment test helpers."""

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from starlette.responses import Response

from quittance.api.deps import DbDep, SettingsDep
from quittance.api.responses import dumps, json_response, page
from quittance.api.schemas import Amount, StrictModel
from quittance.auth.dependencies import Caller, CallerDep, require_test_mode
from quittance.config import Settings
from quittance.db.pagination import keyset_page
from quittance.db.uow import Database
from quittance.domain.errors import QuittanceError
from quittance.idempotency.dependencies import IdempotentDep
from quittance.idempotency.service import IdempotentRequest
from quittance.invoice import kept as kept_invoices
from quittance.invoice.schemas import render_invoice
from quittance.invoice.service import get_invoice
from quittance.models import Payment
from quittance.payment import service
from quittance.payment.schemas import PaymentOut, PayRequest, render_payment
from quittance.providers.base import PaymentResult
from quittance.providers.registry import sandbox
from quittance.providers.sandbox import SandboxError, SandboxGateway

router = APIRouter(prefix="/v1", tags=["payments"])

# Provider calls (blocking, bounded by their timeouts) run in threads of their own rather than
# AnyIO's pool: a plain executor hands a call over for less (a C queue, no cancel scopes), and
# slow providers cannot use up the threads the other routes run in. As many as AnyIO's pool.
_PROVIDER_CALLS = ThreadPoolExecutor(max_workers=40, thread_name_prefix="quittance-provider")


async def _in_provider_thread(call: Callable[..., Any], *args: Any) -> Any:
    """`call(*args)` in a provider thread, in the caller's context (its request id)."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(
        _PROVIDER_CALLS, context.run, call, *args
    )


_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "`invoice_not_found`, `payment_not_found`, `payment_method_not_found`"},
    409: {"description": "`invoice_not_payable` (names the invoice's status)"},
    422: {"description": "`payment_method_required`, `payment_method_not_available`, "
                         "`card_rejected` and validation codes"},
}  # fmt: skip


def _document(db: Database, caller: Caller, payment_id: str, settings: Settings) -> dict[str, Any]:
    with db.read() as session:
        payment = service.get_payment(session, caller, payment_id)
        invoice = get_invoice(session, caller, payment.invoice_id)
        document = render_payment(payment)
        document["invoice"] = render_invoice(invoice, settings.public_base_url)
    return document


@router.post("/invoices/{invoice_id}/pay", response_model=PaymentOut, responses=_ERRORS)
async def pay_invoice(
    invoice_id: str,
    run: IdempotentDep,
    settings: SettingsDep,
    request: Request,
    body: PayRequest | None = None,
) -> Response:
    """Pay an invoice with a saved or inline method, or the customer's default method.

    Answers with the payment (its `status` is `succeeded`, `authorized`, `pending`,
    `requires_action` or `failed`) and the invoice as it now stands."""

    return await pay(run, invoice_id, body, settings, request.headers.get(settings.country_header))


async def _from_kept(
    db: Database, work: Callable[[Session], Any], used: list[bool],
    errors: tuple[type[Exception], ...],
) -> Any:  # fmt: skip
    """Run `work` grouped. If it raised one of `errors` having worked from rows this process
    kept instead of reading them (`used[0]`: they may be stale), run it once more: a run again
    reads them. A batch of several units does that by itself (each unit runs again alone); a
    unit alone in its batch gets its error back, hence this."""
    try:
        return await db.write_grouped(work)
    except errors:
        if not used[0]:
            raise
        return await db.write_grouped(work)


async def pay(
    run: IdempotentRequest,
    invoice_id: str,
    body: PayRequest | None,
    settings: Settings,
    country_header: str | None,
) -> Response:
    """The pay, as the route and its fast lane (`payment/fast_lane.py`) both run it.

    Each step is a group-committed unit of work (safe to run again after a rollback: a new
    attempt gets new ids, and recording an answer reads the payment again, where the first
    time it may write back the attempt's rows as they were written); the provider is called
    in a worker thread, only once the attempt is committed.
    """

    caller = run.caller
    took = [False]  # whether a run took the invoice kept by its create (`invoice/kept.py`)

    def start(session: Session) -> service.Attempt:
        kept = None
        if not took[0] and run.db.is_postgres:
            kept = kept_invoices.take(caller.merchant_id, caller.livemode, invoice_id)
            took[0] = kept is not None
        return service.start_attempt(session, caller, invoice_id, body, settings,
                                     country_header=country_header, kept=kept)  # fmt: skip

    async def handle() -> tuple[int, dict[str, Any]]:
        # A refusal from the kept invoice is not trusted either: it may be stale.
        attempt: service.Attempt = await _from_kept(
            run.db, start, took, (StaleDataError, QuittanceError)
        )
        call: service.CallOutcome = await _in_provider_thread(
            service.call_provider, attempt, settings
        )
        kept = [service.written_rows(attempt)]  # used at most once (they are changed)
        used = [False]

        def record(session: Session) -> service.Recorded:
            rows, kept[0] = kept[0], None  # run again after a rollback: read them afresh
            used[0] = used[0] or rows is not None
            return service.record_call(session, attempt, call, settings, kept=rows)

        # Rendered here, once committed, from the rows as written (out of the writer's batch).
        recorded: service.Recorded = await _from_kept(run.db, record, used, (StaleDataError,))
        document = render_payment(recorded.payment)
        document["invoice"] = recorded.invoice_document or render_invoice(
            recorded.invoice, settings.public_base_url
        )
        return 200, document

    return await run.run_steps_grouped(handle)


@router.get("/payments/{payment_id}", response_model=PaymentOut, responses=_ERRORS)
def retrieve_payment(
    payment_id: str, caller: CallerDep, db: DbDep, settings: SettingsDep
) -> Response:
    """Retrieve a payment with its invoice."""
    return json_response(200, dumps(_document(db, caller, payment_id, settings)))


@router.get("/payments")
def list_payments(
    caller: CallerDep,
    db: DbDep,
    invoice: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[str | None, Query(pattern=r"^pay_[0-9A-Z]{26}$")] = None,
) -> Response:
    """List payments, newest first."""
    query = select(Payment).where(
        Payment.merchant_id == caller.merchant_id, Payment.livemode == caller.livemode
    )
    if invoice is not None:
        query = query.where(Payment.invoice_id == invoice)
    if status is not None:
        query = query.where(Payment.status == status)
    with db.read() as session:
        rows, has_more = keyset_page(
            session, query, Payment.id, limit=limit, starting_after=starting_after
        )
    data = [render_payment(p) for p in rows]
    return json_response(200, dumps(page(data, has_more, "/v1/payments")))


test_helpers = APIRouter(prefix="/v1/test_helpers", tags=["test helpers"])


class SandboxRefused(QuittanceError):
    status = 409
    code = "sandbox_refused"
    title = "The sandbox refused"


def _resolve(
    run: IdempotentRequest,
    payment_id: str,
    settings: Settings,
    act: Callable[[SandboxGateway], PaymentResult],
) -> Response:
    """Let the sandbox change a payment, then record its answer as the worker would."""
    require_test_mode(run.caller)

    def handle(db: Database) -> tuple[int, dict[str, Any]]:
        with db.read() as session:
            service.get_payment(session, run.caller, payment_id)
        try:
            result = act(sandbox(settings))
        except SandboxError as exc:
            raise SandboxRefused(exc.message, code=exc.code) from None
        with db.write() as session:
            payment, invoice = service.lock_payment(session, run.caller.merchant_id, payment_id)
            service.apply_result(session, invoice, payment, result, settings)
        return 200, _document(db, run.caller, payment_id, settings)

    return run.run_steps(handle)


@test_helpers.post("/payments/{payment_id}/settle", response_model=PaymentOut)
def settle_payment(payment_id: str, run: IdempotentDep, settings: SettingsDep) -> Response:
    """Test mode: a pending sandbox payment succeeds (or a challenge is passed)."""
    return _resolve(run, payment_id, settings, lambda s: s.resolve(payment_id, succeed=True))


@test_helpers.post("/payments/{payment_id}/fail", response_model=PaymentOut)
def fail_payment(payment_id: str, run: IdempotentDep, settings: SettingsDep) -> Response:
    """Test mode: a pending sandbox payment fails (or a challenge is failed)."""
    return _resolve(run, payment_id, settings, lambda s: s.resolve(payment_id, succeed=False))


class BankTransfer(StrictModel):
    payment: str = Field(pattern=r"^pay_[0-9A-Z]{26}$", description="The bank-transfer payment")
    amount: Amount


@test_helpers.post("/bank_transfers", response_model=PaymentOut)
def bank_transfer(body: BankTransfer, run: IdempotentDep, settings: SettingsDep) -> Response:
    """Test mode: a bank transfer of any amount arrives for a bank-transfer payment
    (less than due: `partially_processed`; exact: `processed`; more: overpaid)."""
    return _resolve(
        run, body.payment, settings, lambda s: s.receive_transfer(body.payment, body.amount)
    )
