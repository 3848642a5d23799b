"""Invoices for saved customers (`"customer": "cus_…"`), and paying with the default method."""

from typing import Any

import pytest

from quittance.db.uow import Database
from tests.api.helpers import assert_problem, ids
from tests.customer.helpers import (
    DECLINED,
    PAYMENT_ID,
    assert_refusal,
    attach,
    card,
    create_customer,
    delete,
    unchanged,
)
from tests.factories import Api, MerchantFactory

ADA = {"email": "ada@example.com", "name": "Ada Lovelace", "country": "DE"}


def test_an_invoice_for_a_saved_customer_copies_its_details(capi: Api) -> None:
    customer = create_customer(capi, **ADA)

    invoice = capi.create_invoice(customer=customer["id"], reference="order-7")

    assert invoice["customer_id"] == customer["id"]
    assert invoice["customer"] == ADA
    assert capi.get(f"/v1/invoices/{invoice['id']}").json() == invoice
    assert ids(capi.get("/v1/invoices", params={"q": "lovelace"})) == [invoice["id"]]
    assert ids(capi.get("/v1/invoices", params={"customer_email": ADA["email"]})) == [invoice["id"]]
    created = capi.get(f"/v1/invoices/{invoice['id']}/events").json()["data"][0]
    assert created["data"]["object"] == invoice


def test_a_customer_without_details_gives_no_customer_object(capi: Api) -> None:
    customer = create_customer(capi)

    invoice = capi.create_invoice(customer=customer["id"])

    assert (invoice["customer"], invoice["customer_id"]) == (None, customer["id"])


def test_an_inline_customer_has_no_customer_id(capi: Api) -> None:
    invoice = capi.create_invoice(customer=ADA)

    assert (invoice["customer"], invoice["customer_id"]) == (ADA, None)


def test_later_changes_to_the_customer_leave_the_invoice_as_it_was(capi: Api) -> None:
    customer = create_customer(capi, **ADA)
    invoice = capi.create_invoice(customer=customer["id"])

    capi.patch(f"/v1/customers/{customer['id']}", json={"email": "ada@king.example"})

    assert capi.get(f"/v1/invoices/{invoice['id']}").json()["customer"] == ADA


@pytest.mark.parametrize("kind", ["unknown", "other-merchant", "live-mode"])
def test_an_unknown_customer_refuses_the_invoice_and_stores_nothing(
    capi: Api, db: Database, merchants: MerchantFactory, kind: str
) -> None:
    customer_id = {
        "unknown": "cus_01M7YA26Y5KQ4WYDJ9YSGCH3F8",
        "other-merchant": lambda: create_customer(Api(capi.client, merchants.create()))["id"],
        "live-mode": lambda: create_customer(capi.as_live())["id"],
    }[kind]
    if callable(customer_id):
        customer_id = customer_id()

    with unchanged(db, capi.merchant.id):
        body = {"amount": 1999, "currency": "EUR", "customer": customer_id}
        response = capi.post("/v1/invoices", json=body)

    problem = assert_problem(response, 422, "customer_not_found", field="customer")
    assert customer_id in problem["detail"]


@pytest.mark.parametrize(
    "value",
    [
        "ada@example.com",
        "cus_x",
        "inv_01M7YA26Y5KQ4WYDJ9YSGCH3F8",
        "cus_01m7ya26y5kq4wydj9ysgch3f8",
        "",
        42,
        ["cus_x"],
    ],
)
def test_a_customer_that_is_neither_an_id_nor_an_object_is_a_field_error(
    capi: Api, db: Database, value: Any
) -> None:
    code = "invalid_format" if isinstance(value, str) else "invalid_type"

    with unchanged(db, capi.merchant.id):
        body = {"amount": 1999, "currency": "EUR", "customer": value}
        response = capi.post("/v1/invoices", json=body, headers={"Idempotency-Key": "c-1"})

    assert_problem(response, 422, code, field="customer")


def test_an_unknown_customer_is_a_stored_business_error(capi: Api) -> None:
    body = {"amount": 1999, "currency": "EUR", "customer": "cus_01M7YA26Y5KQ4WYDJ9YSGCH3F8"}
    headers = {"Idempotency-Key": "c-2"}

    first = capi.post("/v1/invoices", json=body, headers=headers)
    second = capi.post("/v1/invoices", json=body, headers=headers)

    assert_problem(first, 422, "customer_not_found", field="customer")
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert ids(capi.get("/v1/invoices")) == []


def test_a_draft_can_be_linked_relinked_and_unlinked(capi: Api, db: Database) -> None:
    ada = create_customer(capi, **ADA)
    grace = create_customer(capi, email="grace@example.com", name="Grace Hopper")
    draft = capi.create_invoice(status="draft")
    path = f"/v1/invoices/{draft['id']}"

    linked = capi.patch(path, json={"customer": ada["id"]}).json()
    assert (linked["customer_id"], linked["customer"]) == (ada["id"], ADA)
    relinked = capi.patch(path, json={"customer": grace["id"]}).json()
    assert relinked["customer_id"] == grace["id"]
    assert relinked["customer"] == {"email": "grace@example.com", "name": "Grace Hopper",
                                    "country": None}  # fmt: skip
    with unchanged(db, capi.merchant.id):
        refused = capi.patch(path, json={"customer": "cus_01M7YA26Y5KQ4WYDJ9YSGCH3F8"})
        assert_problem(refused, 422, "customer_not_found", field="customer")
    inline = capi.patch(path, json={"customer": {"email": "x@example.com"}}).json()
    assert (inline["customer_id"], inline["customer"]) == (
        None, {"email": "x@example.com", "name": None, "country": None})  # fmt: skip
    capi.patch(path, json={"customer": ada["id"]})
    cleared = capi.patch(path, json={"customer": None}).json()
    assert (cleared["customer_id"], cleared["customer"]) == (None, None)


