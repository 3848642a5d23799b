"""`/v1/fee_schedules` and `/v1/exchange_rates`: a merchant's commission and rates, per mode."""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session
from starlette.responses import Response

from quittance.api.deps import DbDep
from quittance.api.responses import dumps, json_response, page
from quittance.auth.dependencies import CallerDep
from quittance.db.pagination import keyset_page
from quittance.domain.money import normalize_currency
from quittance.idempotency.dependencies import IdempotentDep
from quittance.models import ExchangeRate as ExchangeRateRow
from quittance.payment.options import check_method_name
from quittance.pricing import service
from quittance.pricing.schemas import (
    ExchangeRateCreate,
    ExchangeRateOut,
    FeeScheduleOut,
    FeeScheduleSet,
    render_exchange_rate,
    render_fee_schedule,
)

router = APIRouter(prefix="/v1", tags=["pricing"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "`fee_schedule_not_found`, `method_not_found`"},
    422: {"description": "`invalid_fee_schedule`, `invalid_exchange_rate`, "
                         "`currency_not_supported` and validation codes"},
}  # fmt: skip
CurrencyQuery = Annotated[str | None, Query(min_length=3, max_length=3)]


def _currency(value: str | None) -> str | None:
    return None if value is None else normalize_currency(value)


@router.put("/fee_schedules/{method}", response_model=FeeScheduleOut, responses=_ERRORS)
def set_fee_schedule(method: str, body: FeeScheduleSet, run: IdempotentDep) -> Response:
    """Set a method's commission in one currency (replacing the schedule there, if any).

    `percent` is a decimal string (`"2.9"`, 0 to 100, at most 4 decimals); `fixed`, `minimum`
    and `maximum` are minor units of `currency`. The commission is rounded once, half up,
    after `minimum` and `maximum` are applied (see docs/payments.md#commission)."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        row = service.set_fee_schedule(session, run.caller, method, body)
        return 200, render_fee_schedule(row)

    return run.run(handle)


@router.get("/fee_schedules", responses=_ERRORS)
def list_fee_schedules(
    caller: CallerDep,
    db: DbDep,
    method: Annotated[str | None, Query(max_length=32)] = None,
    currency: CurrencyQuery = None,
) -> Response:
    """Every fee schedule of this mode, by method and currency (a method and currency without
    one charges no commission)."""
    if method is not None:
        check_method_name(method)
    with db.read() as session:
        rows = service.fee_schedules(session, caller, method=method, currency=_currency(currency))
        data = [render_fee_schedule(row) for row in rows]
    return json_response(200, dumps(page(data, False, "/v1/fee_schedules")))


@router.get("/fee_schedules/{method}/{currency}", response_model=FeeScheduleOut,
            responses=_ERRORS)  # fmt: skip
def retrieve_fee_schedule(method: str, currency: str, caller: CallerDep, db: DbDep) -> Response:
    """One method's schedule in one currency."""
    with db.read() as session:
        document = render_fee_schedule(service.get_fee_schedule(session, caller, method, currency))
    return json_response(200, dumps(document))


@router.delete("/fee_schedules/{method}/{currency}", responses=_ERRORS)
def delete_fee_schedule(method: str, currency: str, run: IdempotentDep) -> Response:
    """Delete a schedule: the method then charges no commission in that currency."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        service.delete_fee_schedule(session, run.caller, method, currency)
        return 200, {"object": "fee_schedule", "method": method,
                     "currency": normalize_currency(currency), "deleted": True}  # fmt: skip

    return run.run(handle)


@router.post("/exchange_rates", status_code=201, response_model=ExchangeRateOut,
             responses=_ERRORS)  # fmt: skip
def create_exchange_rate(body: ExchangeRateCreate, run: IdempotentDep) -> Response:
    """Set a rate: one `base` unit is worth `rate` `quote` units. Each call adds a rate; the
    newest of a pair applies to payments from then on."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        return 201, render_exchange_rate(service.create_rate(session, run.caller, body))

    return run.run(handle)


@router.get("/exchange_rates", responses=_ERRORS)
def list_exchange_rates(
    caller: CallerDep,
    db: DbDep,
    base: CurrencyQuery = None,
    quote: CurrencyQuery = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[str | None, Query(pattern=r"^xr_[0-9A-Z]{26}$")] = None,
) -> Response:
    """List rates, newest first; filter by `base` and `quote` (the first of a pair applies)."""
    query = service.rates(caller, base=_currency(base), quote=_currency(quote))
    with db.read() as session:
        rows, has_more = keyset_page(
            session, query, ExchangeRateRow.id, limit=limit, starting_after=starting_after
        )
        data = [render_exchange_rate(row) for row in rows]
    return json_response(200, dumps(page(data, has_more, "/v1/exchange_rates")))
