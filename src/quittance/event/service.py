"""Write and read events."""

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from quittance import clock
from quittance.db.rows import build, insert_rows
from quittance.domain.errors import NotFound
from quittance.domain.ids import new_ordered_id
from quittance.models import Event
from quittance.webhook.outbox import enqueue_deliveries


def record(
    session: Session,
    *,
    merchant_id: str,
    livemode: bool,
    type: str,
    data: dict[str, Any],
    invoice_id: str | None = None,
    previous_status: str | None = None,
    status: str | None = None,
    trigger: str | None = None,
) -> Event:
    """Write an event in the current unit of work (committed with the change it describes).

    The row is inserted at once through Core (events are never changed, so the ORM's unit of
    work has nothing to track). Its webhook deliveries, one per enabled endpoint that
    subscribes to it, are added to the same unit of work: the transactional outbox.
    """
    event = build(
        Event,
        id=new_ordered_id("evt"),
        merchant_id=merchant_id,
        livemode=livemode,
        type=type,
        invoice_id=invoice_id,
        previous_status=previous_status,
        status=status,
        trigger=trigger,
        data=data,
        created_at=clock.now(),
    )
    insert_rows(session, [event])
    enqueue_deliveries(session, event)
    return event


def render_event(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "object": "event",
        "type": event.type,
        "livemode": event.livemode,
        "created_at": clock.isoformat(event.created_at),
        "invoice_id": event.invoice_id,
        "previous_status": event.previous_status,
        "status": event.status,
        "trigger": event.trigger,
        "data": event.data,
    }


def list_query(merchant_id: str, livemode: bool) -> Select[Event]:
    return select(Event).where(Event.merchant_id == merchant_id, Event.livemode == livemode)


def get_event(session: Session, merchant_id: str, livemode: bool, event_id: str) -> Event:
    if not (event_id.startswith("evt_") and len(event_id) == 30 and event_id[4:].isalnum()):
        raise NotFound(f"No event {event_id!r} exists.", code="event_not_found")
    event = session.scalars(list_query(merchant_id, livemode).where(Event.id == event_id)).first()
    if event is None:
        raise NotFound(f"No event {event_id!r} exists.", code="event_not_found")
    return event
