"""`/v1/settings/provider_connections`: create, list, retrieve, update, delete."""

from typing import Any

import pytest

from quittance.db.uow import Database
from quittance.payment.options import MAX_CONNECTIONS
from tests.api.helpers import assert_problem, ts
from tests.factories import Api, MerchantFactory
from tests.payment_config.helpers import (
    CONNECTION_KEYS,
    METHODS,
    assert_refused,
    create_connection,
    default_connection,
    set_method,
    stored,
)

PATH = "/v1/settings/provider_connections"


def test_a_new_merchant_has_one_sandbox_connection_for_every_method(api: Api) -> None:
    response = api.get(PATH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["object"], body["url"], body["has_more"], body["next_cursor"]) == (
        "list", PATH, False, None,
    )  # fmt: skip
    [connection] = body["data"]
    assert set(connection) == CONNECTION_KEYS
    assert connection["id"] == default_connection(api)
    assert {k: v for k, v in connection.items() if k not in ("id", "created_at", "updated_at")} == {
        "object": "provider_connection", "livemode": False, "provider": "sandbox",
        "name": "Sandbox", "options": {}, "enabled": True, "methods": METHODS,
    }  # fmt: skip
    ts(connection["created_at"])


def test_create_retrieve_and_list_newest_first(api: Api) -> None:
    created = create_connection(
        api, "Flaky", options={"fail": "timeout", "delay_ms": 0, "settle_after_ms": 500},
        enabled=False,
    )  # fmt: skip
    assert set(created) == CONNECTION_KEYS
    assert created["id"].startswith("pcn_") and len(created["id"]) == 30
    assert {k: created[k] for k in ("object", "livemode", "provider", "name", "options",
                                    "enabled", "methods")} == {
        "object": "provider_connection", "livemode": False, "provider": "sandbox",
        "name": "Flaky", "options": {"fail": "timeout", "delay_ms": 0, "settle_after_ms": 500},
        "enabled": False, "methods": [],
    }  # fmt: skip
    assert created["created_at"] == created["updated_at"]
    fetched = api.get(f"{PATH}/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == created
    second = create_connection(api, "Second")
    assert second["options"] == {} and second["enabled"] is True
    listed = api.get(PATH).json()["data"]
    assert [c["id"] for c in listed] == [second["id"], created["id"], default_connection(api)]
    page = api.get(PATH, params={"limit": 1, "starting_after": second["id"]}).json()
    assert [c["id"] for c in page["data"]] == [created["id"]]
    assert page["has_more"] is True and page["next_cursor"] == created["id"]


def test_boundary_options_are_accepted(api: Api) -> None:
    created = create_connection(
        api, "x" * 100, options={"fail": "error", "delay_ms": 60_000, "settle_after_ms": 86_400_000}
    )
    assert created["options"] == {"fail": "error", "delay_ms": 60_000,
                                  "settle_after_ms": 86_400_000}  # fmt: skip
    nulls = create_connection(api, "Nulls", options={"fail": None, "delay_ms": None})
    assert nulls["options"] == {}


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"name": "A", "options": {"fail": "boom"}}, "options.fail", "invalid_value"),
        ({"name": "A", "options": {"delay_ms": -1}}, "options.delay_ms", "out_of_range"),
        ({"name": "A", "options": {"delay_ms": 60_001}}, "options.delay_ms", "out_of_range"),
        ({"name": "A", "options": {"delay_ms": "5"}}, "options.delay_ms", "invalid_type"),
        ({"name": "A", "options": {"delay_ms": 5.0}}, "options.delay_ms", "invalid_type"),
        ({"name": "A", "options": {"settle_after_ms": 86_400_001}}, "options.settle_after_ms",
         "out_of_range"),
        ({"name": "A", "options": {"colour": "red"}}, "options.colour", "unknown_field"),
        ({"name": "A", "options": []}, "options", "invalid_type"),
        ({"name": ""}, "name", "too_short"),
        ({"name": "x" * 101}, "name", "too_long"),
        ({}, "name", "field_required"),
        ({"name": "A", "enabled": "yes"}, "enabled", "invalid_type"),
        ({"name": "A", "provider": "ratepay"}, "provider", "invalid_value"),
        ({"name": "A", "id": "pcn_01JD3Z7Q8W0000000000000000"}, "id", "unknown_field"),
    ],
)  # fmt: skip
def test_invalid_connections_are_refused_and_nothing_changes(
    api: Api, db: Database, body: dict[str, Any], field: str, code: str
) -> None:
    before = stored(db, api.merchant.id)
    response = api.post(PATH, json={"provider": "sandbox", **body})
    assert_problem(response, 422, code, field=field)
    assert stored(db, api.merchant.id) == before


