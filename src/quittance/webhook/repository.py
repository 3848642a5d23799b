"""Webhook queries. API queries are scoped to one merchant and mode; the dispatcher's are not."""

from datetime import datetime

from sqlalchemy import BindParameter, Exists, Select, delete, or_, select, update
from sqlalchemy.orm import Session, aliased

from quittance.auth.dependencies import Caller
from quittance.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from quittance.webhook.outbox import PENDING
from quittance.webhook.signing import generate_secret


def endpoints(caller: Caller) -> Select[WebhookEndpoint]:
    """The caller's endpoints; a deleted one is gone from the API's point of view."""
    return select(WebhookEndpoint).where(
        WebhookEndpoint.merchant_id == caller.merchant_id,
        WebhookEndpoint.livemode == caller.livemode,
        WebhookEndpoint.deleted_at.is_(None),
    )


def get_endpoint(
    session: Session, caller: Caller, endpoint_id: str, *, lock: bool = False
) -> WebhookEndpoint | None:
    query = endpoints(caller).where(WebhookEndpoint.id == endpoint_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).first()


def deliveries(caller: Caller) -> Select[WebhookDelivery]:
    """The caller's deliveries, but for those of deleted endpoints.

    Deleting an endpoint deletes its deliveries; one a stale process queued for it just after
    waits for the dispatcher's purge, and is not shown meanwhile.
    """
    deleted = select(WebhookEndpoint.id).where(
        WebhookEndpoint.merchant_id == caller.merchant_id,
        WebhookEndpoint.livemode == caller.livemode,
        WebhookEndpoint.deleted_at.is_not(None),
    )
    return select(WebhookDelivery).where(
        WebhookDelivery.merchant_id == caller.merchant_id,
        WebhookDelivery.livemode == caller.livemode,
        WebhookDelivery.endpoint_id.not_in(deleted),
    )


def get_delivery(
    session: Session, caller: Caller, delivery_id: str, *, lock: bool = False
) -> WebhookDelivery | None:
    query = deliveries(caller).where(WebhookDelivery.id == delivery_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).first()


def attempts_of(session: Session, delivery: WebhookDelivery) -> list[WebhookAttempt]:
    return list(
        session.scalars(
            select(WebhookAttempt)
            .where(
                WebhookAttempt.merchant_id == delivery.merchant_id,
                WebhookAttempt.delivery_id == delivery.id,
            )
            .order_by(WebhookAttempt.number)
        )
    )


def delete_endpoint(session: Session, endpoint: WebhookEndpoint, now: datetime) -> None:
    """Delete an endpoint's deliveries and their attempts; keep its row, disabled and deleted.

    The row stays so that a delivery another process queues for it from its cached endpoints
    (for a few seconds) satisfies the foreign key instead of failing that process's write;
    `purge_deleted` removes such deliveries. The endpoint is changed through the ORM, so the
    endpoints cache forgets the merchant's entry.
    """
    _delete_deliveries(session, endpoint.merchant_id, endpoint.id)
    endpoint.enabled = False  # for good: no read of a deleted endpoint can enable it again
    endpoint.deleted_at = now
    endpoint.updated_at = now
    # Nothing is signed for it again: its secrets are not kept (a new one, never shown, stands
    # in for the column that may not be empty).
    endpoint.secret = generate_secret()
    endpoint.previous_secret = None
    endpoint.previous_secret_expires_at = None


# Deleted endpoints that have deliveries again: driven from the endpoints (a small table), one
# index probe of the deliveries each. Put the other way round (deliveries whose endpoint is
# deleted), PostgreSQL may scan the whole delivery log.
_DELETED_WITH_DELIVERIES = select(WebhookEndpoint.merchant_id, WebhookEndpoint.id).where(
    WebhookEndpoint.deleted_at.is_not(None),
    select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == WebhookEndpoint.id).exists(),
)


def deleted_with_deliveries(session: Session) -> list[tuple[str, str]]:
    """(merchant id, endpoint id) of each deleted endpoint with deliveries (across merchants):
    queued by a process whose cached endpoints still named it."""
    return [(row[0], row[1]) for row in session.execute(_DELETED_WITH_DELIVERIES)]


def purge_deleted(session: Session, endpoints: list[tuple[str, str]]) -> int:
    """Delete the deliveries of these deleted endpoints, with any attempts; return how many."""
    return sum(_delete_deliveries(session, merchant_id, id_) for merchant_id, id_ in endpoints)


def _delete_deliveries(session: Session, merchant_id: str, endpoint_id: str) -> int:
    of_endpoint = select(WebhookDelivery.id).where(
        WebhookDelivery.merchant_id == merchant_id,
        WebhookDelivery.endpoint_id == endpoint_id,
    )
    session.execute(
        delete(WebhookAttempt).where(
            WebhookAttempt.merchant_id == merchant_id,
            WebhookAttempt.delivery_id.in_(of_endpoint),
        )
    )
    result = session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.merchant_id == merchant_id,
            WebhookDelivery.endpoint_id == endpoint_id,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _heads(now: datetime | BindParameter[datetime]) -> Select[WebhookDelivery]:
    oldest = aliased(WebhookDelivery)
    head_id = (
        select(oldest.id)
        .where(oldest.endpoint_id == WebhookEndpoint.id, oldest.status == PENDING)
        .order_by(oldest.id)
        .limit(1)
        .correlate(WebhookEndpoint)
        .scalar_subquery()
    )
    return (
        select(WebhookDelivery)
        .join(WebhookEndpoint, WebhookDelivery.id == head_id)
        .where(
            # Also leaves out deleted endpoints: deleting one disables it for good.
            WebhookEndpoint.enabled.is_(True),
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until <= now),
        )
    )


def any_due(now: datetime | BindParameter[datetime]) -> Exists:
    """Whether some endpoint's head is due at `now`: what `due_heads` would find, for a cheap
    read before taking any lock (the dispatcher's poll, the worker's look for due work)."""
    return _heads(now).with_only_columns(WebhookDelivery.id).exists()


def due_heads(session: Session, now: datetime, limit: int) -> list[WebhookDelivery]:
    """Lock the oldest pending delivery of each enabled endpoint, where it is due and free.

    Only an endpoint's oldest pending delivery (its head) may be sent, so a later one waits
    while an earlier one is retried; the cost is one index probe per enabled endpoint,
    however long the queues are. On PostgreSQL rows another worker holds are skipped.
    """
    query = (
        _heads(now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)
    )
    return list(session.scalars(query))


def followers(session: Session, head: WebhookDelivery, limit: int) -> list[WebhookDelivery]:
    """Lock the pending deliveries queued right after `head` on its endpoint, oldest first."""
    query = (
        select(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == head.endpoint_id,
            WebhookDelivery.status == PENDING,
            WebhookDelivery.id > head.id,
        )
        .order_by(WebhookDelivery.id)
        .limit(limit)
        .with_for_update()
    )
    return list(session.scalars(query))


def abandon_in_flight(session: Session, delivery_ids: list[str]) -> None:
    """Mark attempts whose worker died before recording a result."""
    if not delivery_ids:
        return
    session.execute(
        update(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids), WebhookAttempt.outcome == "in_flight")
        .values(outcome="abandoned", error="worker_lost")
    )
