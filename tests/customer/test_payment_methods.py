"""`/v1/customers/{id}/payment_methods`: attach (sandbox tokenisation), list, set default,
detach."""

import re
from typing import Any

import pytest
from sqlalchemy import select

from quittance.config import Settings
from quittance.db.uow import Database
from quittance.models import PaymentMethod
from quittance.providers.sandbox import SandboxGateway
from tests.api.helpers import assert_problem, ids, ts
from tests.customer.helpers import (
    METHOD_ID,
    assert_refusal,
    attach,
    card,
    create_customer,
    customer_events,
    delete,
    unchanged,
)
from tests.factories import Api, MerchantFactory


def _methods(customer_id: str) -> str:
    return f"/v1/customers/{customer_id}/payment_methods"


def test_attach_a_card_keeps_brand_last4_expiry_and_token_only(
    capi: Api, db: Database, customer_settings: Settings
) -> None:
    customer = create_customer(capi, email="ada@example.com")

    response = capi.post(_methods(customer["id"]),
                         json=card("4242 4242 4242 4242", cvc="737", exp_year=2031))  # fmt: skip

    assert response.status_code == 201, response.text
    method = response.json()
    assert METHOD_ID.match(method["id"])
    assert method == {
        "id": method["id"],
        "object": "payment_method",
        "livemode": False,
        "type": "card",
        "customer": customer["id"],
        "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2031},
        "created_at": method["created_at"],
        "detached_at": None,
    }
    ts(method["created_at"])
    with db.read() as session:
        row = session.scalars(select(PaymentMethod).where(PaymentMethod.id == method["id"])).one()
        stored = {c.key: getattr(row, c.key) for c in PaymentMethod.__mapper__.column_attrs}
    token = stored["provider_token"]
    assert token.startswith("tok_sandbox_")
    assert stored == {
        "id": method["id"], "merchant_id": capi.merchant.id, "livemode": False,
        "customer_id": customer["id"], "type": "card", "provider": "sandbox",
        "provider_token": token, "brand": "visa", "last4": "4242", "exp_month": 12,
        "exp_year": 2031, "created_at": stored["created_at"], "detached_at": None,
    }  # fmt: skip
    # The token carries the card's behaviour only; the sandbox stores nothing for it.
    assert re.fullmatch(r"tok_sandbox_succeed_[0-9a-f]{24}", token)
    held = SandboxGateway(customer_settings.sandbox_path)
    with held._store() as store:
        assert store.execute("SELECT count(*) FROM tokens").fetchone()[0] == 0


def test_the_first_method_becomes_the_default(capi: Api) -> None:
    customer = create_customer(capi)

    method = attach(capi, customer["id"])

    updated = capi.get(f"/v1/customers/{customer['id']}").json()
    assert updated["default_payment_method"] == method["id"]
    assert ts(updated["updated_at"]) >= ts(customer["updated_at"])
    [event] = customer_events(capi)[1:]
    assert event["type"] == "payment_method.attached"
    assert event["invoice_id"] is None
    assert event["data"] == {"object": method, "customer": updated}


def test_later_methods_become_the_default_only_when_asked(capi: Api) -> None:
    customer = create_customer(capi)
    first = attach(capi, customer["id"])
    path = f"/v1/customers/{customer['id']}"

    second = attach(capi, customer["id"], card("5555555555554444", default=False))
    assert capi.get(path).json()["default_payment_method"] == first["id"]
    third = attach(capi, customer["id"], {"type": "bank_transfer"})
    assert capi.get(path).json()["default_payment_method"] == first["id"]
    fourth = attach(capi, customer["id"], {"type": "invoice", "default": True})
    assert capi.get(path).json()["default_payment_method"] == fourth["id"]

    assert second["card"] == {"brand": "mastercard", "last4": "4444", "exp_month": 12,
                              "exp_year": 2040}  # fmt: skip
    for method, kind in ((third, "bank_transfer"), (fourth, "invoice")):
        assert method == {
            "id": method["id"], "object": "payment_method", "livemode": False, "type": kind,
            "customer": customer["id"], "card": None, "created_at": method["created_at"],
            "detached_at": None,
        }  # fmt: skip


