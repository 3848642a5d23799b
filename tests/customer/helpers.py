"""Helpers for the customer tests: cards, calls the shared `Api` lacks, and snapshots."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import func, select

from quittance.db.uow import Database
from quittance.models import Customer, Payment, PaymentMethod
from tests.factories import Api
from tests.factories import snapshot as invoice_snapshot

CUSTOMER_ID = re.compile(r"^cus_[0-9A-HJKMNP-TV-Z]{26}$")
METHOD_ID = re.compile(r"^pm_[0-9A-HJKMNP-TV-Z]{26}$")
PAYMENT_ID = re.compile(r"^pay_[0-9A-HJKMNP-TV-Z]{26}$")

SUCCEEDS = "4242424242424242"
MASTERCARD = "5555555555554444"
DECLINED = "4000000000000002"


def card(number: str = SUCCEEDS, *, cvc: str = "123", exp_year: int = 2040,
         **extra: Any) -> dict[str, Any]:  # fmt: skip
    """A card method body (with `extra` fields such as `default`)."""
    return {
        "type": "card",
        "card": {"number": number, "exp_month": 12, "exp_year": exp_year, "cvc": cvc},
        **extra,
    }


def delete(api: Api, path: str, **kwargs: Any) -> httpx.Response:
    key = api.merchant.live_key if api.live else api.merchant.test_key
    headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
    return api.client.delete(path, headers=headers, **kwargs)


def create_customer(api: Api, **fields: Any) -> dict[str, Any]:
    response = api.post("/v1/customers", json=fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


def attach(api: Api, customer_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = api.post(f"/v1/customers/{customer_id}/payment_methods", json=body or card())
    assert response.status_code == 201, response.text
    return dict(response.json())


def customer_events(api: Api) -> list[dict[str, Any]]:
    """The merchant's customer and payment method events, oldest first."""
    response = api.get("/v1/events", params={"limit": 100})
    assert response.status_code == 200, response.text
    events = [e for e in response.json()["data"]
              if e["type"].startswith(("customer.", "payment_method."))]  # fmt: skip
    return list(reversed(events))


def _rows(db: Database, model: Any, merchant_id: str) -> list[dict[str, Any]]:
    with db.read() as session:
        rows = session.scalars(
            select(model).where(model.merchant_id == merchant_id).order_by(model.id)
        ).all()
        return [{c.key: getattr(row, c.key) for c in model.__mapper__.column_attrs} for row in rows]


def snapshot(db: Database, merchant_id: str) -> dict[str, Any]:
    """Everything a merchant has stored: invoices, events, keys, customers, methods, payments."""
    state = invoice_snapshot(db, merchant_id)
    state["customers"] = _rows(db, Customer, merchant_id)
    state["payment_methods"] = _rows(db, PaymentMethod, merchant_id)
    with db.read() as session:
        state["payments"] = session.scalar(
            select(func.count()).where(Payment.merchant_id == merchant_id)
        )
    return state


@contextmanager
def unchanged(db: Database, merchant_id: str) -> Iterator[None]:
    """Assert that the block leaves everything the merchant has stored as it was."""
    before = snapshot(db, merchant_id)
    yield
    assert snapshot(db, merchant_id) == before


def assert_refusal(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert a problem document for a business refusal (no per-field `errors`)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert (body["code"], body["status"]) == (code, status), body
    assert body["type"] == f"urn:quittance:error:{code}"
    assert body["title"] and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert "errors" not in body
    return body
