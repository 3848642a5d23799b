"""Webhook fixtures: a loopback receiver, an app that may target it, and a dispatcher."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from standardwebhooks import Webhook

from quittance.app import create_app
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from quittance.webhook.dispatcher import Dispatcher
from tests.factories import Api, MerchantFactory
from tests.webhook.receiver import Received, Receiver


@pytest.fixture(scope="session")
def hook_settings(settings: Settings) -> Settings:
    """Test settings that let webhooks reach 127.0.0.1, with short timeouts."""
    return settings.model_copy(
        update={
            "webhook_allowed_hosts": ["127.0.0.1"],
            "webhook_timeout": 1.0,
            "webhook_concurrency": 4,
        }
    )


@pytest.fixture(scope="session")
def hook_client(hook_settings: Settings, db: Database) -> Iterator[TestClient]:
    app = create_app(hook_settings, db)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def hook_api(hook_client: TestClient, merchants: MerchantFactory, db: Database) -> Iterator[Api]:
    """A merchant whose endpoints may target loopback; they are disabled after the test."""
    api = Api(hook_client, merchants.create())
    yield api
    disable_endpoints(db, api.merchant.id)


def disable_endpoints(db: Database, merchant_id: str) -> None:
    """Disable the merchant's endpoints (so no later dispatcher round sends to them)."""
    with db.write() as session:
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.merchant_id == merchant_id)
            .values(enabled=False)
        )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.release()
    server.stop()


@pytest.fixture
def dispatcher(db: Database, hook_settings: Settings) -> Iterator[Dispatcher]:
    worker = Dispatcher(db, hook_settings)
    yield worker
    worker.close()


def create_endpoint(api: Api, url: str, **fields: Any) -> dict[str, Any]:
    response = api.post("/v1/webhook_endpoints", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def delete(api: Api, path: str) -> Any:
    return api.client.request("DELETE", path, headers=api._headers(None))


def verify(secret: str, request: Received) -> Any:
    """Check the signature with the standardwebhooks library's own verifier."""
    return Webhook(secret).verify(request.body, request.headers)


def signed_by(secret: str, request: Received) -> bool:
    """Whether one of the request's signatures is `secret`'s (any timestamp age)."""
    when = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(request.id, when, request.body.decode())
    return expected in request.headers["webhook-signature"].split(" ")


def deliveries_of(db: Database, endpoint_id: str) -> list[WebhookDelivery]:
    with db.read() as session:
        return list(
            session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.endpoint_id == endpoint_id)
                .order_by(WebhookDelivery.id)
            )
        )


def attempts_of(db: Database, delivery_id: str) -> list[WebhookAttempt]:
    with db.read() as session:
        return list(
            session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id == delivery_id)
                .order_by(WebhookAttempt.number)
            )
        )


def drain(dispatcher: Dispatcher, now: datetime | None = None, rounds: int = 50) -> int:
    """Run the dispatcher until a round sends nothing; return the attempts made."""
    total = 0
    for _ in range(rounds):
        sent = dispatcher.run_once(now)
        if not sent:
            break
        total += sent
    return total