def test_the_provider_is_required(api: Api) -> None:
    assert_problem(api.post(PATH, json={"name": "A"}), 422, "field_required", field="provider")


def test_live_mode_refuses_the_sandbox_and_changes_nothing(api: Api, db: Database) -> None:
    live = api.as_live()
    before = stored(db, api.merchant.id)
    body = assert_refused(
        live.post(PATH, json={"provider": "sandbox", "name": "Live sandbox"}),
        422, "provider_not_available",
    )  # fmt: skip
    assert body["provider"] == "sandbox"
    assert stored(db, api.merchant.id) == before
    listed = live.get(PATH)
    assert listed.status_code == 200 and listed.json()["data"] == []
    assert_problem(live.get(f"{PATH}/{default_connection(api)}"), 404,
                   "provider_connection_not_found")  # fmt: skip


def test_connections_are_per_merchant(api: Api, merchants: MerchantFactory) -> None:
    other = Api(api.client, merchants.create("Other"))
    mine = create_connection(api)
    assert_problem(other.get(f"{PATH}/{mine['id']}"), 404, "provider_connection_not_found")
    assert_problem(other.patch(f"{PATH}/{mine['id']}", json={"name": "x"}), 404,
                   "provider_connection_not_found")  # fmt: skip
    assert_problem(other.client.delete(f"{PATH}/{mine['id']}", headers=other._headers(None)),
                   404, "provider_connection_not_found")  # fmt: skip
    assert mine["id"] not in [c["id"] for c in other.get(PATH).json()["data"]]


def test_update_renames_replaces_options_and_pauses(api: Api) -> None:
    created = create_connection(api, "Old", options={"fail": "error", "delay_ms": 10})
    path = f"{PATH}/{created['id']}"
    renamed = api.patch(path, json={"name": "New"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "New"
    assert renamed.json()["options"] == {"fail": "error", "delay_ms": 10}
    assert ts(renamed.json()["updated_at"]) >= ts(created["updated_at"])
    replaced = api.patch(path, json={"options": {"settle_after_ms": 100}}).json()
    assert replaced["options"] == {"settle_after_ms": 100}
    cleared = api.patch(path, json={"options": {}}).json()
    assert cleared["options"] == {}
    paused = api.patch(path, json={"enabled": False}).json()
    assert paused["enabled"] is False
    assert api.get(path).json() == paused
    assert {k: paused[k] for k in ("id", "provider", "created_at", "name")} == {
        "id": created["id"], "provider": "sandbox", "created_at": created["created_at"],
        "name": "New",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"name": None}, "body", "field_not_nullable"),
        ({"options": None}, "body", "field_not_nullable"),
        ({"enabled": None}, "body", "field_not_nullable"),
        ({"provider": "sandbox"}, "provider", "unknown_field"),
        ({"options": {"fail": "sometimes"}}, "options.fail", "invalid_value"),
        ({"name": ""}, "name", "too_short"),
    ],
)
def test_invalid_updates_change_nothing(
    api: Api, db: Database, body: dict[str, Any], field: str, code: str
) -> None:
    created = create_connection(api)
    before = stored(db, api.merchant.id)
    assert_problem(api.patch(f"{PATH}/{created['id']}", json=body), 422, code, field=field)
    assert stored(db, api.merchant.id) == before


