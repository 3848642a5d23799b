"""The fast lane of POST /v1/invoices serves what the route would, and only that.

Each test records what the lane did with each request (served it, or passed it on to the
FastAPI route), and compares its answers and stored rows with the route's own, taken from an
app whose lane is switched off (`QUITTANCE_FAST_LANE=false`).
"""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update

from quittance import clock
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.invoice.fast_lane import CreateInvoiceLane
from quittance.merchant.service import create_api_key
from quittance.models import (
    ApiKey,
    Event,
    Invoice,
    InvoiceLineItem,
    WebhookDelivery,
    WebhookEndpoint,
)
from tests.api.helpers import assert_problem, unchanged
from tests.factories import Api, MerchantFactory, record_lane, route_only_client

# Differ between any two invoices, whichever path made them.
_VARYING = {"id", "created_at", "updated_at", "finalized_at", "expires_at", "redirect_url"}
_VARYING_COLUMNS = (_VARYING - {"redirect_url"}) | {"pay_token", "search_text"}

BODIES: list[dict[str, Any]] = [
    {"amount": 1999, "currency": "EUR"},
    {
        "amount": 250_000,
        "currency": "jpy",
        "reference": "order-7",
        "description": "Tea",
        "customer": {"email": "ada@example.com", "name": "Ada", "country": "de"},
        "return_url": "https://shop.example/back?status={status}",
        "lifetime": 3600,
        "attempts_limit": 2,
        "metadata": {"order": "7"},
    },
    {
        "currency": "KWD",
        "line_items": [
            {"description": "Dates", "quantity": 3, "unit_amount": 1234, "tax_rate": "7.5"},
            {"description": "Coffee", "unit_amount": 999},
        ],
    },
    {"amount": 500, "currency": "EUR", "status": "draft"},
]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the lane served each request it was offered (False: the route answered)."""
    return record_lane(monkeypatch, CreateInvoiceLane)


@pytest.fixture(scope="module")
def route_only(settings: Settings, db: Database) -> Iterator[TestClient]:
    """The same app with the lane switched off: every create takes the FastAPI route."""
    yield from route_only_client(settings, db)


def _comparable(document: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in document.items() if k not in _VARYING}
    kept["line_items"] = [{k: v for k, v in li.items() if k != "id"} for li in kept["line_items"]]
    return kept


def _stored(db: Database, invoice_id: str) -> dict[str, Any]:
    """The invoice's rows as stored, without what differs between any two invoices."""
    with db.read() as session:
        invoice = session.get(Invoice, invoice_id)
        assert invoice is not None
        row = {
            c.key: getattr(invoice, c.key)
            for c in Invoice.__mapper__.column_attrs
            if c.key not in _VARYING_COLUMNS
        }
        lines = [
            {
                c.key: getattr(li, c.key)
                for c in InvoiceLineItem.__mapper__.column_attrs
                if c.key not in {"id", "invoice_id"}
            }
            for li in session.scalars(
                select(InvoiceLineItem)
                .where(InvoiceLineItem.invoice_id == invoice_id)
                .order_by(InvoiceLineItem.position)
            )
        ]
        event_rows = session.scalars(select(Event).where(Event.invoice_id == invoice_id)).all()
        event_list = [
            (e.type, e.previous_status, e.status, e.trigger, _comparable(e.data["object"]))
            for e in event_rows
        ]
        deliveries = session.scalars(
            select(WebhookDelivery.endpoint_id).where(
                WebhookDelivery.event_id.in_([e.id for e in event_rows])
            )
        ).all()
    return {"invoice": row, "lines": lines, "events": event_list, "deliveries": deliveries}


@pytest.fixture
def hook(api: Api, db: Database) -> Iterator[dict[str, Any]]:
    """An enabled webhook endpoint; its deliveries are removed afterwards, so the webhook
    tests' dispatcher (same database) never sees them."""
    response = api.post("/v1/webhook_endpoints", json={"url": "https://hooks.example/q"})
    assert response.status_code == 201, response.text
    endpoint = dict(response.json())
    yield endpoint
    with db.write() as session:
        session.execute(
            delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint["id"])
        )
        session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint["id"]))


@pytest.mark.parametrize("body", BODIES, ids=["amount", "everything", "line_items", "draft"])
def test_the_lane_answers_and_stores_what_the_route_does(
    api: Api,
    route_only: TestClient,
    db: Database,
    served: list[bool],
    hook: dict[str, Any],
    body: dict[str, Any],
) -> None:
    via_route = route_only.post("/v1/invoices", json=body, headers=api._headers(None))
    assert via_route.status_code == 201, via_route.text
    via_lane = api.post("/v1/invoices", json=body)
    assert via_lane.status_code == 201, via_lane.text

    assert served == [True]  # the route-only app has no lane; this app's lane served
    assert via_lane.headers["content-type"] == via_route.headers["content-type"]
    assert via_lane.headers["x-request-id"].startswith("req_")
    assert _comparable(via_lane.json()) == _comparable(via_route.json())
    lane_rows = _stored(db, via_lane.json()["id"])
    assert lane_rows == _stored(db, via_route.json()["id"])
    assert lane_rows["deliveries"] == [hook["id"]]  # the outbox row is written too
    assert via_lane.json()["redirect_url"] != via_route.json()["redirect_url"]


