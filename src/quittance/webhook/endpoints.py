"""`/v1/webhook_endpoints` and `/v1/webhook_deliveries`: endpoints, secrets, the delivery log."""

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session
from starlette.responses import Response

from quittance.api.deps import DbDep, SettingsDep
from quittance.api.responses import dumps, json_response, page
from quittance.auth.dependencies import CallerDep
from quittance.db.pagination import keyset_page
from quittance.idempotency.dependencies import IdempotentDep
from quittance.models import WebhookDelivery, WebhookEndpoint
from quittance.webhook import repository, service
from quittance.webhook.schemas import (
    SecretRotate,
    WebhookDeliveryOut,
    WebhookEndpointCreate,
    WebhookEndpointOut,
    WebhookEndpointUpdate,
    render_delivery,
    render_endpoint,
)

router = APIRouter(prefix="/v1", tags=["webhooks"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    404: {"description": "`webhook_endpoint_not_found`, `webhook_delivery_not_found`"},
    409: {"description": "`webhook_endpoint_disabled`, `webhook_endpoint_limit_reached`, "
                         "`idempotency_key_in_use`"},
    422: {"description": "Validation failed (`webhook_url_forbidden` for private, loopback or "
                         "link-local targets); `errors` lists each field with its code"},
}  # fmt: skip

EndpointCursor = Annotated[str | None, Query(pattern=r"^we_[0-9A-Z]{26}$")]
DeliveryCursor = Annotated[str | None, Query(pattern=r"^whd_[0-9A-Z]{26}$")]
Limit = Annotated[int, Query(ge=1, le=100)]


@router.post("/webhook_endpoints", status_code=201, response_model=WebhookEndpointOut,
             responses=_ERRORS)  # fmt: skip
def create_endpoint(
    body: WebhookEndpointCreate, run: IdempotentDep, settings: SettingsDep
) -> Response:
    """Create an endpoint; the answer holds its signing secret, shown this once."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        endpoint = service.create_endpoint(session, run.caller, body, settings)
        return 201, render_endpoint(endpoint, secret=True)

    return run.run(handle)


@router.get("/webhook_endpoints", responses=_ERRORS)
def list_endpoints(
    caller: CallerDep, db: DbDep, limit: Limit = 20, starting_after: EndpointCursor = None
) -> Response:
    """List endpoints, newest first."""
    query = repository.endpoints(caller)
    with db.read() as session:
        rows, has_more = keyset_page(
            session, query, WebhookEndpoint.id, limit=limit, starting_after=starting_after
        )
    data = [render_endpoint(endpoint) for endpoint in rows]
    return json_response(200, dumps(page(data, has_more, "/v1/webhook_endpoints")))


@router.get("/webhook_endpoints/{endpoint_id}", response_model=WebhookEndpointOut,
            responses=_ERRORS)  # fmt: skip
def retrieve_endpoint(endpoint_id: str, caller: CallerDep, db: DbDep) -> Response:
    """Retrieve an endpoint (without its secret)."""
    with db.read() as session:
        endpoint = service.get_endpoint(session, caller, endpoint_id)
    return json_response(200, dumps(render_endpoint(endpoint)))


@router.patch("/webhook_endpoints/{endpoint_id}", response_model=WebhookEndpointOut,
              responses=_ERRORS)  # fmt: skip
def update_endpoint(
    endpoint_id: str, body: WebhookEndpointUpdate, run: IdempotentDep, settings: SettingsDep
) -> Response:
    """Change the URL, event types or description; `enabled` pauses or resumes deliveries."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        endpoint = service.update_endpoint(session, run.caller, endpoint_id, body, settings)
        return 200, render_endpoint(endpoint)

    return run.run(handle)


@router.delete("/webhook_endpoints/{endpoint_id}", responses=_ERRORS)
def delete_endpoint(endpoint_id: str, run: IdempotentDep) -> Response:
    """Delete an endpoint, its queued deliveries and its delivery log."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        service.delete_endpoint(session, run.caller, endpoint_id)
        return 200, {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}

    return run.run(handle)


@router.post("/webhook_endpoints/{endpoint_id}/rotate_secret", response_model=WebhookEndpointOut,
             responses=_ERRORS)  # fmt: skip
def rotate_secret(
    endpoint_id: str, run: IdempotentDep, settings: SettingsDep, body: SecretRotate | None = None
) -> Response:
    """Make a new secret (shown this once); the old one also signs during the overlap."""
    seconds = body.overlap_seconds if body is not None else None
    overlap = settings.webhook_secret_overlap if seconds is None else timedelta(seconds=seconds)

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        endpoint = service.rotate_secret(session, run.caller, endpoint_id, overlap)
        return 200, render_endpoint(endpoint, secret=True)

    return run.run(handle)


@router.post("/webhook_endpoints/{endpoint_id}/test", status_code=202,
             response_model=WebhookDeliveryOut, responses=_ERRORS)  # fmt: skip
def send_test(endpoint_id: str, run: IdempotentDep) -> Response:
    """Queue a `webhook_endpoint.test` event for this endpoint; follow it in the delivery log."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        delivery = service.send_test(session, run.caller, endpoint_id)
        return 202, render_delivery(delivery)

    return run.run(handle)


@router.get("/webhook_deliveries", responses=_ERRORS)
def list_deliveries(
    caller: CallerDep,
    db: DbDep,
    endpoint_id: Annotated[str | None, Query(max_length=40)] = None,
    event_id: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(pattern=r"^(pending|succeeded|failed)$")] = None,
    limit: Limit = 20,
    starting_after: DeliveryCursor = None,
) -> Response:
    """List deliveries, newest first, by endpoint, event or status."""
    query = repository.deliveries(caller)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if event_id is not None:
        query = query.where(WebhookDelivery.event_id == event_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    with db.read() as session:
        rows, has_more = keyset_page(
            session, query, WebhookDelivery.id, limit=limit, starting_after=starting_after
        )
    data = [render_delivery(delivery) for delivery in rows]
    return json_response(200, dumps(page(data, has_more, "/v1/webhook_deliveries")))


@router.get("/webhook_deliveries/{delivery_id}", response_model=WebhookDeliveryOut,
            responses=_ERRORS)  # fmt: skip
def retrieve_delivery(delivery_id: str, caller: CallerDep, db: DbDep) -> Response:
    """Retrieve a delivery with every attempt: status code, duration, the answer's start."""
    with db.read() as session:
        delivery = service.get_delivery(session, caller, delivery_id)
        attempts = repository.attempts_of(session, delivery)
    return json_response(200, dumps(render_delivery(delivery, attempts)))


@router.post("/webhook_deliveries/{delivery_id}/redeliver", status_code=202,
             response_model=WebhookDeliveryOut, responses=_ERRORS)  # fmt: skip
def redeliver(delivery_id: str, run: IdempotentDep) -> Response:
    """Send a delivery again, with the same `webhook-id`, as soon as its turn comes."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        delivery = service.redeliver(session, run.caller, delivery_id)
        return 202, render_delivery(delivery)

    return run.run(handle)