def test_unknown_connection_is_404_and_changes_nothing(api: Api, db: Database) -> None:
    before = stored(db, api.merchant.id)
    missing = f"{PATH}/pcn_01JD3Z7Q8W0000000000000000"
    assert_problem(api.get(missing), 404, "provider_connection_not_found")
    assert_problem(api.patch(missing, json={"name": "x"}), 404, "provider_connection_not_found")
    assert_problem(api.client.delete(missing, headers=api._headers(None)), 404,
                   "provider_connection_not_found")  # fmt: skip
    assert stored(db, api.merchant.id) == before


def _delete(api: Api, connection_id: str, **headers: str) -> Any:
    return api.client.delete(f"{PATH}/{connection_id}", headers=api._headers(headers))


def test_a_connection_in_a_route_cannot_be_deleted(api: Api, db: Database) -> None:
    sandbox = default_connection(api)
    before = stored(db, api.merchant.id)
    body = assert_refused(_delete(api, sandbox), 409, "provider_connection_in_use")
    assert body["methods"] == METHODS
    assert stored(db, api.merchant.id) == before
    # A disabled method still names the connection: still in use.
    set_method(api, "card", enabled=False)
    set_method(api, "bank_transfer", connections=[])
    body = assert_refused(_delete(api, sandbox), 409, "provider_connection_in_use")
    assert body["methods"] == ["card", "invoice"]


def test_delete_once_no_method_routes_through_it(api: Api, db: Database) -> None:
    sandbox = default_connection(api)
    spare = create_connection(api, "Spare")
    for method in METHODS:
        set_method(api, method, connections=[spare["id"]])
    assert api.get(f"{PATH}/{sandbox}").json()["methods"] == []
    assert api.get(f"{PATH}/{spare['id']}").json()["methods"] == METHODS
    response = _delete(api, sandbox)
    assert response.status_code == 200, response.text
    assert response.json() == {"id": sandbox, "object": "provider_connection", "deleted": True}
    assert_problem(api.get(f"{PATH}/{sandbox}"), 404, "provider_connection_not_found")
    assert_problem(_delete(api, sandbox), 404, "provider_connection_not_found")
    assert [c["id"] for c in api.get(PATH).json()["data"]] == [spare["id"]]
    # The stored routes were not touched by the delete.
    routes = {
        row["method"]: row["connection_ids"] for row in stored(db, api.merchant.id)["methods"]
    }
    assert routes == {method: [spare["id"]] for method in METHODS}


def test_delete_with_an_idempotency_key_replays(api: Api) -> None:
    spare = create_connection(api, "Spare")
    first = _delete(api, spare["id"], **{"Idempotency-Key": "del-1"})
    again = _delete(api, spare["id"], **{"Idempotency-Key": "del-1"})
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"


def test_create_with_an_idempotency_key_creates_once(api: Api) -> None:
    body = {"provider": "sandbox", "name": "Once", "options": {"delay_ms": 5}}
    headers = {"Idempotency-Key": "conn-1"}
    first = api.post(PATH, json=body, headers=headers)
    again = api.post(PATH, json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content
    names = [c["name"] for c in api.get(PATH).json()["data"]]
    assert names == ["Once", "Sandbox"]
    changed = api.post(PATH, json={**body, "name": "Twice"}, headers=headers)
    assert_problem(changed, 422, "idempotency_key_reused")


def test_at_most_fifty_connections_per_mode(api: Api, db: Database) -> None:
    for index in range(MAX_CONNECTIONS - 1):  # the sandbox default is the first
        create_connection(api, f"c{index}")
    before = stored(db, api.merchant.id)
    assert_refused(api.post(PATH, json={"provider": "sandbox", "name": "one too many"}), 409,
                   "provider_connection_limit_reached")  # fmt: skip
    assert stored(db, api.merchant.id) == before
    listed = api.get(PATH, params={"limit": 100}).json()["data"]
    assert len(listed) == MAX_CONNECTIONS
