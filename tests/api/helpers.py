"""Assertions shared by the invoice API tests."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx

from quittance.db.uow import Database
from tests.factories import snapshot

PROBLEM = "application/problem+json"
INVOICE_ID = re.compile(r"^inv_[0-9A-HJKMNP-TV-Z]{26}$")
EVENT_ID = re.compile(r"^evt_[0-9A-HJKMNP-TV-Z]{26}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

INVOICE_KEYS = frozenset(
    {
        "id", "object", "livemode", "status", "currency", "amount", "amount_paid",
        "amount_refunded", "amount_cancelled", "amount_authorized", "amount_due", "overpaid",
        "commission",
        "payment_currency", "payment_amount", "exchange_rate", "paid_late", "reference",
        "description", "customer", "line_items", "return_url", "redirect_url", "lifetime",
        "expires_at", "attempts_limit", "attempts_count", "last_payment_error", "metadata",
        "created_at", "updated_at", "finalized_at", "customer_id",
    }
)  # fmt: skip


def ts(value: str) -> datetime:
    """Parse an API timestamp (RFC 3339 with milliseconds and `Z`)."""
    assert TIMESTAMP.match(value), value
    return datetime.fromisoformat(value)


def assert_problem(
    response: httpx.Response,
    status: int,
    code: str,
    *,
    field: str | None = None,
    field_code: str | None = None,
) -> dict[str, Any]:
    """Assert an RFC 9457 problem document with a stable code and a request id.

    With `field`, the per-field `errors` must name that field (with `field_code`, or `code`).
    """
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].split(";")[0] == PROBLEM, response.headers
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"] == f"urn:quittance:error:{code}"
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["request_id"], str) and body["request_id"]
    assert response.headers["x-request-id"] == body["request_id"]
    if status == 422 and code not in ("idempotency_key_reused",):
        errors = body.get("errors")
        assert isinstance(errors, list) and errors, body
        for error in errors:
            assert set(error) == {"field", "code", "message"}, error
            assert error["field"] and error["code"] and error["message"], error
        assert body["code"] == errors[0]["code"], body
    if field is not None:
        pairs = {(e["field"], e["code"]) for e in body["errors"]}
        assert (field, field_code or code) in pairs, body["errors"]
    return body


@contextmanager
def unchanged(db: Database, merchant_id: str) -> Iterator[None]:
    """Assert that the block leaves everything the merchant has stored as it was."""
    before = snapshot(db, merchant_id)
    yield
    after = snapshot(db, merchant_id)
    assert after == before


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    return [item["id"] for item in body["data"]]
