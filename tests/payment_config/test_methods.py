"""`/v1/settings/methods`: each method's limits, countries, currencies and route."""

from typing import Any

import pytest
from sqlalchemy import delete

from quittance.db.uow import Database
from quittance.models import MethodConfig, ProviderConnection
from tests.api.helpers import assert_problem, ts
from tests.factories import Api, MerchantFactory
from tests.payment_config.helpers import (
    METHODS,
    create_connection,
    default_connection,
    methods,
    set_method,
    stored,
)

PATH = "/v1/settings/methods"
UNKNOWN = "pcn_01JD3Z7Q8W0000000000000000"


def _open(method: str, connections: list[str], livemode: bool = False) -> dict[str, Any]:
    return {"object": "method_config", "method": method, "livemode": livemode, "enabled": True,
            "min_amount": None, "max_amount": None, "countries": None, "currencies": None,
            "connections": connections}  # fmt: skip


def test_defaults_route_every_method_through_the_sandbox(api: Api) -> None:
    response = api.get(PATH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["object"], body["url"], body["has_more"]) == ("list", PATH, False)
    sandbox = default_connection(api)
    data = body["data"]
    assert [m["method"] for m in data] == METHODS
    for method in data:
        ts(method.pop("updated_at"))
    assert data == [_open(m, [sandbox]) for m in METHODS]
    one = api.get(f"{PATH}/bank_transfer").json()
    ts(one.pop("updated_at"))
    assert one == _open("bank_transfer", [sandbox])


def test_update_every_field_then_read_it_back(api: Api) -> None:
    sandbox = default_connection(api)
    backup = create_connection(api, "Backup")
    changed = set_method(
        api, "card", enabled=False, min_amount=100, max_amount=500_000,
        countries=["de", "AT"], currencies=["eur", "CHF"], connections=[backup["id"], sandbox],
    )  # fmt: skip
    updated_at = ts(changed.pop("updated_at"))
    assert changed == {
        "object": "method_config", "method": "card", "livemode": False, "enabled": False,
        "min_amount": 100, "max_amount": 500_000, "countries": ["DE", "AT"],
        "currencies": ["EUR", "CHF"], "connections": [backup["id"], sandbox],
    }  # fmt: skip
    again = methods(api)["card"]
    assert ts(again.pop("updated_at")) == updated_at
    assert again == changed
    assert methods(api)["invoice"]["connections"] == [sandbox]
    assert api.get(f"/v1/settings/provider_connections/{backup['id']}").json()["methods"] == [
        "card"
    ]


def test_partial_updates_keep_the_rest_and_null_clears_a_limit(api: Api) -> None:
    set_method(api, "invoice", min_amount=50, max_amount=100, countries=["DE"], currencies=["EUR"])
    kept = set_method(api, "invoice", max_amount=200)
    assert (kept["min_amount"], kept["max_amount"], kept["countries"], kept["currencies"]) == (
        50, 200, ["DE"], ["EUR"],
    )  # fmt: skip
    cleared = set_method(api, "invoice", min_amount=None, countries=None, currencies=None)
    assert (cleared["min_amount"], cleared["max_amount"], cleared["countries"]) == (
        None, 200, None,
    )  # fmt: skip
    assert cleared["currencies"] is None and cleared["enabled"] is True
    same = set_method(api, "invoice", min_amount=200, max_amount=200)
    assert (same["min_amount"], same["max_amount"]) == (200, 200)
    empty_route = set_method(api, "invoice", connections=[])
    assert empty_route["connections"] == []


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"connections": [UNKNOWN]}, "connections.0", "unknown_provider_connection"),
        ({"connections": ["pcn_x"]}, "connections.0", "invalid_format"),
        ({"connections": "pcn_01JD3Z7Q8W0000000000000000"}, "connections", "invalid_type"),
        ({"connections": [UNKNOWN] * 6}, "connections", "too_many_items"),
        ({"connections": None}, "body", "field_not_nullable"),
        ({"enabled": None}, "body", "field_not_nullable"),
        ({"enabled": "true"}, "enabled", "invalid_type"),
        ({"min_amount": 101, "max_amount": 100}, "min_amount", "min_above_max"),
        ({"min_amount": -1}, "min_amount", "amount_negative"),
        ({"max_amount": 0}, "max_amount", "amount_not_positive"),
        ({"max_amount": 10.5}, "max_amount", "amount_not_integer"),
        ({"max_amount": "100"}, "max_amount", "invalid_type"),
        ({"max_amount": 10**12}, "max_amount", "amount_too_large"),
        ({"countries": ["XX"]}, "countries.0", "invalid_country"),
        ({"countries": ["DE", "T1"]}, "countries.1", "invalid_country"),
        ({"countries": ["DEU"]}, "countries.0", "invalid_country"),
        ({"countries": []}, "countries", "too_few_items"),
        ({"countries": ["DE", "de"]}, "countries", "duplicate_items"),
        ({"currencies": ["XXX"]}, "currencies.0", "currency_not_supported"),
        ({"currencies": []}, "currencies", "too_few_items"),
        ({"currencies": ["EUR", "eur"]}, "currencies", "duplicate_items"),
        ({"method": "card"}, "method", "unknown_field"),
    ],
)  # fmt: skip
def test_invalid_settings_are_refused_and_nothing_changes(
    api: Api, db: Database, body: dict[str, Any], field: str, code: str
) -> None:
    before = stored(db, api.merchant.id)
    assert_problem(api.patch(f"{PATH}/card", json=body), 422, code, field=field)
    assert stored(db, api.merchant.id) == before


