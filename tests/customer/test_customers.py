"""`/v1/customers`: create, retrieve, list, update; tenant and mode isolation."""

from typing import Any

import pytest

from quittance.db.uow import Database
from tests.api.helpers import assert_problem, ids, ts
from tests.customer.helpers import (
    CUSTOMER_ID,
    attach,
    card,
    create_customer,
    customer_events,
    delete,
    unchanged,
)
from tests.factories import Api, MerchantFactory

ADA = {"email": "ada@example.com", "name": "Ada Lovelace", "country": "de",
       "metadata": {"crm": "4711"}}  # fmt: skip
CUSTOMER_KEYS = {"id", "object", "livemode", "email", "name", "country",
                 "default_payment_method", "metadata", "created_at", "updated_at"}  # fmt: skip


def test_create_returns_the_full_document_and_writes_an_event(capi: Api) -> None:
    response = capi.post("/v1/customers", json=ADA)

    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    customer = response.json()
    assert CUSTOMER_ID.match(customer["id"])
    assert customer == {
        "id": customer["id"],
        "object": "customer",
        "livemode": False,
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "country": "DE",
        "default_payment_method": None,
        "metadata": {"crm": "4711"},
        "created_at": customer["created_at"],
        "updated_at": customer["created_at"],
    }
    ts(customer["created_at"])
    events = customer_events(capi)
    assert [(e["type"], e["invoice_id"], e["data"]) for e in events] == [
        ("customer.created", None, {"object": customer})
    ]


def test_an_empty_body_creates_an_empty_customer(capi: Api) -> None:
    customer = create_customer(capi)

    assert {k: customer[k] for k in ("email", "name", "country", "default_payment_method",
                                     "metadata")} == {
        "email": None, "name": None, "country": None, "default_payment_method": None,
        "metadata": {},
    }  # fmt: skip
    assert set(customer) == CUSTOMER_KEYS


def test_retrieve_returns_what_create_returned(capi: Api) -> None:
    created = create_customer(capi, **ADA)

    response = capi.get(f"/v1/customers/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"email": "nope"}, "email", "invalid_email"),
        ({"country": "DEU"}, "country", "too_long"),
        ({"country": "1A"}, "country", "invalid_country"),
        ({"name": ""}, "name", "too_short"),
        ({"name": "n" * 201}, "name", "too_long"),
        ({"metadata": {str(i): "v" for i in range(51)}}, "metadata", "metadata_too_large"),
        ({"email": 42}, "email", "invalid_type"),
        ({"phone": "+49"}, "phone", "unknown_field"),
        ({"default_payment_method": None}, "default_payment_method", "unknown_field"),
    ],
)
def test_create_refuses_invalid_fields_and_stores_nothing(
    capi: Api, db: Database, body: dict[str, Any], field: str, code: str
) -> None:
    with unchanged(db, capi.merchant.id):
        response = capi.post("/v1/customers", json=body)

    assert_problem(response, 422, code, field=field)


@pytest.mark.parametrize(
    "customer_id", ["cus_01M7YA26Y5KQ4WYDJ9YSGCH3F8", "cus_x", "inv_1", "x" * 300]
)
def test_retrieve_an_unknown_customer_is_404(capi: Api, customer_id: str) -> None:
    assert_problem(capi.get(f"/v1/customers/{customer_id}"), 404, "customer_not_found")


def test_another_merchants_or_modes_customer_does_not_exist(
    capi: Api, merchants: MerchantFactory, db: Database
) -> None:
    customer = create_customer(capi, **ADA)
    other = Api(capi.client, merchants.create())
    live = capi.as_live()
    path = f"/v1/customers/{customer['id']}"

    with unchanged(db, capi.merchant.id):
        for caller in (other, live):
            assert_problem(caller.get(path), 404, "customer_not_found")
            assert_problem(caller.patch(path, json={"name": "Mallory"}), 404, "customer_not_found")
            assert_problem(caller.get(f"{path}/payment_methods"), 404, "customer_not_found")
            assert_problem(caller.post(f"{path}/payment_methods", json=card()), 404,
                           "customer_not_found")  # fmt: skip
            assert_problem(caller.post(f"{path}/payment_methods/pm_x/default"), 404,
                           "customer_not_found")  # fmt: skip
            assert_problem(delete(caller, f"{path}/payment_methods/pm_x"), 404,
                           "customer_not_found")  # fmt: skip
            assert ids(caller.get("/v1/customers")) == []


