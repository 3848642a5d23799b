"""API keys: who may call, and tenant and mode isolation of invoices and events."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from quittance.db.uow import Database
from quittance.merchant.service import create_api_key
from quittance.models import Event, Invoice
from tests.api.helpers import assert_problem, ids, unchanged
from tests.factories import Api, MerchantFactory

MISSING_INVOICE = "inv_01JD3Z7Q8W0000000000000000"
ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "/v1/invoices", None),
    ("POST", "/v1/invoices", {"amount": 1999, "currency": "EUR"}),
    ("GET", f"/v1/invoices/{MISSING_INVOICE}", None),
    ("PATCH", f"/v1/invoices/{MISSING_INVOICE}", {"reference": "x"}),
    ("POST", f"/v1/invoices/{MISSING_INVOICE}/finalize", None),
    ("POST", f"/v1/invoices/{MISSING_INVOICE}/cancel", None),
    ("GET", f"/v1/invoices/{MISSING_INVOICE}/events", None),
    ("POST", f"/v1/test_helpers/invoices/{MISSING_INVOICE}/expire", None),
    ("GET", "/v1/events", None),
    ("GET", "/v1/events/evt_01JD3Z7Q8W0000000000000000", None),
    ("GET", "/v1/settings/payment_options", None),
    ("PATCH", "/v1/settings/payment_options", {"attempts_limit": 2}),
]
ENDPOINT_IDS = [f"{method} {path}" for method, path, _ in ENDPOINTS]


def _count_all(db: Database) -> tuple[int, int]:
    with db.read() as session:
        invoices = session.scalar(select(func.count()).select_from(Invoice))
        events = session.scalar(select(func.count()).select_from(Event))
    return int(invoices or 0), int(events or 0)


def _call(client: TestClient, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_missing_key_is_401(
    client: TestClient, db: Database, method: str, path: str, body: Any
) -> None:
    before = _count_all(db)
    response = _call(client, method, path, body, {})
    assert_problem(response, 401, "authentication_required")
    assert response.headers["www-authenticate"] == "Bearer"
    assert _count_all(db) == before


BAD_AUTHORIZATION = [
    pytest.param("Bearer qk_test_" + "a" * 40, id="unknown-test-key"),
    pytest.param("Bearer qk_live_" + "b" * 40, id="unknown-live-key"),
    pytest.param("Bearer sk_test_123", id="foreign-format"),
    pytest.param("Bearer ", id="empty-bearer"),
    pytest.param("Basic dXNlcjpwYXNz", id="basic"),
    pytest.param("qk_test_" + "a" * 40, id="no-scheme"),
    pytest.param("Bearer qk_test_" + "a" * 100, id="too-long"),
]


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION)
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS[:2], ids=ENDPOINT_IDS[:2])
def test_wrong_key_is_401(
    client: TestClient, db: Database, method: str, path: str, body: Any, authorization: str
) -> None:
    before = _count_all(db)
    response = _call(client, method, path, body, {"Authorization": authorization})
    assert_problem(response, 401, "invalid_api_key")
    assert response.headers["www-authenticate"] == "Bearer"
    assert _count_all(db) == before


def test_authentication_comes_before_validation(client: TestClient, db: Database) -> None:
    before = _count_all(db)
    response = client.post("/v1/invoices", json={"amount": "x", "colour": "red"})
    body = assert_problem(response, 401, "authentication_required")
    assert "errors" not in body
    assert _count_all(db) == before


def test_bearer_scheme_is_case_insensitive(api: Api) -> None:
    response = api.client.get(
        "/v1/invoices", headers={"Authorization": f"bearer {api.merchant.test_key}"}
    )
    assert response.status_code == 200, response.text


def test_publishable_key_cannot_use_the_secret_api(
    client: TestClient, db: Database, merchants: MerchantFactory
) -> None:
    merchant = merchants.create()
    with db.write() as session:
        _, publishable = create_api_key(session, merchant.id, livemode=False, publishable=True)
    headers = {"Authorization": f"Bearer {publishable}"}
    with unchanged(db, merchant.id):
        response = client.post(
            "/v1/invoices", json={"amount": 1999, "currency": "EUR"}, headers=headers
        )
        assert_problem(response, 401, "secret_key_required")
        response = client.get("/v1/invoices", headers=headers)
        assert_problem(response, 401, "secret_key_required")


def _invoice_paths(invoice_id: str) -> list[tuple[str, str, Any]]:
    return [
        ("GET", f"/v1/invoices/{invoice_id}", None),
        ("GET", f"/v1/invoices/{invoice_id}/events", None),
        ("PATCH", f"/v1/invoices/{invoice_id}", {"reference": "stolen"}),
        ("PATCH", f"/v1/invoices/{invoice_id}", {"status": "cancelled"}),
        ("POST", f"/v1/invoices/{invoice_id}/finalize", None),
        ("POST", f"/v1/invoices/{invoice_id}/cancel", None),
        ("POST", f"/v1/test_helpers/invoices/{invoice_id}/expire", None),
    ]


def _request(api: Api, method: str, path: str, body: Any) -> Any:
    if method == "GET":
        return api.get(path)
    if method == "PATCH":
        return api.patch(path, json=body)
    return api.post(path, json=body)


@pytest.mark.parametrize("status", ["created", "draft"])
def test_test_key_cannot_touch_a_live_invoice(api: Api, db: Database, status: str) -> None:
    live_api = api.as_live()
    fields = {"status": "draft"} if status == "draft" else {}
    live = live_api.create_invoice(**fields)
    with unchanged(db, api.merchant.id):
        for method, path, body in _invoice_paths(live["id"]):
            response = _request(api, method, path, body)
            assert_problem(response, 404, "invoice_not_found")
    assert live_api.get(f"/v1/invoices/{live['id']}").json() == live


def test_live_key_cannot_touch_a_test_invoice(api: Api, db: Database) -> None:
    invoice = api.create_invoice(status="draft")
    live_api = api.as_live()
    with unchanged(db, api.merchant.id):
        for method, path, body in _invoice_paths(invoice["id"])[:-1]:
            response = _request(live_api, method, path, body)
            assert_problem(response, 404, "invoice_not_found")
    assert api.get(f"/v1/invoices/{invoice['id']}").json() == invoice


@pytest.mark.parametrize("status", ["created", "draft"])
def test_other_merchants_invoice_is_not_found(
    api: Api, client: TestClient, merchants: MerchantFactory, db: Database, status: str
) -> None:
    other = Api(client, merchants.create("Other Shop"))
    fields = {"status": "draft"} if status == "draft" else {}
    theirs = other.create_invoice(**fields)
    with unchanged(db, other.merchant.id), unchanged(db, api.merchant.id):
        for method, path, body in _invoice_paths(theirs["id"]):
            response = _request(api, method, path, body)
            assert_problem(response, 404, "invoice_not_found")
            # Nor with the merchant's live key.
            response = _request(api.as_live(), method, path, body)
            assert response.status_code == 404, (method, path, response.text)
    assert other.get(f"/v1/invoices/{theirs['id']}").json() == theirs


def test_lists_show_only_the_callers_merchant_and_mode(
    api: Api, client: TestClient, merchants: MerchantFactory
) -> None:
    other = Api(client, merchants.create("Other Shop"))
    live = api.as_live()
    mine = [api.create_invoice(reference="same-ref", customer={"email": "x@example.com"})["id"]
            for _ in range(2)]  # fmt: skip
    my_live = [live.create_invoice(reference="same-ref", customer={"email": "x@example.com"})["id"]]
    theirs = [other.create_invoice(reference="same-ref", customer={"email": "x@example.com"})["id"]]
    theirs_live = [other.as_live().create_invoice(reference="same-ref")["id"]]

    def newest_first(values: list[str]) -> list[str]:
        return sorted(values, reverse=True)

    for params in (
        {},
        {"reference": "same-ref"},
        {"q": "same-ref"},
        {"customer_email": "x@example.com"},
        {"status": "created"},
        {"currency": "EUR"},
        {"amount_gte": 1},
    ):
        assert ids(api.get("/v1/invoices", params=params)) == newest_first(mine), params
        assert ids(other.get("/v1/invoices", params=params)) == newest_first(theirs), params
    assert ids(live.get("/v1/invoices")) == my_live
    assert ids(other.as_live().get("/v1/invoices")) == theirs_live

    # A cursor naming someone else's invoice does not leak theirs into the page.
    for cursor in (theirs[0], my_live[0]):
        for key in ("starting_after", "ending_before"):
            page = ids(api.get("/v1/invoices", params={key: cursor}))
            assert set(page) <= set(mine), (key, cursor)


def test_events_show_only_the_callers_merchant_and_mode(
    api: Api, client: TestClient, merchants: MerchantFactory
) -> None:
    other = Api(client, merchants.create("Other Shop"))
    mine = api.create_invoice()
    api.post(f"/v1/invoices/{mine['id']}/cancel")
    live = api.as_live().create_invoice()
    theirs = other.create_invoice()

    my_events = api.get("/v1/events").json()["data"]
    assert {e["invoice_id"] for e in my_events} == {mine["id"]}
    assert len(my_events) == 2
    assert all(e["livemode"] is False for e in my_events)

    live_events = api.as_live().get("/v1/events").json()["data"]
    assert [(e["invoice_id"], e["livemode"]) for e in live_events] == [(live["id"], True)]

    their_events = other.get("/v1/events").json()["data"]
    assert [e["invoice_id"] for e in their_events] == [theirs["id"]]

    # Filtering by someone else's invoice shows nothing.
    for invoice_id in (theirs["id"], live["id"]):
        assert api.get("/v1/events", params={"invoice_id": invoice_id}).json()["data"] == []

    # Retrieving someone else's event, or one of the other mode, is 404.
    for event_id, caller in (
        (their_events[0]["id"], api),
        (live_events[0]["id"], api),
        (my_events[0]["id"], other),
        (my_events[0]["id"], api.as_live()),
    ):
        response = caller.get(f"/v1/events/{event_id}")
        assert_problem(response, 404, "event_not_found")
