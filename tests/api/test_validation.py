"""Bad requests to POST /v1/invoices: a 4xx problem with a stable code; nothing is stored."""

from collections.abc import Iterator
from typing import Any

import pytest

from quittance.db.uow import Database
from tests.api.helpers import assert_problem, unchanged
from tests.factories import Api

MAX_BODY = 131_072
JSON = {"Content-Type": "application/json"}


def _line(**fields: Any) -> dict[str, Any]:
    return {"description": "Mug", "unit_amount": 1000, **fields}


# (body, field, code): every case is a well-formed JSON document that fails validation.
INVALID_BODIES = [
    pytest.param({"amount": "1999", "currency": "EUR"}, "amount", "invalid_type", id="amount-str"),
    pytest.param({"amount": True, "currency": "EUR"}, "amount", "invalid_type", id="amount-bool"),
    pytest.param({"amount": None, "currency": "EUR"}, "body", "amount_required", id="amount-null"),
    pytest.param({"amount": [1], "currency": "EUR"}, "amount", "invalid_type", id="amount-list"),
    pytest.param({"amount": {"v": 1}, "currency": "EUR"}, "amount", "invalid_type",
                 id="amount-object"),
    pytest.param({"amount": 0, "currency": "EUR"}, "amount", "amount_not_positive", id="zero"),
    pytest.param({"amount": -1, "currency": "EUR"}, "amount", "amount_not_positive",
                 id="negative"),
    pytest.param({"amount": -(10**30), "currency": "EUR"}, "amount", "amount_not_positive",
                 id="huge-negative"),
    pytest.param({"amount": 10**12, "currency": "EUR"}, "amount", "amount_too_large",
                 id="max-plus-one"),
    pytest.param({"amount": 10**40, "currency": "EUR"}, "amount", "amount_too_large",
                 id="huge"),
    pytest.param({"amount": 1e300, "currency": "EUR"}, "amount", "amount_too_large",
                 id="huge-float"),
    pytest.param({"amount": 12.5, "currency": "EUR"}, "amount", "amount_not_integer",
                 id="fraction"),
    pytest.param({"amount": 0.1, "currency": "EUR"}, "amount", "amount_not_integer",
                 id="small-fraction"),
    pytest.param({"amount": 100, "currency": "XYZ"}, "currency", "currency_not_supported",
                 id="unknown-currency"),
    pytest.param({"amount": 100, "currency": "EURO"}, "currency", "currency_not_supported",
                 id="four-letters"),
    pytest.param({"amount": 100, "currency": ""}, "currency", "currency_not_supported",
                 id="empty-currency"),
    pytest.param({"amount": 100, "currency": "XTS"}, "currency", "currency_not_supported",
                 id="test-currency"),
    pytest.param({"amount": 100, "currency": "XAU"}, "currency", "currency_not_supported",
                 id="gold"),
    pytest.param({"amount": 100, "currency": "BGN"}, "currency", "currency_not_supported",
                 id="withdrawn"),
    pytest.param({"amount": 100, "currency": 978}, "currency", "invalid_type",
                 id="numeric-currency"),
    pytest.param({"amount": 100}, "currency", "field_required", id="missing-currency"),
    pytest.param({"amount": 100, "currency": "EUR", "colour": "red"}, "colour", "unknown_field",
                 id="unknown-field"),
    pytest.param({"amount": 100, "currency": "EUR", "amount_paid": 100}, "amount_paid",
                 "unknown_field", id="read-only-field"),
    pytest.param({"amount": 100, "currency": "EUR", "customer": {"email": "a@b.co", "age": 3}},
                 "customer.age", "unknown_field", id="unknown-nested-field"),
    pytest.param({"amount": 100, "currency": "EUR", "reference": 42}, "reference",
                 "invalid_type", id="reference-int"),
    pytest.param({"amount": 100, "currency": "EUR", "reference": ""}, "reference", "too_short",
                 id="reference-empty"),
    pytest.param({"amount": 100, "currency": "EUR", "reference": "r" * 256}, "reference",
                 "too_long", id="reference-long"),
    pytest.param({"amount": 100, "currency": "EUR", "description": "d" * 1001}, "description",
                 "too_long", id="description-long"),
    pytest.param({"amount": 100, "currency": "EUR", "customer": "ada"}, "customer",
                 "invalid_format", id="customer-str"),
    pytest.param({"amount": 100, "currency": "EUR", "customer": ["ada"]}, "customer",
                 "invalid_type", id="customer-list"),
    pytest.param({"amount": 100, "currency": "EUR", "customer": {"email": "nope"}},
                 "customer.email", "invalid_email", id="email"),
    pytest.param({"amount": 100, "currency": "EUR", "customer": {"country": "DEU"}},
                 "customer.country", "too_long", id="country-long"),
    pytest.param({"amount": 100, "currency": "EUR", "customer": {"country": "1A"}},
                 "customer.country", "invalid_country", id="country-digits"),
    pytest.param({"amount": 100, "currency": "EUR", "return_url": "ftp://shop.example/"},
                 "return_url", "invalid_url", id="url-scheme"),
    pytest.param({"amount": 100, "currency": "EUR", "return_url": "javascript:alert(1)"},
                 "return_url", "invalid_url", id="url-javascript"),
    pytest.param({"amount": 100, "currency": "EUR", "lifetime": 59}, "lifetime", "out_of_range",
                 id="lifetime-short"),
    pytest.param({"amount": 100, "currency": "EUR", "lifetime": 366 * 86400 + 1}, "lifetime",
                 "out_of_range", id="lifetime-long"),
    pytest.param({"amount": 100, "currency": "EUR", "lifetime": "3600"}, "lifetime",
                 "invalid_type", id="lifetime-str"),
    pytest.param({"amount": 100, "currency": "EUR", "attempts_limit": 0}, "attempts_limit",
                 "out_of_range", id="attempts-zero"),
    pytest.param({"amount": 100, "currency": "EUR", "metadata": {"k": 1}}, "metadata.k",
                 "invalid_type", id="metadata-int"),
    pytest.param({"amount": 100, "currency": "EUR", "metadata": {f"k{n}": "v" for n in range(51)}},
                 "metadata", "metadata_too_large", id="metadata-keys"),
    pytest.param({"amount": 100, "currency": "EUR", "metadata": {"k": "v" * 501}},
                 "metadata", "metadata_invalid", id="metadata-value"),
    pytest.param({"amount": 100, "currency": "EUR", "status": "created"}, "status",
                 "invalid_value", id="status-created"),
    pytest.param({"amount": 100, "currency": "EUR", "status": "cancelled"}, "status",
                 "invalid_value", id="status-cancelled"),
    pytest.param({"amount": 100, "currency": "EUR", "line_items": [_line()]}, "body",
                 "amount_and_line_items", id="amount-and-lines"),
    pytest.param({"currency": "EUR"}, "body", "amount_required", id="neither"),
    pytest.param({"currency": "EUR", "line_items": []}, "line_items", "too_few_items",
                 id="lines-empty"),
    pytest.param({"currency": "EUR", "line_items": [_line()] * 101}, "line_items",
                 "too_many_items", id="lines-many"),
    pytest.param({"currency": "EUR", "line_items": {"a": 1}}, "line_items", "invalid_type",
                 id="lines-object"),
    pytest.param({"currency": "EUR", "line_items": [_line(quantity=0)]},
                 "line_items.0.quantity", "out_of_range", id="quantity-zero"),
    pytest.param({"currency": "EUR", "line_items": [_line(quantity=1.5)]},
                 "line_items.0.quantity", "invalid_type", id="quantity-fraction"),
    pytest.param({"currency": "EUR", "line_items": [_line(unit_amount=-1)]},
                 "line_items.0.unit_amount", "amount_negative", id="unit-negative"),
    pytest.param({"currency": "EUR", "line_items": [_line(unit_amount=9.99)]},
                 "line_items.0.unit_amount", "amount_not_integer", id="unit-fraction"),
    pytest.param({"currency": "EUR", "line_items": [_line(unit_amount=10**12)]},
                 "line_items.0.unit_amount", "amount_too_large", id="unit-huge"),
    pytest.param({"currency": "EUR", "line_items": [_line(tax_rate="abc")]},
                 "line_items.0.tax_rate", "invalid_rate", id="rate-text"),
    pytest.param({"currency": "EUR", "line_items": [_line(tax_rate="101")]},
                 "line_items.0.tax_rate", "invalid_rate", id="rate-over-100"),
    pytest.param({"currency": "EUR", "line_items": [_line(tax_rate="-1")]},
                 "line_items.0.tax_rate", "invalid_rate", id="rate-negative"),
    pytest.param({"currency": "EUR", "line_items": [_line(tax_rate="NaN")]},
                 "line_items.0.tax_rate", "invalid_rate", id="rate-nan"),
    pytest.param({"currency": "EUR", "line_items": [_line(tax_rate="19.00001")]},
                 "line_items.0.tax_rate", "invalid_rate", id="rate-precision"),
    pytest.param({"currency": "EUR", "line_items": [_line(tax_rate=19.5)]},
                 "line_items.0.tax_rate", "invalid_type", id="rate-float"),
    pytest.param({"currency": "EUR", "line_items": [{"unit_amount": 100}]},
                 "line_items.0.description", "field_required", id="line-description"),
    pytest.param({"currency": "EUR", "line_items": [_line(sku="x")]},
                 "line_items.0.sku", "unknown_field", id="line-unknown-field"),
    pytest.param({"currency": "EUR", "line_items": [_line(), _line(unit_amount="1")]},
                 "line_items.1.unit_amount", "invalid_type", id="second-line"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field", "code"), INVALID_BODIES)
def test_invalid_body_is_refused_with_a_field_error(
    api: Api, db: Database, body: dict[str, Any], field: str, code: str
) -> None:
    # With an Idempotency-Key too: a request that fails validation does not claim the key.
    with unchanged(db, api.merchant.id):
        response = api.post("/v1/invoices", json=body, headers={"Idempotency-Key": "v-1"})
    assert_problem(response, 422, code, field=field)
    # The key is still free: a valid request with it creates an invoice.
    ok = api.post(
        "/v1/invoices", json={"amount": 100, "currency": "EUR"}, headers={"Idempotency-Key": "v-1"}
    )
    assert ok.status_code == 201, ok.text


def test_every_invalid_field_is_reported(api: Api, db: Database) -> None:
    with unchanged(db, api.merchant.id):
        response = api.post(
            "/v1/invoices",
            json={"amount": -5, "currency": "XYZ", "reference": "", "colour": "red"},
        )
    body = assert_problem(response, 422, "amount_not_positive")
    pairs = {(e["field"], e["code"]) for e in body["errors"]}
    assert pairs == {
        ("amount", "amount_not_positive"),
        ("currency", "currency_not_supported"),
        ("reference", "too_short"),
        ("colour", "unknown_field"),
    }


# (raw body, content type, status, code)
RAW_BODIES = [
    pytest.param(b'{"amount": 1999, "currency": "EUR"', "application/json", 400, "invalid_json",
                 id="truncated"),
    pytest.param(b"{amount: 1999}", "application/json", 400, "invalid_json", id="unquoted"),
    pytest.param(b'{"amount": 1999,}', "application/json", 400, "invalid_json",
                 id="trailing-comma"),
    pytest.param(b"\xff\xfe{}", "application/json", 400, "invalid_json", id="not-utf8"),
    pytest.param(b"[" * 20000 + b"]" * 20000, "application/json", 400, "invalid_json",
                 id="deeply-nested"),
    pytest.param(b"amount=1999&currency=EUR", "application/x-www-form-urlencoded", 415,
                 "unsupported_media_type", id="form"),
    pytest.param(b'{"amount": 1999, "currency": "EUR"}', "text/plain", 415,
                 "unsupported_media_type", id="json-as-text"),
    pytest.param(b"<invoice/>", "application/xml", 415, "unsupported_media_type", id="xml"),
    pytest.param(b'{"amount": 1999, "currency": "EUR"}', None, 415, "unsupported_media_type",
                 id="no-content-type"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "content_type", "status", "code"), RAW_BODIES)
def test_unreadable_body_is_refused(
    api: Api, db: Database, content: bytes, content_type: str | None, status: int, code: str
) -> None:
    headers = {"Idempotency-Key": "raw-1"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    with unchanged(db, api.merchant.id):
        response = api.post("/v1/invoices", content=content, headers=headers)
    body = assert_problem(response, status, code)
    assert "errors" not in body


def test_json_content_type_with_charset_and_suffix_is_accepted(api: Api) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = api.post(
            "/v1/invoices",
            content=b'{"amount": 1999, "currency": "EUR"}',
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 201, (content_type, response.text)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'[{"amount": 1999, "currency": "EUR"}]', id="array"),
        pytest.param(b'"amount"', id="string"),
        pytest.param(b"1999", id="number"),
        pytest.param(b"true", id="boolean"),
        pytest.param(b"null", id="null"),
    ],
)
def test_body_that_is_not_an_object_is_refused(api: Api, db: Database, content: bytes) -> None:
    with unchanged(db, api.merchant.id):
        response = api.post("/v1/invoices", content=content, headers=JSON)
    assert_problem(response, 422, "invalid_type", field="body")


def test_empty_body_is_refused(api: Api, db: Database) -> None:
    with unchanged(db, api.merchant.id):
        response = api.post("/v1/invoices", content=b"", headers=JSON)
    assert_problem(response, 422, "field_required", field="body")
    with unchanged(db, api.merchant.id):
        response = api.post("/v1/invoices")
    assert_problem(response, 422, "field_required", field="body")


def test_blank_body_is_not_json(api: Api, db: Database) -> None:
    with unchanged(db, api.merchant.id):
        response = api.post("/v1/invoices", content=b"  \n ", headers=JSON)
    assert_problem(response, 400, "invalid_json")


def _oversized() -> bytes:
    padding = "x" * (MAX_BODY + 10)
    return f'{{"amount": 1999, "currency": "EUR", "description": "{padding}"}}'.encode()


def test_oversized_body_is_refused_with_413(api: Api, db: Database) -> None:
    content = _oversized()
    assert len(content) > MAX_BODY
    with unchanged(db, api.merchant.id):
        response = api.post(
            "/v1/invoices", content=content, headers={**JSON, "Idempotency-Key": "big-1"}
        )
    assert_problem(response, 413, "body_too_large")


def test_oversized_body_without_content_length_is_refused_with_413(api: Api, db: Database) -> None:
    content = _oversized()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(content), 8192):
            yield content[start : start + 8192]

    with unchanged(db, api.merchant.id):
        response = api.post("/v1/invoices", content=chunks(), headers=JSON)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_problem(response, 413, "body_too_large")


