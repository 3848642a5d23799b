"""The endpoints API: create (secret shown once), list, update, delete, rotate, test.

A deleted endpoint's row stays behind (disabled, `deleted_at` set), but the API never shows
it: every operation on it answers 404, and its queue and log are gone.
"""

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from quittance.db.uow import Database
from quittance.models import WebhookDelivery, WebhookEndpoint
from quittance.webhook import ssrf
from quittance.webhook.dispatcher import Dispatcher
from quittance.webhook.service import MAX_ENDPOINTS
from tests.factories import Api, snapshot
from tests.webhook.conftest import attempts_of, create_endpoint, delete, deliveries_of, drain
from tests.webhook.receiver import Receiver


def endpoint_count(db: Database, merchant_id: str) -> int:
    with db.read() as session:
        return int(
            session.scalar(select(func.count()).where(WebhookEndpoint.merchant_id == merchant_id))
            or 0
        )


def stored(db: Database, merchant_id: str) -> dict[str, Any]:
    with db.read() as session:
        endpoints = session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.merchant_id == merchant_id)
        ).all()
        deliveries = session.scalar(
            select(func.count()).where(WebhookDelivery.merchant_id == merchant_id)
        )
    return {
        **snapshot(db, merchant_id),
        "endpoints": [
            {c.key: getattr(e, c.key) for c in WebhookEndpoint.__mapper__.column_attrs}
            for e in endpoints
        ],
        "deliveries": deliveries,
    }


def test_create_shows_the_secret_once(hook_api: Api, receiver: Receiver) -> None:
    created = create_endpoint(
        hook_api, receiver.url, enabled_events=["invoice.*"], description="orders"
    )
    assert created["id"].startswith("we_")
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["status"] == "enabled"
    assert created["enabled_events"] == ["invoice.*"]
    assert created["livemode"] is False
    fetched = hook_api.get(f"/v1/webhook_endpoints/{created['id']}")
    assert fetched.status_code == 200
    body = fetched.json()
    assert "secret" not in body
    assert body == {k: v for k, v in created.items() if k != "secret"}
    listed = hook_api.get("/v1/webhook_endpoints").json()
    assert [e["id"] for e in listed["data"]] == [created["id"]]
    assert all("secret" not in e for e in listed["data"])


def test_default_subscription_is_every_event(hook_api: Api, receiver: Receiver) -> None:
    assert create_endpoint(hook_api, receiver.url)["enabled_events"] == ["*"]


