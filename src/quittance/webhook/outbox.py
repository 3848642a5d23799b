"""The transactional outbox: one delivery row per matching endpoint, written with the event.

`enqueue_deliveries` runs inside `events.record`, in the caller's unit of work, so an event
and its deliveries are committed together with the change that caused them, or not at all.
"""

from itertools import chain
from typing import Final

from sqlalchemy import bindparam, select
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from quittance.db.rows import insert_rows
from quittance.domain.ids import new_ordered_id
from quittance.models import Event, WebhookDelivery, WebhookEndpoint

PENDING: Final = "pending"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"

# Sent only to the endpoint it tests, never fanned out.
TEST_EVENT: Final = "webhook_endpoint.test"


def matches(patterns: list[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to `patterns` receives events of `event_type`."""
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


_ENABLED_ENDPOINTS = (
    select(WebhookEndpoint.id, WebhookEndpoint.enabled_events)
    .where(
        WebhookEndpoint.merchant_id == bindparam("merchant_id"),
        WebhookEndpoint.livemode == bindparam("livemode"),
        WebhookEndpoint.enabled.is_(True),
    )
    .order_by(WebhookEndpoint.id)
)


_CACHE = "quittance_webhook_endpoints"


def _enabled_endpoints(
    session: Session, merchant_id: str, livemode: bool
) -> list[tuple[str, list[str]]]:
    """The enabled endpoints, read once per unit of work (several events share the read).

    Pending endpoint changes are flushed first, and a flush that changes an endpoint drops
    what was read, so the read always reflects the transaction's own changes.
    """
    session.flush()
    cache: dict[tuple[str, bool], list[tuple[str, list[str]]]] = session.info.setdefault(_CACHE, {})
    key = (merchant_id, livemode)
    if key not in cache:
        # A plain Core read: the ORM's execution path would cost more than the query.
        rows = session.connection().execute(
            _ENABLED_ENDPOINTS, {"merchant_id": merchant_id, "livemode": livemode}
        )
        cache[key] = [(row[0], list(row[1])) for row in rows]
    return cache[key]


@sa_event.listens_for(Session, "after_flush")
def _forget_endpoints(session: Session, _context: object) -> None:
    if _CACHE in session.info and any(
        isinstance(obj, WebhookEndpoint)
        for obj in chain(session.new, session.dirty, session.deleted)
    ):
        del session.info[_CACHE]


def enqueue_deliveries(session: Session, event: Event) -> list[WebhookDelivery]:
    """Add a pending delivery of `event` for each enabled endpoint that subscribes to it."""
    if event.type == TEST_EVENT:
        return []
    endpoints = _enabled_endpoints(session, event.merchant_id, event.livemode)
    deliveries = [
        new_delivery(event, endpoint_id)
        for endpoint_id, patterns in endpoints
        if matches(patterns, event.type)
    ]
    # Appended like the event itself (`db/rows.insert_rows`), so in a group commit they are
    # sent after it: an ORM flush of them could run before the held-back event row exists.
    insert_rows(session, deliveries)
    return deliveries


def new_delivery(event: Event, endpoint_id: str) -> WebhookDelivery:
    """A pending delivery of `event` to one endpoint, due at once."""
    return WebhookDelivery(
        id=new_ordered_id("whd"),
        merchant_id=event.merchant_id,
        livemode=event.livemode,
        endpoint_id=endpoint_id,
        event_id=event.id,
        event_type=event.type,
        status=PENDING,
        attempt_count=0,
        next_attempt_at=event.created_at,
        created_at=event.created_at,
        updated_at=event.created_at,
    )