def test_a_route_may_not_name_a_connection_twice(api: Api, db: Database) -> None:
    sandbox = default_connection(api)
    before = stored(db, api.merchant.id)
    response = api.patch(f"{PATH}/card", json={"connections": [sandbox, sandbox]})
    assert_problem(response, 422, "duplicate_items", field="connections")
    assert stored(db, api.merchant.id) == before


def test_a_route_names_at_most_five_connections(api: Api) -> None:
    route = [create_connection(api, f"c{i}")["id"] for i in range(5)]
    assert set_method(api, "card", connections=route)["connections"] == route
    extra = create_connection(api, "sixth")["id"]
    response = api.patch(f"{PATH}/card", json={"connections": [*route, extra]})
    assert_problem(response, 422, "too_many_items", field="connections")
    assert methods(api)["card"]["connections"] == route


def test_limits_are_checked_against_the_stored_values(api: Api, db: Database) -> None:
    set_method(api, "card", min_amount=500)
    before = stored(db, api.merchant.id)
    assert_problem(api.patch(f"{PATH}/card", json={"max_amount": 499}), 422, "min_above_max",
                   field="max_amount")  # fmt: skip
    assert stored(db, api.merchant.id) == before
    set_method(api, "card", max_amount=1000)
    before = stored(db, api.merchant.id)
    assert_problem(api.patch(f"{PATH}/card", json={"min_amount": 1001}), 422, "min_above_max",
                   field="min_amount")  # fmt: skip
    assert stored(db, api.merchant.id) == before


def test_every_unknown_connection_is_reported(api: Api) -> None:
    sandbox = default_connection(api)
    other = "pcn_01JD3Z7Q8W0000000000000001"
    response = api.patch(f"{PATH}/card", json={"connections": [UNKNOWN, sandbox, other]})
    body = assert_problem(response, 422, "unknown_provider_connection", field="connections.0")
    assert [e["field"] for e in body["errors"]] == ["connections.0", "connections.2"]


def test_connections_of_another_merchant_or_mode_are_unknown(
    api: Api, db: Database, merchants: MerchantFactory
) -> None:
    other = Api(api.client, merchants.create("Other"))
    foreign = default_connection(other)
    before = stored(db, api.merchant.id)
    response = api.patch(f"{PATH}/card", json={"connections": [foreign]})
    assert_problem(response, 422, "unknown_provider_connection", field="connections.0")
    live = api.as_live().patch(f"{PATH}/card", json={"connections": [default_connection(api)]})
    assert_problem(live, 422, "unknown_provider_connection", field="connections.0")
    assert stored(db, api.merchant.id) == before


def test_unknown_method_is_404_and_changes_nothing(api: Api, db: Database) -> None:
    before = stored(db, api.merchant.id)
    for response in (api.get(f"{PATH}/paypal"), api.patch(f"{PATH}/paypal", json={})):
        body = assert_problem(response, 404, "method_not_found")
        assert body["methods"] == METHODS
    assert stored(db, api.merchant.id) == before


def test_live_mode_starts_with_every_method_off(api: Api, db: Database) -> None:
    live = api.as_live()
    before = stored(db, api.merchant.id)
    data = live.get(PATH).json()["data"]
    assert data == [
        {**_open(m, [], livemode=True), "enabled": False, "updated_at": None} for m in METHODS
    ]
    assert stored(db, api.merchant.id) == before  # reading wrote nothing
    response = live.patch(f"{PATH}/invoice", json={"enabled": True, "currencies": ["EUR"]})
    assert response.status_code == 200, response.text
    document = response.json()
    ts(document.pop("updated_at"))
    assert document == {**_open("invoice", [], livemode=True), "currencies": ["EUR"]}
    assert methods(api)["invoice"]["currencies"] is None  # test mode is separate


def test_a_test_merchant_without_set_up_gets_the_defaults_on_first_look(
    api: Api, db: Database
) -> None:
    with db.write() as session:
        session.execute(delete(MethodConfig).where(MethodConfig.merchant_id == api.merchant.id))
        session.execute(
            delete(ProviderConnection).where(ProviderConnection.merchant_id == api.merchant.id)
        )
    response = api.get(PATH)
    assert response.status_code == 200, response.text
    sandbox = default_connection(api)
    assert [(m["method"], m["enabled"], m["connections"]) for m in response.json()["data"]] == [
        (m, True, [sandbox]) for m in METHODS
    ]
    assert len(stored(db, api.merchant.id)["connections"]) == 1


def test_a_write_sets_up_the_defaults_first(api: Api, db: Database) -> None:
    with db.write() as session:
        session.execute(delete(MethodConfig).where(MethodConfig.merchant_id == api.merchant.id))
        session.execute(
            delete(ProviderConnection).where(ProviderConnection.merchant_id == api.merchant.id)
        )
    created = create_connection(api, "Mine")
    names = sorted(c["name"] for c in stored(db, api.merchant.id)["connections"])
    assert names == ["Mine", "Sandbox"]
    assert created["methods"] == []
    assert [m["enabled"] for m in methods(api).values()] == [True, True, True]


def test_updates_replay_with_an_idempotency_key(api: Api) -> None:
    headers = {"Idempotency-Key": "method-1"}
    first = api.patch(f"{PATH}/card", json={"max_amount": 900}, headers=headers)
    again = api.patch(f"{PATH}/card", json={"max_amount": 900}, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.content == first.content
    assert_problem(api.patch(f"{PATH}/card", json={"max_amount": 901}, headers=headers), 422,
                   "idempotency_key_reused")  # fmt: skip


def test_a_refused_country_is_named_in_the_message(api: Api) -> None:
    response = api.patch(f"{PATH}/card", json={"countries": ["XX"]})
    body = assert_problem(response, 422, "invalid_country", field="countries.0")
    assert "'XX' is not one" in body["errors"][0]["message"], body
