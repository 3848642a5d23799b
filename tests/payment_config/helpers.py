"""Helpers for the payment-settings tests: calls, snapshots, and refusals without field errors."""

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from quittance import clock
from quittance.db.uow import Database
from quittance.domain.ids import new_id
from quittance.models import (
    Customer,
    Invoice,
    MethodConfig,
    Payment,
    PaymentMethod,
    PaymentOptions,
    ProviderConnection,
)
from tests.api.helpers import PROBLEM
from tests.factories import Api, snapshot

SUCCEEDS = "4242424242424242"
DECLINED = "4000000000000002"
METHODS = ["card", "bank_transfer", "invoice"]
CONNECTION_KEYS = {
    "id", "object", "livemode", "provider", "name", "options", "enabled", "methods",
    "created_at", "updated_at",
}  # fmt: skip


def card(number: str = SUCCEEDS) -> dict[str, Any]:
    return {"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2030,
                                     "cvc": "123"}}  # fmt: skip


def pay(api: Api, invoice_id: str, method: Any, **kwargs: Any) -> httpx.Response:
    return api.post(f"/v1/invoices/{invoice_id}/pay", json={"payment_method": method}, **kwargs)


def create_connection(api: Api, name: str = "Acquirer", **fields: Any) -> dict[str, Any]:
    response = api.post(
        "/v1/settings/provider_connections", json={"provider": "sandbox", "name": name, **fields}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def set_method(api: Api, method: str, **fields: Any) -> dict[str, Any]:
    response = api.patch(f"/v1/settings/methods/{method}", json=fields)
    assert response.status_code == 200, response.text
    return dict(response.json())


def methods(api: Api) -> dict[str, dict[str, Any]]:
    response = api.get("/v1/settings/methods")
    assert response.status_code == 200, response.text
    return {m["method"]: m for m in response.json()["data"]}


def default_connection(api: Api) -> str:
    """The sandbox connection a new merchant's methods route through (its oldest one)."""
    response = api.get("/v1/settings/provider_connections", params={"limit": 100})
    assert response.status_code == 200, response.text
    oldest = response.json()["data"][-1]
    assert oldest["name"] == "Sandbox"
    return str(oldest["id"])


def _rows(session: Any, model: Any, merchant_id: str, order: Any) -> list[dict[str, Any]]:
    rows = session.scalars(select(model).where(model.merchant_id == merchant_id).order_by(order))
    return [{c.key: getattr(r, c.key) for c in model.__mapper__.column_attrs} for r in rows]


def stored(db: Database, merchant_id: str) -> dict[str, Any]:
    """Everything a merchant has stored that these features touch, to assert nothing changed."""
    with db.read() as session:
        return {
            **snapshot(db, merchant_id),
            "connections": _rows(session, ProviderConnection, merchant_id, ProviderConnection.id),
            "methods": _rows(session, MethodConfig, merchant_id, MethodConfig.method),
            "payments": _rows(session, Payment, merchant_id, Payment.id),
            "payment_methods": _rows(session, PaymentMethod, merchant_id, PaymentMethod.id),
            "options": _rows(session, PaymentOptions, merchant_id, PaymentOptions.livemode),
        }


def assert_refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert a problem document for a business rule (no per-field `errors` required)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].split(";")[0] == PROBLEM
    body: dict[str, Any] = response.json()
    assert (body["code"], body["status"]) == (code, status), body
    assert body["type"] == f"urn:quittance:error:{code}"
    assert body["title"] and body["detail"] and body["request_id"]
    return body


def save_customer(
    db: Database, merchant_id: str, *, country: str | None = None, livemode: bool = False
) -> str:
    """A saved customer, written directly (the customers API is built elsewhere)."""
    now = clock.now()
    customer = Customer(
        id=new_id("cus"), merchant_id=merchant_id, livemode=livemode, email="ada@example.com",
        name="Ada", country=country, default_payment_method_id=None, metadata_={},
        created_at=now, updated_at=now,
    )  # fmt: skip
    with db.write() as session:
        session.add(customer)
    return customer.id


def save_method(
    db: Database, merchant_id: str, customer_id: str | None, *, type: str = "card",
    last4: str = "4242", detached: bool = False, default: bool = False,
) -> str:  # fmt: skip
    now = clock.now()
    method = PaymentMethod(
        id=new_id("pm"), merchant_id=merchant_id, livemode=False, customer_id=customer_id,
        type=type, provider="sandbox", provider_token=f"tok_sandbox_{last4}",
        brand="visa" if type == "card" else None, last4=last4 if type == "card" else None,
        exp_month=12 if type == "card" else None, exp_year=2030 if type == "card" else None,
        created_at=now, detached_at=now - timedelta(seconds=1) if detached else None,
    )  # fmt: skip
    with db.write() as session:
        session.add(method)
        session.flush()
        if default and customer_id is not None:
            customer = session.get(Customer, customer_id)
            assert customer is not None
            customer.default_payment_method_id = method.id
    return method.id


def link_customer(db: Database, invoice_id: str, customer_id: str) -> None:
    with db.write() as session:
        invoice = session.get(Invoice, invoice_id)
        assert invoice is not None
        invoice.customer_id = customer_id