def test_oversized_body_is_refused_on_patch_too(api: Api, db: Database) -> None:
    invoice = api.create_invoice(status="draft")
    with unchanged(db, api.merchant.id):
        response = api.patch(f"/v1/invoices/{invoice['id']}", content=_oversized(), headers=JSON)
    assert_problem(response, 413, "body_too_large")


def test_body_just_under_the_limit_is_read(api: Api, db: Database) -> None:
    # Exactly at the limit the body is read and validated (here: a too-long description).
    head = b'{"amount": 1999, "currency": "EUR", "description": "'
    tail = b'"}'
    content = head + b"x" * (MAX_BODY - len(head) - len(tail)) + tail
    assert len(content) == MAX_BODY
    with unchanged(db, api.merchant.id):
        response = api.post("/v1/invoices", content=content, headers=JSON)
    assert_problem(response, 422, "too_long", field="description")


def test_request_id_is_echoed_in_problems(api: Api, db: Database) -> None:
    with unchanged(db, api.merchant.id):
        response = api.post(
            "/v1/invoices",
            json={"amount": 0, "currency": "EUR"},
            headers={"X-Request-Id": "trace-42"},
        )
    body = assert_problem(response, 422, "amount_not_positive")
    assert body["request_id"] == "trace-42"


def test_each_problem_has_its_own_request_id(api: Api) -> None:
    first = api.post("/v1/invoices", json={"amount": 0, "currency": "EUR"}).json()
    second = api.post("/v1/invoices", json={"amount": 0, "currency": "EUR"}).json()
    assert first["request_id"] != second["request_id"]
    assert first["request_id"].startswith("req_")


def test_invalid_idempotency_key_is_refused(api: Api, db: Database) -> None:
    for key in ("has space", "k" * 256, ""):
        with unchanged(db, api.merchant.id):
            response = api.post(
                "/v1/invoices",
                json={"amount": 100, "currency": "EUR"},
                headers={"Idempotency-Key": key},
            )
        assert_problem(response, 400, "idempotency_key_invalid")
