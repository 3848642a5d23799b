"""Request bodies and JSON renderings of webhook endpoints, deliveries and attempts."""

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field
from pydantic_core import PydanticCustomError

from quittance import clock
from quittance.api.schemas import StrictModel, Url
from quittance.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

_EVENT_PATTERN = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$")
MAX_OVERLAP_SECONDS = 7 * 24 * 3600


def _event_types(value: list[str]) -> list[str]:
    for item in value:
        if len(item) > 64 or not _EVENT_PATTERN.match(item):
            raise PydanticCustomError(
                "invalid_event_filter",
                "Event types are names such as invoice.paid, prefixes such as invoice.*, or *.",
            )
    return list(dict.fromkeys(value))


EventTypes = Annotated[
    list[str],
    Field(min_length=1, max_length=100, examples=[["invoice.*"]]),
    AfterValidator(_event_types),
]


class WebhookEndpointCreate(StrictModel):
    url: Url = Field(description="Where events are POSTed; http or https")
    enabled_events: EventTypes = Field(
        default_factory=lambda: ["*"], description="Event types to send: names, `prefix.*`, `*`"
    )
    description: Annotated[str | None, Field(max_length=500)] = None


class WebhookEndpointUpdate(StrictModel):
    url: Url | None = None
    enabled_events: EventTypes | None = None
    description: Annotated[str | None, Field(max_length=500)] = None
    enabled: bool | None = Field(
        default=None, description="false pauses deliveries; true resumes them, oldest first"
    )


class SecretRotate(StrictModel):
    overlap_seconds: Annotated[int | None, Field(ge=0, le=MAX_OVERLAP_SECONDS)] = Field(
        default=None,
        description="How long the old secret keeps signing too (default: 24 hours)",
    )


def _time(value: datetime | None) -> str | None:
    return None if value is None else clock.isoformat(value)


def render_endpoint(
    endpoint: WebhookEndpoint, *, secret: bool = False, now: datetime | None = None
) -> dict[str, Any]:
    """Render an endpoint; the secret only when it has just been made (create, rotate)."""
    now = now or clock.now()
    overlapping = (
        endpoint.previous_secret is not None
        and endpoint.previous_secret_expires_at is not None
        and endpoint.previous_secret_expires_at > now
    )
    rendered: dict[str, Any] = {
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "livemode": endpoint.livemode,
        "url": endpoint.url,
        "description": endpoint.description,
        "enabled_events": endpoint.enabled_events,
        "status": "enabled" if endpoint.enabled else "disabled",
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": _time(endpoint.disabled_at),
        "failing_since": _time(endpoint.failing_since),
        "previous_secret_expires_at": (
            _time(endpoint.previous_secret_expires_at) if overlapping else None
        ),
        "created_at": clock.isoformat(endpoint.created_at),
        "updated_at": clock.isoformat(endpoint.updated_at),
    }
    if secret:
        rendered["secret"] = endpoint.secret
    return rendered


def render_attempt(attempt: WebhookAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "url": attempt.url,
        "outcome": attempt.outcome,
        "started_at": clock.isoformat(attempt.started_at),
        "duration_ms": attempt.duration_ms,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "response_body": attempt.response_body,
    }


def render_delivery(
    delivery: WebhookDelivery, attempts: list[WebhookAttempt] | None = None
) -> dict[str, Any]:
    """Render a delivery; its attempts (oldest first) when retrieved on its own."""
    rendered: dict[str, Any] = {
        "id": delivery.id,
        "object": "webhook_delivery",
        "livemode": delivery.livemode,
        "endpoint_id": delivery.endpoint_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempt_count": delivery.attempt_count,
        "next_attempt_at": _time(delivery.next_attempt_at),
        "last_attempt_at": _time(delivery.last_attempt_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "delivered_at": _time(delivery.delivered_at),
        "created_at": clock.isoformat(delivery.created_at),
    }
    if attempts is not None:
        rendered["attempts"] = [render_attempt(a) for a in attempts]
    return rendered


class WebhookEndpointOut(BaseModel):
    """The shape of an endpoint (for the OpenAPI document)."""

    id: str
    object: str = "webhook_endpoint"
    livemode: bool
    url: str
    description: str | None
    enabled_events: list[str]
    status: str
    disabled_reason: str | None
    disabled_at: str | None
    failing_since: str | None
    previous_secret_expires_at: str | None
    created_at: str
    updated_at: str
    secret: str | None = Field(default=None, description="Only in create and rotate answers")


class WebhookAttemptOut(BaseModel):
    number: int
    url: str
    outcome: str
    started_at: str
    duration_ms: int | None
    status_code: int | None
    error: str | None
    response_body: str | None


class WebhookDeliveryOut(BaseModel):
    """The shape of a delivery (for the OpenAPI document)."""

    id: str
    object: str = "webhook_delivery"
    livemode: bool
    endpoint_id: str
    event_id: str
    event_type: str
    status: str
    attempt_count: int
    next_attempt_at: str | None
    last_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: str | None
    created_at: str
    attempts: list[WebhookAttemptOut] | None = None