def test_a_method_attached_after_the_default_was_detached_becomes_the_default(
    capi: Api,
) -> None:
    customer = create_customer(capi)
    first = attach(capi, customer["id"])
    second = attach(capi, customer["id"], card("5555555555554444"))
    assert delete(capi, f"{_methods(customer['id'])}/{first['id']}").status_code == 200
    assert capi.get(f"/v1/customers/{customer['id']}").json()["default_payment_method"] is None

    third = attach(capi, customer["id"], {"type": "bank_transfer"})

    customer_now = capi.get(f"/v1/customers/{customer['id']}").json()
    assert customer_now["default_payment_method"] == third["id"] != second["id"]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        (card("4242424242424241"), "card.number", "invalid_card_number"),
        (card("4111111111111111"), "card.number", "card_not_supported_in_sandbox"),
        (card(exp_year=2001), "card.exp_year", "expired_card"),
        (card(cvc="12"), "card.cvc", "too_short"),
        (card(cvc="12a4"), "card.cvc", "invalid_format"),
        (card("4242-4242-4242-4242"), "card.number", "invalid_format"),
        ({"type": "card"}, "body", "card_required"),
        ({"type": "bank_transfer", "card": card()["card"]}, "body", "card_not_allowed"),
        ({"type": "paypal"}, "type", "invalid_value"),
        (card(default="yes"), "default", "invalid_type"),
        ({**card(), "save": True}, "save", "unknown_field"),
    ],
)
def test_attach_refusals_store_nothing(
    capi: Api, db: Database, body: dict[str, Any], field: str, code: str
) -> None:
    customer = create_customer(capi)

    with unchanged(db, capi.merchant.id):
        response = capi.post(_methods(customer["id"]), json=body)

    assert_problem(response, 422, code, field=field)
    if "card" in body:  # the answer never repeats the number
        assert body["card"]["number"] not in response.text


def test_live_mode_cannot_tokenise(capi: Api, db: Database) -> None:
    live = capi.as_live()
    customer = create_customer(live)

    with unchanged(db, capi.merchant.id):
        for body in (card(), {"type": "bank_transfer"}):
            response = live.post(_methods(customer["id"]), json=body)
            assert_refusal(response, 422, "provider_not_available")


def test_attach_to_an_unknown_customer_is_404(capi: Api, db: Database) -> None:
    with unchanged(db, capi.merchant.id):
        response = capi.post(_methods("cus_01M7YA26Y5KQ4WYDJ9YSGCH3F8"), json=card())

    assert_problem(response, 404, "customer_not_found")


def test_list_shows_attached_methods_newest_first(capi: Api, merchants: MerchantFactory) -> None:
    customer = create_customer(capi)
    bodies = (card(), card("5555555555554444"), {"type": "bank_transfer"})
    methods = [attach(capi, customer["id"], body)["id"] for body in bodies]
    sibling = create_customer(capi)
    attach(capi, sibling["id"])
    newest_first = list(reversed(methods))

    response = capi.get(_methods(customer["id"]))
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert body["url"] == _methods(customer["id"])
    assert [m["id"] for m in body["data"]] == newest_first
    assert body["data"][0] == {**body["data"][0], "customer": customer["id"], "card": None}
    page = capi.get(_methods(customer["id"]), params={"limit": 2})
    assert ids(page) == newest_first[:2]
    assert page.json()["next_cursor"] == newest_first[1]
    rest = capi.get(_methods(customer["id"]), params={"starting_after": newest_first[1]})
    assert ids(rest) == newest_first[2:]
    back = capi.get(_methods(customer["id"]), params={"ending_before": newest_first[2]})
    assert ids(back) == newest_first[:2]

    assert delete(capi, f"{_methods(customer['id'])}/{methods[1]}").status_code == 200
    assert ids(capi.get(_methods(customer["id"]))) == [methods[2], methods[0]]
    assert_problem(capi.get(_methods("cus_01M7YA26Y5KQ4WYDJ9YSGCH3F8")), 404,
                   "customer_not_found")  # fmt: skip
    assert_problem(capi.get(_methods(customer["id"]), params={"starting_after": "cus_1"}), 422,
                   "invalid_format", field="starting_after")  # fmt: skip


