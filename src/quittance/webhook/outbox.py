"""The transactional outbox: one delivery row per matching endpoint, written with the event.

`enqueue_deliveries` runs inside `events.record`, in the caller's unit of work, so an event
and its deliveries are committed together with the change that caused them, or not at all.

The merchant's enabled endpoints come from a process-wide `MerchantCache` (5 seconds, per
merchant and mode), so a unit of work normally runs no endpoint SELECT at all. A change to an
endpoint made through this process is seen by the next event (the cache is forgotten when the
change is flushed and again once committed); other processes see it within the cache's ttl. A
transaction that wrote an endpoint reads its own view instead (never cached across processes:
it may roll back).

A stale entry may name an endpoint another process has just deleted: deleting one keeps its
row (disabled, `deleted_at` set), so the delivery queued for it still satisfies the foreign
key and the write succeeds; the dispatcher never sends it (the endpoint is disabled) and
purges it (`repository.purge_deleted`).
"""

from collections.abc import Sequence
from typing import Final, cast

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from quittance.db.cache import MISSING, MerchantCache
from quittance.db.rows import insert_rows
from quittance.domain.ids import new_ordered_id
from quittance.models import Event, WebhookDelivery, WebhookEndpoint

PENDING: Final = "pending"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"

# Sent only to the endpoint it tests, never fanned out.
TEST_EVENT: Final = "webhook_endpoint.test"


def matches(patterns: Sequence[str], event_type: str) -> bool:
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
        WebhookEndpoint.deleted_at.is_(None),  # implied by `enabled`; lets the index skip them
    )
    .order_by(WebhookEndpoint.id)
)

# (endpoint id, its event patterns) per enabled endpoint, in id order; tuples, because one
# value is shared by every thread of the process.
Endpoints = tuple[tuple[str, tuple[str, ...]], ...]

# The enabled endpoints per merchant and mode, so the hot paths read no endpoint rows. Every
# write of an endpoint goes through the ORM (the mapper events forget the merchant's entry);
# a write that bypassed it would have to call `endpoints_cache.forget` itself.
endpoints_cache: MerchantCache[Endpoints] = MerchantCache("webhook_endpoints", WebhookEndpoint)
ENDPOINTS_KEY: Final = "enabled"  # the one value kept per merchant and mode


def _read(session: Session, merchant_id: str, livemode: bool) -> Endpoints:
    # A plain Core read: the ORM's execution path would cost more than the query.
    rows = session.connection().execute(
        _ENABLED_ENDPOINTS, {"merchant_id": merchant_id, "livemode": livemode}
    )
    return tuple((row[0], tuple(row[1])) for row in rows)


def _enabled_endpoints(session: Session, merchant_id: str, livemode: bool) -> Endpoints:
    """The enabled endpoints: from the process cache, or read (and cached) when it has none.

    Pending endpoint changes are flushed first. A unit of work that wrote an endpoint reads
    its own view of them instead, each time (that is rare), since another thread may
    meanwhile cache the committed rows this transaction has changed.
    """
    session.flush()
    if endpoints_cache.written_in(session):
        return _read(session, merchant_id, livemode)
    cached = endpoints_cache.get(merchant_id, livemode, ENDPOINTS_KEY)
    if cached is not MISSING:
        return cast(Endpoints, cached)
    generation = endpoints_cache.generation
    value = _read(session, merchant_id, livemode)
    endpoints_cache.put(session, merchant_id, livemode, ENDPOINTS_KEY, value, generation)
    return value


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