def test_live_mode_customers_are_separate(capi: Api) -> None:
    live = capi.as_live()
    test_customer = create_customer(capi, name="Test")
    live_customer = create_customer(live, name="Live")

    assert live_customer["livemode"] is True
    assert ids(capi.get("/v1/customers")) == [test_customer["id"]]
    assert ids(live.get("/v1/customers")) == [live_customer["id"]]
    assert live.get(f"/v1/customers/{live_customer['id']}").json() == live_customer


def test_list_is_newest_first_with_cursor_pagination(capi: Api) -> None:
    created = [create_customer(capi, name=f"c{i}")["id"] for i in range(5)]
    newest_first = list(reversed(created))

    first = capi.get("/v1/customers", params={"limit": 2})
    assert first.status_code == 200
    body = first.json()
    assert body == {
        "object": "list",
        "url": "/v1/customers",
        "data": body["data"],
        "has_more": True,
        "next_cursor": newest_first[1],
    }
    assert [c["id"] for c in body["data"]] == newest_first[:2]
    second = capi.get("/v1/customers", params={"limit": 2, "starting_after": newest_first[1]})
    assert ids(second) == newest_first[2:4]
    third = capi.get("/v1/customers", params={"limit": 2, "starting_after": newest_first[3]})
    assert ids(third) == newest_first[4:]
    assert third.json()["has_more"] is False
    assert third.json()["next_cursor"] is None
    back = capi.get("/v1/customers", params={"limit": 2, "ending_before": newest_first[4]})
    assert ids(back) == newest_first[2:4]
    assert back.json()["has_more"] is True
    assert back.json()["next_cursor"] == newest_first[2]
    assert ids(capi.get("/v1/customers")) == newest_first


def test_list_filters_by_exact_email(capi: Api) -> None:
    ada = create_customer(capi, email="ada@example.com")
    create_customer(capi, email="grace@example.com")
    ada_again = create_customer(capi, email="ada@example.com")

    response = capi.get("/v1/customers", params={"email": "ada@example.com"})

    assert ids(response) == [ada_again["id"], ada["id"]]
    assert ids(capi.get("/v1/customers", params={"email": "ADA@example.com"})) == []


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"limit": 0}, "limit", "out_of_range"),
        ({"limit": 101}, "limit", "out_of_range"),
        ({"starting_after": "inv_01M7YA26Y5KQ4WYDJ9YSGCH3F8"}, "starting_after",
         "invalid_format"),
        ({"starting_after": "cus_01M7YA26Y5KQ4WYDJ9YSGCH3F8",
          "ending_before": "cus_01M7YA26Y5KQ4WYDJ9YSGCH3F8"}, "ending_before",
         "cursor_conflict"),
    ],
)  # fmt: skip
def test_list_refuses_bad_parameters(
    capi: Api, params: dict[str, Any], field: str, code: str
) -> None:
    assert_problem(capi.get("/v1/customers", params=params), 422, code, field=field)


def test_update_changes_and_clears_fields(capi: Api) -> None:
    customer = create_customer(capi, **ADA)

    response = capi.patch(
        f"/v1/customers/{customer['id']}",
        json={"name": "Ada King", "country": None, "email": "ada@king.example", "metadata": None},
    )

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated == {
        **customer,
        "name": "Ada King",
        "country": None,
        "email": "ada@king.example",
        "metadata": {},
        "updated_at": updated["updated_at"],
    }
    assert ts(updated["updated_at"]) >= ts(customer["updated_at"])
    assert capi.get(f"/v1/customers/{customer['id']}").json() == updated
    event = customer_events(capi)[-1]
    assert event["type"] == "customer.updated"
    assert event["data"] == {"object": updated, "changed": ["country", "email", "metadata",
                                                            "name"]}  # fmt: skip


