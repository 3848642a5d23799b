"""`/v1/events`: list and retrieve events."""

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from quittance.api.deps import DbDep
from quittance.api.responses import dumps, json_response, page
from quittance.auth.dependencies import CallerDep
from quittance.db.pagination import keyset_page
from quittance.event.service import get_event, list_query, render_event
from quittance.models import Event

router = APIRouter(prefix="/v1", tags=["events"])


@router.get("/events")
def list_events(
    caller: CallerDep,
    db: DbDep,
    type: Annotated[str | None, Query(max_length=64, description="e.g. invoice.expired")] = None,
    invoice_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[str | None, Query(pattern=r"^evt_[0-9A-Z]{26}$")] = None,
) -> Response:
    """List events, newest first."""
    query = list_query(caller.merchant_id, caller.livemode)
    if type is not None:
        query = query.where(Event.type == type)
    if invoice_id is not None:
        query = query.where(Event.invoice_id == invoice_id)
    with db.read() as session:
        rows, has_more = keyset_page(
            session, query, Event.id, limit=limit, starting_after=starting_after
        )
    data = [render_event(event) for event in rows]
    return json_response(200, dumps(page(data, has_more, "/v1/events")))


@router.get("/events/{event_id}")
def retrieve_event(event_id: str, caller: CallerDep, db: DbDep) -> Response:
    """Retrieve one event."""
    with db.read() as session:
        event = get_event(session, caller.merchant_id, caller.livemode, event_id)
        return json_response(200, dumps(render_event(event)))