def test_set_default(capi: Api) -> None:
    customer = create_customer(capi)
    first = attach(capi, customer["id"])
    second = attach(capi, customer["id"], card("5555555555554444"))

    response = capi.post(f"{_methods(customer['id'])}/{second['id']}/default")

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated == {**customer, "default_payment_method": second["id"],
                       "updated_at": updated["updated_at"]}  # fmt: skip
    assert capi.get(f"/v1/customers/{customer['id']}").json() == updated
    event = customer_events(capi)[-1]
    assert event["type"] == "customer.updated"
    assert event["data"] == {"object": updated, "changed": ["default_payment_method"]}
    again = capi.post(f"{_methods(customer['id'])}/{second['id']}/default")
    assert again.json() == updated
    assert len(customer_events(capi)) == 4  # created, 2 attached, 1 updated: no event again
    assert first["id"] != second["id"]


def test_set_default_refuses_methods_that_are_not_attached(
    capi: Api, db: Database, merchants: MerchantFactory
) -> None:
    customer = create_customer(capi)
    attach(capi, customer["id"])
    detached = attach(capi, customer["id"], card("5555555555554444"))
    assert delete(capi, f"{_methods(customer['id'])}/{detached['id']}").status_code == 200
    siblings = attach(capi, create_customer(capi)["id"])
    other = Api(capi.client, merchants.create())
    foreign = attach(other, create_customer(other)["id"])

    with unchanged(db, capi.merchant.id):
        for method_id in (detached["id"], siblings["id"], foreign["id"], "pm_nope"):
            response = capi.post(f"{_methods(customer['id'])}/{method_id}/default")
            assert_problem(response, 404, "payment_method_not_found")


def test_detach_clears_the_default_and_the_method_cannot_pay(capi: Api, db: Database) -> None:
    customer = create_customer(capi)
    method = attach(capi, customer["id"])
    invoice = capi.create_invoice(customer=customer["id"])

    response = delete(capi, f"{_methods(customer['id'])}/{method['id']}")

    assert response.status_code == 200, response.text
    detached = response.json()
    assert detached == {**method, "detached_at": detached["detached_at"]}
    ts(detached["detached_at"])
    customer_now = capi.get(f"/v1/customers/{customer['id']}").json()
    assert customer_now["default_payment_method"] is None
    event = customer_events(capi)[-1]
    assert event["type"] == "payment_method.detached"
    assert event["data"] == {"object": detached, "customer": customer_now}
    with unchanged(db, capi.merchant.id):
        pay = capi.post(f"/v1/invoices/{invoice['id']}/pay",
                        json={"payment_method": method["id"]})  # fmt: skip
        assert_problem(pay, 404, "payment_method_not_found")
        again = delete(capi, f"{_methods(customer['id'])}/{method['id']}")
        assert_problem(again, 404, "payment_method_not_found")
        default = capi.post(f"{_methods(customer['id'])}/{method['id']}/default")
        assert_problem(default, 404, "payment_method_not_found")


def test_detaching_another_method_keeps_the_default(capi: Api) -> None:
    customer = create_customer(capi)
    default = attach(capi, customer["id"])
    other = attach(capi, customer["id"], {"type": "bank_transfer"})
    before = capi.get(f"/v1/customers/{customer['id']}").json()

    assert delete(capi, f"{_methods(customer['id'])}/{other['id']}").status_code == 200

    assert capi.get(f"/v1/customers/{customer['id']}").json() == before
    assert before["default_payment_method"] == default["id"]


def test_detach_from_another_customer_is_404(capi: Api, db: Database) -> None:
    owner = create_customer(capi)
    method = attach(capi, owner["id"])
    stranger = create_customer(capi)

    with unchanged(db, capi.merchant.id):
        response = delete(capi, f"{_methods(stranger['id'])}/{method['id']}")

    assert_problem(response, 404, "payment_method_not_found")


def test_detach_with_an_idempotency_key_replays(capi: Api) -> None:
    customer = create_customer(capi)
    method = attach(capi, customer["id"])
    headers = {"Idempotency-Key": "detach-1"}
    path = f"{_methods(customer['id'])}/{method['id']}"

    first = delete(capi, path, headers=headers)
    second = delete(capi, path, headers=headers)

    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
