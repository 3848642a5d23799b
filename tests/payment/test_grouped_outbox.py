"""Group-committed creates and pays write each event's webhook deliveries after the event.

Deliveries reference their event; in a group commit the event rows are held back to the end of
the batch, so the deliveries must be too. A pay writes two events in each of its two units,
which is where an ORM flush of the first event's deliveries would come before the event row.
"""

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from quittance.db.uow import Database
from quittance.models import Event, WebhookDelivery, WebhookEndpoint
from tests.factories import Api
from tests.payment.helpers import DECLINED, SUCCEEDS


@pytest.fixture
def endpoint(papi: Api, db: Database) -> Iterator[str]:
    """An endpoint that takes every event; removed afterwards with its deliveries, so the
    webhook tests' dispatcher (same database) never sees them."""
    response = papi.post("/v1/webhook_endpoints", json={"url": "https://hooks.example/all"})
    assert response.status_code == 201, response.text
    endpoint_id = str(response.json()["id"])
    yield endpoint_id
    with db.write() as session:
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
        session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))


def _card(number: str) -> dict[str, Any]:
    card = {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    return {"payment_method": {"type": "card", "card": card}}


def _delivered(db: Database, merchant_id: str, endpoint_id: str) -> tuple[list[str], list[str]]:
    """The merchant's event ids and the event ids queued for the endpoint, both sorted."""
    with db.read() as session:
        events = session.scalars(select(Event.id).where(Event.merchant_id == merchant_id)).all()
        queued = session.scalars(
            select(WebhookDelivery.event_id).where(WebhookDelivery.endpoint_id == endpoint_id)
        ).all()
    return sorted(events), sorted(queued)


@pytest.mark.parametrize("number", [SUCCEEDS, DECLINED], ids=["succeeds", "declined"])
def test_a_pay_queues_one_delivery_per_event(
    papi: Api, db: Database, endpoint: str, number: str
) -> None:
    invoice = papi.create_invoice()
    paid = papi.post(f"/v1/invoices/{invoice['id']}/pay", json=_card(number))
    assert paid.status_code == 200, paid.text
    events, queued = _delivered(db, papi.merchant.id, endpoint)
    assert len(events) >= 4  # created, then two per unit of the pay
    assert queued == events


def test_concurrent_creates_and_pays_in_shared_batches_queue_one_delivery_per_event(
    papi: Api, db: Database, endpoint: str
) -> None:
    invoices = [papi.create_invoice() for _ in range(6)]  # the key is cached from here on

    async def together() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=papi.client.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=papi._headers(None)
        ) as client:
            pays = [
                client.post(f"/v1/invoices/{invoice['id']}/pay", json=_card(SUCCEEDS))
                for invoice in invoices
            ]
            creates = [
                client.post("/v1/invoices", json={"amount": 700, "currency": "EUR"})
                for _ in range(6)
            ]
            return list(await asyncio.gather(*pays, *creates))

    responses = asyncio.run(together())

    assert [r.status_code for r in responses] == [200] * 6 + [201] * 6
    assert all(r.json()["status"] == "succeeded" for r in responses[:6])
    events, queued = _delivered(db, papi.merchant.id, endpoint)
    assert len(events) == 6 + 6 * 4 + 6  # the six invoices, four events per pay, six creates
    assert queued == events