def test_an_empty_update_changes_nothing(capi: Api, db: Database) -> None:
    customer = create_customer(capi, **ADA)

    with unchanged(db, capi.merchant.id):
        response = capi.patch(f"/v1/customers/{customer['id']}", json={})

    assert response.status_code == 200
    assert response.json() == customer


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"email": "nope"}, "email", "invalid_email"),
        ({"country": "D"}, "country", "too_short"),
        ({"metadata": {"": "v"}}, "metadata", "metadata_invalid"),
        ({"id": "cus_01M7YA26Y5KQ4WYDJ9YSGCH3F8"}, "id", "unknown_field"),
        ({"default_payment_method": 7}, "default_payment_method", "invalid_type"),
    ],
)
def test_update_refuses_invalid_fields_and_changes_nothing(
    capi: Api, db: Database, body: dict[str, Any], field: str, code: str
) -> None:
    customer = create_customer(capi, **ADA)

    with unchanged(db, capi.merchant.id):
        response = capi.patch(f"/v1/customers/{customer['id']}", json=body)

    assert_problem(response, 422, code, field=field)


def test_update_of_an_unknown_customer_is_404(capi: Api, db: Database) -> None:
    with unchanged(db, capi.merchant.id):
        response = capi.patch("/v1/customers/cus_01M7YA26Y5KQ4WYDJ9YSGCH3F8", json={"name": "X"})

    assert_problem(response, 404, "customer_not_found")


def test_update_sets_and_clears_the_default_payment_method(capi: Api) -> None:
    customer = create_customer(capi)
    first = attach(capi, customer["id"])
    second = attach(capi, customer["id"], card("5555 5555 5555 4444"))
    path = f"/v1/customers/{customer['id']}"
    assert capi.get(path).json()["default_payment_method"] == first["id"]

    response = capi.patch(path, json={"default_payment_method": second["id"]})
    assert response.status_code == 200, response.text
    assert response.json()["default_payment_method"] == second["id"]

    response = capi.patch(path, json={"default_payment_method": None})
    assert response.status_code == 200, response.text
    assert response.json()["default_payment_method"] is None
    assert capi.get(path).json()["default_payment_method"] is None
    assert customer_events(capi)[-1]["data"]["changed"] == ["default_payment_method"]


def test_the_default_payment_method_must_be_attached_to_the_customer(
    capi: Api, db: Database, merchants: MerchantFactory
) -> None:
    customer = create_customer(capi)
    own = attach(capi, customer["id"])
    detached = attach(capi, customer["id"], card("5555555555554444"))
    assert delete(capi, f"/v1/customers/{customer['id']}/payment_methods/{detached['id']}"
                  ).status_code == 200  # fmt: skip
    sibling = create_customer(capi)
    siblings = attach(capi, sibling["id"])
    other = Api(capi.client, merchants.create())
    foreign = attach(other, create_customer(other)["id"])
    path = f"/v1/customers/{customer['id']}"

    with unchanged(db, capi.merchant.id):
        for method_id in (detached["id"], siblings["id"], foreign["id"], "pm_nope"):
            response = capi.patch(path, json={"default_payment_method": method_id, "name": "X"})
            assert_problem(response, 422, "payment_method_not_attached",
                           field="default_payment_method")  # fmt: skip
    assert capi.get(path).json()["default_payment_method"] == own["id"]


def test_create_with_an_idempotency_key_replays_the_first_answer(capi: Api, db: Database) -> None:
    headers = {"Idempotency-Key": "customer-ada-1"}
    first = capi.post("/v1/customers", json=ADA, headers=headers)
    second = capi.post("/v1/customers", json=ADA, headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert ids(capi.get("/v1/customers")) == [first.json()["id"]]
    reused = capi.post("/v1/customers", json={**ADA, "name": "Grace"}, headers=headers)
    assert_problem(reused, 422, "idempotency_key_reused")
