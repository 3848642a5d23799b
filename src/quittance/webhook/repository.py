"""Webhook queries. API queries are scoped to one merchant and mode; the dispatcher's are not."""

from datetime import datetime

from sqlalchemy import BindParameter, Select, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session, aliased

from quittance.auth.dependencies import Caller
from quittance.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from quittance.webhook.outbox import PENDING


def endpoints(caller: Caller) -> Select[WebhookEndpoint]:
    return select(WebhookEndpoint).where(
        WebhookEndpoint.merchant_id == caller.merchant_id,
        WebhookEndpoint.livemode == caller.livemode,
    )


def get_endpoint(
    session: Session, caller: Caller, endpoint_id: str, *, lock: bool = False
) -> WebhookEndpoint | None:
    query = endpoints(caller).where(WebhookEndpoint.id == endpoint_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).first()


def deliveries(caller: Caller) -> Select[WebhookDelivery]:
    return select(WebhookDelivery).where(
        WebhookDelivery.merchant_id == caller.merchant_id,
        WebhookDelivery.livemode == caller.livemode,
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


def delete_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its deliveries and their attempts."""
    of_endpoint = select(WebhookDelivery.id).where(
        WebhookDelivery.merchant_id == endpoint.merchant_id,
        WebhookDelivery.endpoint_id == endpoint.id,
    )
    session.execute(
        delete(WebhookAttempt).where(
            WebhookAttempt.merchant_id == endpoint.merchant_id,
            WebhookAttempt.delivery_id.in_(of_endpoint),
        )
    )
    session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.merchant_id == endpoint.merchant_id,
            WebhookDelivery.endpoint_id == endpoint.id,
        )
    )
    session.delete(endpoint)


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
            WebhookEndpoint.enabled.is_(True),
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until <= now),
        )
    )


# Built once: the worker polls with it several times a second, and building the statement
# (an aliased, correlated subquery) costs more than running it on an empty queue.
_ANY_DUE = _heads(bindparam("now")).with_only_columns(WebhookDelivery.id).limit(1)


def any_due(session: Session, now: datetime) -> bool:
    """Whether some endpoint's head is due: a cheap read before taking any lock."""
    return session.scalar(_ANY_DUE, {"now": now}) is not None


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
