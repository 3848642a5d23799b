"""The transactional outbox: one delivery row per matching endpoint, written with the event.

`enqueue_deliveries` runs inside `events.record`, in the caller's unit of work, so an event
and its deliveries are committed together with the change that caused them, or not at all.
"""

import os
import threading
import time
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from quittance.models import Event, WebhookDelivery, WebhookEndpoint

PENDING: Final = "pending"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"

# Sent only to the endpoint it tests, never fanned out.
TEST_EVENT: Final = "webhook_endpoint.test"

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last = 0


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))


def new_delivery_id() -> str:
    """Return a `whd_` id greater than every one this process made before.

    Same shape as `domain.ids.new_id` (48 bits of milliseconds, 80 random bits), but two ids
    made in the same millisecond still sort in the order they were made, which is the order
    an endpoint receives its deliveries in.
    """
    global _last
    with _lock:
        value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
        if value <= _last:
            value = _last + 1
        _last = value
    return f"whd_{_encode(value)}"


def matches(patterns: list[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to `patterns` receives events of `event_type`."""
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def enqueue_deliveries(session: Session, event: Event) -> list[WebhookDelivery]:
    """Add a pending delivery of `event` for each enabled endpoint that subscribes to it."""
    if event.type == TEST_EVENT:
        return []
    endpoints = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.enabled_events)
        .where(
            WebhookEndpoint.merchant_id == event.merchant_id,
            WebhookEndpoint.livemode == event.livemode,
            WebhookEndpoint.enabled.is_(True),
        )
        .order_by(WebhookEndpoint.id)
    ).all()
    deliveries = [
        new_delivery(event, endpoint_id)
        for endpoint_id, patterns in endpoints
        if matches(patterns, event.type)
    ]
    session.add_all(deliveries)
    return deliveries


def new_delivery(event: Event, endpoint_id: str) -> WebhookDelivery:
    """A pending delivery of `event` to one endpoint, due at once."""
    return WebhookDelivery(
        id=new_delivery_id(),
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