def test_update_url_events_and_enabled(hook_api: Api, receiver: Receiver) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    path = f"/v1/webhook_endpoints/{endpoint['id']}"
    other = Receiver()
    response = hook_api.patch(
        path, json={"url": other.url, "enabled_events": ["invoice.paid"], "description": "new"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["url"] == other.url
    assert response.json()["enabled_events"] == ["invoice.paid"]
    assert "secret" not in response.json()
    disabled = hook_api.patch(path, json={"enabled": False}).json()
    assert (disabled["status"], disabled["disabled_reason"]) == ("disabled", "manual")
    assert disabled["disabled_at"] is not None
    enabled = hook_api.patch(path, json={"enabled": True}).json()
    assert (enabled["status"], enabled["disabled_reason"], enabled["disabled_at"]) == (
        "enabled",
        None,
        None,
    )


def test_delete_removes_endpoint_and_its_log(
    hook_api: Api, receiver: Receiver, db: Database
) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    hook_api.create_invoice()
    response = delete(hook_api, f"/v1/webhook_endpoints/{endpoint['id']}")
    assert response.status_code == 200
    assert response.json() == {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}
    assert hook_api.get(f"/v1/webhook_endpoints/{endpoint['id']}").status_code == 404
    with db.read() as session:
        left = session.scalar(
            select(func.count()).where(WebhookDelivery.endpoint_id == endpoint["id"])
        )
    assert left == 0
    again = delete(hook_api, f"/v1/webhook_endpoints/{endpoint['id']}")
    assert again.status_code == 404
    assert again.json()["code"] == "webhook_endpoint_not_found"


def test_rotate_secret_returns_a_new_secret_with_an_overlap(
    hook_api: Api, receiver: Receiver
) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    rotated = hook_api.post(f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret")
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != endpoint["secret"]
    assert body["previous_secret_expires_at"] is not None
    now_only = hook_api.post(
        f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", json={"overlap_seconds": 0}
    )
    assert now_only.status_code == 200
    assert now_only.json()["previous_secret_expires_at"] is None
    too_long = hook_api.post(
        f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret",
        json={"overlap_seconds": 8 * 86400},
    )
    assert too_long.status_code == 422
    assert too_long.json()["code"] == "out_of_range"


def test_send_test_event_queues_one_delivery(
    hook_api: Api, receiver: Receiver, db: Database
) -> None:
    target = create_endpoint(hook_api, receiver.url)
    bystander = create_endpoint(hook_api, receiver.url)
    response = hook_api.post(f"/v1/webhook_endpoints/{target['id']}/test")
    assert response.status_code == 202, response.text
    delivery = response.json()
    assert delivery["object"] == "webhook_delivery"
    assert delivery["event_type"] == "webhook_endpoint.test"
    assert delivery["endpoint_id"] == target["id"]
    assert delivery["status"] == "pending"
    with db.read() as session:
        count = session.scalar(
            select(func.count()).where(WebhookDelivery.endpoint_id == bystander["id"])
        )
    assert count == 0


def test_idempotent_create_replays_the_same_secret(
    hook_api: Api, receiver: Receiver, db: Database
) -> None:
    headers = {"Idempotency-Key": "create-endpoint-1"}
    first = hook_api.post("/v1/webhook_endpoints", json={"url": receiver.url}, headers=headers)
    second = hook_api.post("/v1/webhook_endpoints", json={"url": receiver.url}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert second.headers["Idempotent-Replayed"] == "true"
    assert endpoint_count(db, hook_api.merchant.id) == 1


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://127.0.0.1:9/hook", "webhook_url_forbidden"),
        ("http://localhost/hook", "webhook_url_forbidden"),
        ("http://10.1.2.3/hook", "webhook_url_forbidden"),
        ("http://192.168.0.10/hook", "webhook_url_forbidden"),
        ("http://169.254.169.254/latest/meta-data", "webhook_url_forbidden"),
        ("http://[::1]/hook", "webhook_url_forbidden"),
        ("http://[::ffff:127.0.0.1]/hook", "webhook_url_forbidden"),
        ("http://0.0.0.0/hook", "webhook_url_forbidden"),
        ("http://printer.local/hook", "webhook_url_forbidden"),
        ("ftp://example.com/hook", "invalid_url"),
        ("not a url", "invalid_url"),
    ],
)
def test_refused_urls_store_nothing(api: Api, db: Database, url: str, code: str) -> None:
    before = stored(db, api.merchant.id)
    response = api.post("/v1/webhook_endpoints", json={"url": url})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["errors"][0]["field"] == "url"
    assert stored(db, api.merchant.id) == before


def test_host_names_are_checked_by_their_addresses(
    api: Api, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {"hooks.example.com": ["93.184.216.34"], "evil.example.com": ["10.0.0.7"]}
    monkeypatch.setattr(ssrf, "resolver", lambda host, port: answers[host])
    refused = api.post("/v1/webhook_endpoints", json={"url": "https://evil.example.com/x"})
    assert refused.status_code == 422
    assert refused.json()["code"] == "webhook_url_forbidden"
    assert "10.0.0.7" in refused.json()["detail"]
    accepted = api.post("/v1/webhook_endpoints", json={"url": "https://hooks.example.com/x"})
    assert accepted.status_code == 201, accepted.text
    path = f"/v1/webhook_endpoints/{accepted.json()['id']}"
    before = stored(db, api.merchant.id)
    moved = api.patch(path, json={"url": "https://evil.example.com/y"})
    assert moved.status_code == 422
    assert moved.json()["code"] == "webhook_url_forbidden"
    assert stored(db, api.merchant.id) == before


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        (
            {"url": "https://93.184.216.34/h", "enabled_events": ["Invoice Paid"]},
            "enabled_events",
            "invalid_event_filter",
        ),
        (
            {"url": "https://93.184.216.34/h", "enabled_events": []},
            "enabled_events",
            "too_few_items",
        ),
        ({"url": "https://93.184.216.34/h", "secret": "whsec_x"}, "secret", "unknown_field"),
        ({}, "url", "field_required"),
    ],
)
def test_validation_errors(api: Api, db: Database, body: Any, field: str, code: str) -> None:
    before = stored(db, api.merchant.id)
    response = api.post("/v1/webhook_endpoints", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    assert response.json()["errors"][0]["code"] == code
    assert stored(db, api.merchant.id) == before


def test_endpoints_are_tenant_and_mode_scoped(hook_api: Api, receiver: Receiver, api: Api) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    path = f"/v1/webhook_endpoints/{endpoint['id']}"
    for other in (api, hook_api.as_live()):
        assert other.get(path).status_code == 404
        assert other.get(path).json()["code"] == "webhook_endpoint_not_found"
        assert other.patch(path, json={"enabled": False}).status_code == 404
        assert other.post(f"{path}/rotate_secret").status_code == 404
        assert other.post(f"{path}/test").status_code == 404
        assert endpoint["id"] not in [
            e["id"] for e in other.get("/v1/webhook_endpoints").json()["data"]
        ]


def test_endpoint_limit(hook_api: Api, receiver: Receiver, db: Database) -> None:
    for _ in range(MAX_ENDPOINTS):
        create_endpoint(hook_api, receiver.url)
    response = hook_api.post("/v1/webhook_endpoints", json={"url": receiver.url})
    assert response.status_code == 409
    assert response.json()["code"] == "webhook_endpoint_limit_reached"
    assert endpoint_count(db, hook_api.merchant.id) == MAX_ENDPOINTS


def test_list_paginates(hook_api: Api, receiver: Receiver) -> None:
    ids = [create_endpoint(hook_api, receiver.url)["id"] for _ in range(3)]
    first = hook_api.get("/v1/webhook_endpoints", params={"limit": 2}).json()
    assert [e["id"] for e in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    rest = hook_api.get(
        "/v1/webhook_endpoints", params={"limit": 2, "starting_after": first["next_cursor"]}
    ).json()
    assert [e["id"] for e in rest["data"]] == [ids[0]]
    assert rest["has_more"] is False


def test_disabled_endpoint_refuses_test_and_redeliver(hook_api: Api, receiver: Receiver) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    path = f"/v1/webhook_endpoints/{endpoint['id']}"
    delivery = hook_api.post(f"{path}/test").json()
    hook_api.patch(path, json={"enabled": False})
    refused = hook_api.post(f"{path}/test")
    assert refused.status_code == 409
    assert refused.json()["code"] == "webhook_endpoint_disabled"
    again = hook_api.post(f"/v1/webhook_deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 409
    assert again.json()["code"] == "webhook_endpoint_disabled"


def test_unknown_delivery(hook_api: Api) -> None:
    response = hook_api.get("/v1/webhook_deliveries/whd_00000000000000000000000000")
    assert response.status_code == 404
    assert response.json()["code"] == "webhook_delivery_not_found"
    redeliver = hook_api.post("/v1/webhook_deliveries/whd_00000000000000000000000000/redeliver")
    assert redeliver.status_code == 404


@pytest.mark.parametrize("live", [False, True], ids=["test_mode", "live_mode"])
def test_a_deleted_endpoint_is_gone_from_the_api(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher, db: Database, live: bool
) -> None:
    api = hook_api.as_live() if live else hook_api
    older = create_endpoint(api, receiver.url)
    endpoint = create_endpoint(api, receiver.url)
    newer = create_endpoint(api, receiver.url)
    path = f"/v1/webhook_endpoints/{endpoint['id']}"
    api.create_invoice()
    assert api.post(f"{path}/test").status_code == 202
    assert drain(dispatcher) == 4  # a queue and a log for each endpoint
    logged = [d.id for d in deliveries_of(db, endpoint["id"])]
    assert len(logged) == 2 and all(attempts_of(db, d) for d in logged)
    rotated = api.post(f"{path}/rotate_secret")  # the old secret still signs for a while
    assert rotated.status_code == 200, rotated.text
    response = delete(api, path)
    assert response.status_code == 200, response.text
    assert response.json() == {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}
    # Its queue and log are gone, in the database and in the API.
    assert deliveries_of(db, endpoint["id"]) == []
    assert all(attempts_of(db, d) == [] for d in logged)
    for delivery_id in logged:
        assert api.get(f"/v1/webhook_deliveries/{delivery_id}").status_code == 404
    listed = api.get("/v1/webhook_deliveries", params={"endpoint_id": endpoint["id"]})
    assert listed.json()["data"] == []
    # Every operation on it answers 404 and changes nothing.
    before = stored(db, api.merchant.id)
    for answer in (
        api.get(path),
        api.patch(path, json={"enabled": True}),
        api.patch(path, json={"description": "back"}),
        api.post(f"{path}/rotate_secret"),
        api.post(f"{path}/test"),
        delete(api, path),
    ):
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "webhook_endpoint_not_found"
    assert stored(db, api.merchant.id) == before
    # Absent from the list and from its pages.
    everything = api.get("/v1/webhook_endpoints").json()
    assert [e["id"] for e in everything["data"]] == [newer["id"], older["id"]]
    first = api.get("/v1/webhook_endpoints", params={"limit": 1}).json()
    assert ([e["id"] for e in first["data"]], first["has_more"]) == ([newer["id"]], True)
    rest = api.get(
        "/v1/webhook_endpoints", params={"limit": 1, "starting_after": first["next_cursor"]}
    ).json()
    assert ([e["id"] for e in rest["data"]], rest["has_more"]) == ([older["id"]], False)
    # The next event goes to the other endpoints only.
    api.create_invoice()
    assert deliveries_of(db, endpoint["id"]) == []
    assert drain(dispatcher) == 2
    # The row stays behind, disabled and marked deleted (never shown).
    with db.read() as session:
        row = session.get(WebhookEndpoint, endpoint["id"])
    assert row is not None and row.enabled is False and row.deleted_at is not None
    assert "deleted_at" not in json.dumps(everything)
    # Its signing secrets are not kept.
    assert row.secret not in (endpoint["secret"], rotated.json()["secret"])
    assert row.previous_secret is None and row.previous_secret_expires_at is None


def test_a_deleted_endpoint_does_not_count_towards_the_limit(
    hook_api: Api, receiver: Receiver, db: Database
) -> None:
    ids = [create_endpoint(hook_api, receiver.url)["id"] for _ in range(MAX_ENDPOINTS)]
    assert delete(hook_api, f"/v1/webhook_endpoints/{ids[0]}").status_code == 200
    replacement = create_endpoint(hook_api, receiver.url)
    before = stored(db, hook_api.merchant.id)
    refused = hook_api.post("/v1/webhook_endpoints", json={"url": receiver.url})
    assert refused.status_code == 409
    assert refused.json()["code"] == "webhook_endpoint_limit_reached"
    assert stored(db, hook_api.merchant.id) == before
    listed = hook_api.get("/v1/webhook_endpoints", params={"limit": 100}).json()["data"]
    assert sorted(e["id"] for e in listed) == sorted([*ids[1:], replacement["id"]])
