"""Webhook endpoint and delivery use cases. Services take a session and never commit."""

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quittance import clock
from quittance.auth.dependencies import Caller
from quittance.config import Settings
from quittance.domain.errors import Conflict, NotFound, ValidationFailed
from quittance.domain.ids import new_id
from quittance.event import service as events
from quittance.models import WebhookDelivery, WebhookEndpoint
from quittance.webhook import repository, signing, ssrf
from quittance.webhook.outbox import PENDING, TEST_EVENT, new_delivery
from quittance.webhook.schemas import WebhookEndpointCreate, WebhookEndpointUpdate, render_endpoint

MAX_ENDPOINTS = 16  # per merchant and mode
DISABLED_EVENT = "webhook_endpoint.disabled"


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"


class WebhookDeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"


class WebhookEndpointDisabled(Conflict):
    code = "webhook_endpoint_disabled"
    title = "The webhook endpoint is disabled"


class WebhookEndpointLimitReached(Conflict):
    code = "webhook_endpoint_limit_reached"
    title = "Too many webhook endpoints"


class WebhookUrlForbidden(ValidationFailed):
    code = "webhook_url_forbidden"
    title = "Webhooks cannot be sent to this URL"

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            code=self.code,
            errors=[{"field": "url", "code": self.code, "message": message}],
        )


def check_url(url: str, settings: Settings) -> None:
    """Refuse URLs the SSRF guard forbids (a host that does not resolve yet passes)."""
    try:
        ssrf.check_url(url, settings, strict=False)
    except ssrf.UrlForbidden as exc:
        raise WebhookUrlForbidden(
            f"{exc} Webhooks are not sent to private, loopback or link-local addresses."
        ) from None
    except ssrf.UrlUnresolvable as exc:  # pragma: no cover - strict=False lets these pass
        raise WebhookUrlForbidden(str(exc)) from None


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during an overlap."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret is not None and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def get_endpoint(
    session: Session, caller: Caller, endpoint_id: str, *, lock: bool = False
) -> WebhookEndpoint:
    endpoint = repository.get_endpoint(session, caller, endpoint_id, lock=lock)
    if endpoint is None:
        raise WebhookEndpointNotFound(f"No webhook endpoint {endpoint_id!r} exists.")
    return endpoint


def get_delivery(
    session: Session, caller: Caller, delivery_id: str, *, lock: bool = False
) -> WebhookDelivery:
    delivery = repository.get_delivery(session, caller, delivery_id, lock=lock)
    if delivery is None:
        raise WebhookDeliveryNotFound(f"No webhook delivery {delivery_id!r} exists.")
    return delivery


def create_endpoint(
    session: Session, caller: Caller, data: WebhookEndpointCreate, settings: Settings
) -> WebhookEndpoint:
    """Create an enabled endpoint with a new signing secret."""
    check_url(data.url, settings)
    count = session.scalar(
        select(func.count()).select_from(repository.endpoints(caller).subquery())
    )
    if (count or 0) >= MAX_ENDPOINTS:
        raise WebhookEndpointLimitReached(
            f"A merchant may have at most {MAX_ENDPOINTS} webhook endpoints in each mode."
        )
    now = clock.now()
    endpoint = WebhookEndpoint(
        id=new_id("we"),
        merchant_id=caller.merchant_id,
        livemode=caller.livemode,
        url=data.url,
        description=data.description,
        enabled_events=data.enabled_events,
        enabled=True,
        secret=signing.generate_secret(),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    return endpoint


def update_endpoint(
    session: Session,
    caller: Caller,
    endpoint_id: str,
    data: WebhookEndpointUpdate,
    settings: Settings,
) -> WebhookEndpoint:
    """Change the URL, the event types or the description; pause or resume deliveries."""
    endpoint = get_endpoint(session, caller, endpoint_id, lock=True)
    fields = data.model_fields_set
    now = clock.now()
    if "url" in fields and data.url is not None:
        check_url(data.url, settings)
        endpoint.url = data.url
    if "enabled_events" in fields and data.enabled_events is not None:
        endpoint.enabled_events = data.enabled_events
    if "description" in fields:
        endpoint.description = data.description
    if "enabled" in fields and data.enabled is not None and data.enabled != endpoint.enabled:
        endpoint.enabled = data.enabled
        endpoint.disabled_reason = None if data.enabled else "manual"
        endpoint.disabled_at = None if data.enabled else now
        endpoint.failing_since = None
    endpoint.updated_at = now
    return endpoint


def delete_endpoint(session: Session, caller: Caller, endpoint_id: str) -> None:
    """Delete an endpoint, its queued deliveries and its delivery log.

    Its row stays, disabled and marked deleted, and is left out of every read: see
    `repository.delete_endpoint`.
    """
    endpoint = get_endpoint(session, caller, endpoint_id, lock=True)
    repository.delete_endpoint(session, endpoint, clock.now())


def rotate_secret(
    session: Session, caller: Caller, endpoint_id: str, overlap: timedelta
) -> WebhookEndpoint:
    """Give the endpoint a new secret; the old one keeps signing for `overlap`."""
    endpoint = get_endpoint(session, caller, endpoint_id, lock=True)
    now = clock.now()
    endpoint.previous_secret = endpoint.secret if overlap > timedelta(0) else None
    endpoint.previous_secret_expires_at = now + overlap if overlap > timedelta(0) else None
    endpoint.secret = signing.generate_secret()
    endpoint.updated_at = now
    return endpoint


def send_test(session: Session, caller: Caller, endpoint_id: str) -> WebhookDelivery:
    """Queue a `webhook_endpoint.test` event for this endpoint alone."""
    endpoint = get_endpoint(session, caller, endpoint_id)
    if not endpoint.enabled:
        raise WebhookEndpointDisabled("Enable the endpoint before sending it a test event.")
    event = events.record(
        session,
        merchant_id=endpoint.merchant_id,
        livemode=endpoint.livemode,
        type=TEST_EVENT,
        data={"object": render_endpoint(endpoint)},
    )
    delivery = new_delivery(event, endpoint.id)
    session.add(delivery)
    return delivery


def redeliver(session: Session, caller: Caller, delivery_id: str) -> WebhookDelivery:
    """Send a delivery again now (same `webhook-id`), whatever became of it before."""
    delivery = get_delivery(session, caller, delivery_id, lock=True)
    endpoint = get_endpoint(session, caller, delivery.endpoint_id)
    if not endpoint.enabled:
        raise WebhookEndpointDisabled("Enable the endpoint before redelivering to it.")
    now = clock.now()
    in_flight = delivery.locked_until is not None and delivery.locked_until > now
    if not in_flight:
        delivery.status = PENDING
        delivery.next_attempt_at = now
        delivery.delivered_at = None
        delivery.updated_at = now
    return delivery


def disable_endpoint(
    session: Session, endpoint: WebhookEndpoint, reason: str, now: datetime, detail: str
) -> None:
    """Disable an endpoint that cannot take deliveries, and tell the merchant with an event."""
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.disabled_at = now
    endpoint.updated_at = now
    session.flush()  # the event's fan-out must not pick this endpoint
    events.record(
        session,
        merchant_id=endpoint.merchant_id,
        livemode=endpoint.livemode,
        type=DISABLED_EVENT,
        data={"object": render_endpoint(endpoint, now=now), "reason": reason, "detail": detail},
    )