def test_a_finalized_invoice_cannot_be_linked(capi: Api, db: Database) -> None:
    customer = create_customer(capi)
    invoice = capi.create_invoice()

    with unchanged(db, capi.merchant.id):
        response = capi.patch(f"/v1/invoices/{invoice['id']}", json={"customer": customer["id"]})

    assert_problem(response, 409, "invoice_not_draft")


def _pay(api: Api, invoice_id: str, body: Any) -> Any:
    return api.post(f"/v1/invoices/{invoice_id}/pay", json=body)


def test_end_to_end_pay_with_the_default_method_then_detach(capi: Api, db: Database) -> None:
    customer = create_customer(capi, **ADA)
    method = attach(capi, customer["id"], card("4242 4242 4242 4242", cvc="737", default=True))
    assert (
        capi.get(f"/v1/customers/{customer['id']}").json()["default_payment_method"]
        == (method["id"])
    )
    invoice = capi.create_invoice(amount=2500, customer=customer["id"])

    response = _pay(capi, invoice["id"], {})

    assert response.status_code == 200, response.text
    payment = response.json()
    assert PAYMENT_ID.match(payment["id"])
    assert (payment["status"], payment["method"], payment["payment_method"]) == (
        "succeeded", "card", method["id"])  # fmt: skip
    assert (payment["amount"], payment["amount_received"], payment["currency"]) == (
        2500, 2500, "EUR")  # fmt: skip
    assert payment["error"] is None
    paid = payment["invoice"]
    assert (paid["id"], paid["status"], paid["amount_paid"], paid["amount_due"]) == (
        invoice["id"], "processed", 2500, 0)  # fmt: skip
    assert paid["customer_id"] == customer["id"]
    assert capi.get(f"/v1/invoices/{invoice['id']}").json()["status"] == "processed"
    retrieved = capi.get(f"/v1/payments/{payment['id']}").json()
    assert retrieved["payment_method"] == method["id"]

    detached = delete(capi, f"/v1/customers/{customer['id']}/payment_methods/{method['id']}")
    assert detached.status_code == 200, detached.text
    second = capi.create_invoice(amount=900, customer=customer["id"])
    with unchanged(db, capi.merchant.id):
        refused = _pay(capi, second["id"], {})
        assert_refusal(refused, 422, "payment_method_required")
        without_body = capi.post(f"/v1/invoices/{second['id']}/pay")
        assert_refusal(without_body, 422, "payment_method_required")
    assert capi.get(f"/v1/invoices/{second['id']}").json()["status"] == "created"


def test_a_new_default_pays_after_the_old_one_was_detached(capi: Api) -> None:
    customer = create_customer(capi)
    first = attach(capi, customer["id"])
    second = attach(capi, customer["id"], card("5555555555554444"))
    delete(capi, f"/v1/customers/{customer['id']}/payment_methods/{first['id']}")
    capi.post(f"/v1/customers/{customer['id']}/payment_methods/{second['id']}/default")
    invoice = capi.create_invoice(customer=customer["id"])

    payment = _pay(capi, invoice["id"], {}).json()

    assert (payment["status"], payment["payment_method"]) == ("succeeded", second["id"])


def test_a_declined_default_method_fails_the_attempt(capi: Api) -> None:
    customer = create_customer(capi)
    method = attach(capi, customer["id"], card(DECLINED))
    invoice = capi.create_invoice(customer=customer["id"])

    payment = _pay(capi, invoice["id"], {}).json()

    assert (payment["status"], payment["payment_method"]) == ("failed", method["id"])
    assert payment["error"]["code"] == "card_declined"
    assert payment["invoice"]["status"] == "created"
    assert payment["invoice"]["last_payment_error"]["code"] == "card_declined"


def test_another_customers_saved_method_cannot_pay(capi: Api, db: Database) -> None:
    ada = create_customer(capi, **ADA)
    grace = create_customer(capi)
    graces = attach(capi, grace["id"])
    invoice = capi.create_invoice(customer=ada["id"])

    with unchanged(db, capi.merchant.id):
        response = _pay(capi, invoice["id"], {"payment_method": graces["id"]})

    assert_refusal(response, 422, "payment_method_customer_mismatch")


def test_an_invoice_without_a_customer_needs_a_method(capi: Api, db: Database) -> None:
    invoice = capi.create_invoice(customer=ADA)

    with unchanged(db, capi.merchant.id):
        assert_refusal(_pay(capi, invoice["id"], {}), 422, "payment_method_required")
