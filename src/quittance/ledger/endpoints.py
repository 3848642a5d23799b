"""`/v1/ledger`: balances and transactions with their entries (DESIGN §11); read-only."""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from quittance.api.deps import DbDep
from quittance.api.responses import dumps, json_response, page
from quittance.auth.dependencies import CallerDep
from quittance.db.pagination import keyset_page, one_cursor
from quittance.ledger import repository
from quittance.ledger.repository import render_transaction
from quittance.models import LedgerTransaction

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key (`authentication_required`, "
                         "`invalid_api_key`)"},
    404: {"description": "`ledger_transaction_not_found`"},
    422: {"description": "Validation failed; `errors` lists each field with its code"},
}  # fmt: skip
Cursor = Annotated[str | None, Query(pattern=r"^ltx_[0-9A-Z]{26}$")]


@router.get("/balances", responses=_ERRORS)
def list_balances(caller: CallerDep, db: DbDep) -> Response:
    """List the balance of each account and currency: the sum of its entries (debit +)."""
    with db.read() as session:
        rows = repository.balances(session, caller)
    data = [
        {"object": "ledger_balance", "livemode": caller.livemode, "account": account,
         "currency": currency, "balance": balance}
        for account, currency, balance in rows
    ]  # fmt: skip
    return json_response(200, dumps(page(data, False, "/v1/ledger/balances")))


@router.get("/transactions", responses=_ERRORS)
def list_transactions(
    caller: CallerDep,
    db: DbDep,
    invoice: Annotated[
        str | None, Query(pattern=r"^inv_[0-9A-Z]{26}$", description="An invoice's id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Cursor = None,
    ending_before: Cursor = None,
) -> Response:
    """List ledger transactions with their entries, newest first, with cursor pagination."""
    one_cursor(starting_after, ending_before)
    with db.read() as session:
        rows, has_more = keyset_page(
            session,
            repository.transactions(caller, invoice),
            LedgerTransaction.id,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        entries = repository.entries_of(session, caller, [row.id for row in rows])
    data = [render_transaction(row, entries[row.id]) for row in rows]
    body = page(data, has_more, "/v1/ledger/transactions", backwards=ending_before is not None)
    return json_response(200, dumps(body))


@router.get("/transactions/{transaction_id}", responses=_ERRORS)
def retrieve_transaction(transaction_id: str, caller: CallerDep, db: DbDep) -> Response:
    """Retrieve a ledger transaction with its entries."""
    with db.read() as session:
        row = repository.get_transaction(session, caller, transaction_id)
        entries = repository.entries_of(session, caller, [row.id])[row.id]
    return json_response(200, dumps(render_transaction(row, entries)))