def test_a_key_the_cache_does_not_know_is_read_by_the_lane_and_cached(
    client: TestClient, merchants: MerchantFactory, served: list[bool], db: Database
) -> None:
    api = Api(client, merchants.create())  # a brand-new key: not in the cache yet
    first = api.post("/v1/invoices", json={"amount": 100, "currency": "EUR"})
    with db.write() as session:  # revoked now: the cached key still works until it expires
        session.execute(
            update(ApiKey)
            .where(ApiKey.merchant_id == api.merchant.id)
            .values(revoked_at=clock.now())
        )
    second = api.post("/v1/invoices", json={"amount": 100, "currency": "EUR"})
    assert (first.status_code, second.status_code) == (201, 201)
    assert served == [True, True]
    client.app.state.key_cache.clear()  # as when it has expired: read again, and refused
    with unchanged(db, api.merchant.id):
        refused = api.post("/v1/invoices", json={"amount": 100, "currency": "EUR"})
    assert_problem(refused, 401, "invalid_api_key")
    assert served == [True, True, False]  # the route words the refusal


def test_what_the_lane_passes_on_is_answered_by_the_route(
    api: Api, db: Database, served: list[bool]
) -> None:
    api.create_invoice()  # the key is now cached
    served.clear()
    with db.write() as session:
        _, publishable = create_api_key(session, api.merchant.id, livemode=False, publishable=True)
    customer = api.post("/v1/customers", json={"email": "grace@example.com"}).json()["id"]

    with unchanged(db, api.merchant.id):
        bad_json = api.client.post(
            "/v1/invoices",
            content=b'{"amount": 1',
            headers={**api._headers(None), "Content-Type": "application/json"},
        )
        assert_problem(bad_json, 400, "invalid_json")
        assert_problem(api.post("/v1/invoices", json={"amount": 1}), 422, "field_required")
        assert_problem(
            api.post("/v1/invoices", json={"amount": 1, "currency": "EUR", "extra": 1}),
            422,
            "unknown_field",
        )
        assert_problem(
            api.client.post(
                "/v1/invoices",
                json={"amount": 1, "currency": "EUR"},
                headers={"Authorization": f"Bearer {publishable}"},
            ),
            401,
            "secret_key_required",
        )
        assert_problem(
            api.client.post(
                "/v1/invoices",
                json={"amount": 1, "currency": "EUR"},
                headers={"Authorization": "Bearer qk_test_" + "x" * 40},
            ),
            401,
            "invalid_api_key",
        )
    assert served == [False] * 5

    saved = api.post("/v1/invoices", json={"amount": 1, "currency": "EUR", "customer": customer})
    assert saved.status_code == 201, saved.text
    assert saved.json()["customer"]["email"] == "grace@example.com"
    bad_key = api.post(
        "/v1/invoices", json={"amount": 1, "currency": "EUR"}, headers={"Idempotency-Key": "a b"}
    )
    assert_problem(bad_key, 400, "idempotency_key_invalid")
    assert served == [False] * 7


def test_an_idempotency_key_is_claimed_stored_and_replayed_the_same_in_both(
    api: Api, db: Database, served: list[bool]
) -> None:
    fresh = Api(api.client, api.merchant)
    body = {"amount": 4200, "currency": "EUR", "reference": "keyed"}
    first = fresh.post("/v1/invoices", json=body, headers={"Idempotency-Key": "lane-1"})
    assert first.status_code == 201, first.text
    # ... and the lane replays it, byte for byte, and refuses another body under the same key.
    replay = fresh.post("/v1/invoices", json=body, headers={"Idempotency-Key": "lane-1"})
    with unchanged(db, api.merchant.id):
        reused = fresh.post(
            "/v1/invoices",
            json={**body, "amount": 4201},
            headers={"Idempotency-Key": "lane-1"},
        )
    # A new key through the lane: claimed, then stored with the answer.
    second = fresh.post("/v1/invoices", json=body, headers={"Idempotency-Key": "lane-2"})
    again = fresh.post("/v1/invoices", json=body, headers={"Idempotency-Key": "lane-2"})

    assert served == [True] * 5
    assert replay.status_code == 201 and replay.content == first.content
    assert replay.headers["idempotent-replayed"] == "true"
    assert_problem(reused, 422, "idempotency_key_reused")
    assert second.status_code == again.status_code == 201
    assert again.content == second.content and second.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in second.headers
    with db.read() as session:
        made = session.scalars(
            select(Invoice.id).where(
                Invoice.merchant_id == api.merchant.id, Invoice.reference == "keyed"
            )
        ).all()
    assert sorted(made) == sorted([first.json()["id"], second.json()["id"]])


def test_a_business_refusal_in_the_lane_is_the_routes_and_stores_nothing(
    api: Api, route_only: TestClient, db: Database, served: list[bool]
) -> None:
    api.create_invoice()
    served.clear()
    free = {"currency": "EUR", "line_items": [{"description": "Gift", "unit_amount": 0}]}
    with unchanged(db, api.merchant.id):
        via_lane = api.post("/v1/invoices", json=free)
        via_route = route_only.post("/v1/invoices", json=free, headers=api._headers(None))
    assert served == [True]
    body = assert_problem(via_lane, 422, "amount_not_positive")
    expected = via_route.json()
    assert {k: v for k, v in body.items() if k != "request_id"} == {
        k: v for k, v in expected.items() if k != "request_id"
    }
