"""POST /v1/invoices: amounts, line items, currencies, the payment link and the lifetime."""

import base64
import re
from datetime import timedelta
from typing import Any

import pytest

from quittance.db.uow import Database
from tests.api.helpers import INVOICE_ID, INVOICE_KEYS, assert_problem, ts, unchanged
from tests.factories import Api, snapshot

MAX_AMOUNT = 999_999_999_999
TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
UNTOUCHED = {"quantity_cancelled": 0, "quantity_delivered": 0, "quantity_refunded": 0}


def test_create_with_amount_returns_the_full_document(api: Api, db: Database) -> None:
    response = api.post(
        "/v1/invoices",
        json={
            "amount": 1999,
            "currency": "EUR",
            "reference": "order-1042",
            "description": "Two tickets",
            "customer": {"email": "ada@example.com", "name": "Ada Lovelace", "country": "de"},
            "return_url": "https://shop.example/orders/1042?status={status}",
            "metadata": {"order": "1042", "channel": "web"},
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    invoice = response.json()
    assert set(invoice) == INVOICE_KEYS
    assert INVOICE_ID.match(invoice["id"])
    created_at = ts(invoice["created_at"])
    expected = {
        "id": invoice["id"],
        "object": "invoice",
        "livemode": False,
        "status": "created",
        "currency": "EUR",
        "amount": 1999,
        "amount_paid": 0,
        "amount_refunded": 0,
        "amount_cancelled": 0,
        "amount_authorized": 0,
        "amount_due": 1999,
        "overpaid": False,
        "commission": 0,
        "payment_currency": None,
        "payment_amount": None,
        "exchange_rate": None,
        "paid_late": False,
        "reference": "order-1042",
        "description": "Two tickets",
        "customer": {"email": "ada@example.com", "name": "Ada Lovelace", "country": "DE"},
        "customer_id": None,
        "line_items": [],
        "return_url": "https://shop.example/orders/1042?status={status}",
        "redirect_url": invoice["redirect_url"],
        "lifetime": 86400,
        "expires_at": invoice["expires_at"],
        "attempts_limit": 5,
        "attempts_count": 0,
        "last_payment_error": None,
        "metadata": {"order": "1042", "channel": "web"},
        "created_at": invoice["created_at"],
        "updated_at": invoice["created_at"],
        "finalized_at": invoice["created_at"],
    }
    assert invoice == expected
    assert ts(invoice["expires_at"]) - created_at == timedelta(seconds=86400)

    fetched = api.get(f"/v1/invoices/{invoice['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == invoice

    stored = snapshot(db, api.merchant.id)
    assert [row["id"] for row in stored["invoices"]] == [invoice["id"]]
    assert stored["invoices"][0]["amount"] == 1999
    assert stored["lines"] == 0
    assert stored["events"] == 1


def test_minimal_invoice_has_no_customer_and_empty_metadata(api: Api) -> None:
    invoice = api.create_invoice(amount=1, currency="EUR")
    assert invoice["amount"] == 1
    assert invoice["reference"] is None
    assert invoice["description"] is None
    assert invoice["customer"] is None
    assert invoice["return_url"] is None
    assert invoice["metadata"] == {}
    assert invoice["line_items"] == []


def test_largest_allowed_amount_is_accepted(api: Api) -> None:
    invoice = api.create_invoice(amount=MAX_AMOUNT)
    assert invoice["amount"] == MAX_AMOUNT
    assert invoice["amount_due"] == MAX_AMOUNT
    assert api.get(f"/v1/invoices/{invoice['id']}").json()["amount"] == MAX_AMOUNT


@pytest.mark.parametrize(
    ("currency", "amount"),
    [("JPY", 1500), ("EUR", 1999), ("KWD", 12345), ("CLF", 123456), ("USD", 5)],
)
def test_amount_is_kept_in_minor_units_of_any_currency(
    api: Api, currency: str, amount: int
) -> None:
    invoice = api.create_invoice(amount=amount, currency=currency)
    assert (invoice["currency"], invoice["amount"], invoice["amount_due"]) == (
        currency,
        amount,
        amount,
    )


@pytest.mark.parametrize(
    ("given", "stored"), [("eur", "EUR"), ("jpy", "JPY"), ("Kwd", "KWD"), ("clF", "CLF")]
)
def test_currency_is_normalised_to_upper_case(api: Api, given: str, stored: str) -> None:
    invoice = api.create_invoice(currency=given)
    assert invoice["currency"] == stored
    assert api.get(f"/v1/invoices/{invoice['id']}").json()["currency"] == stored
    listed = api.get("/v1/invoices", params={"currency": stored}).json()["data"]
    assert [item["id"] for item in listed] == [invoice["id"]]


def _line(
    description: str, quantity: int, unit_amount: int, tax_rate: str | None
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "description": description,
        "quantity": quantity,
        "unit_amount": unit_amount,
    }
    if tax_rate is not None:
        line["tax_rate"] = tax_rate
    return line


# (currency, [(quantity, unit_amount, tax_rate)], [(net, tax, amount)], invoice amount)
LINE_CASES = [
    pytest.param(
        "EUR",
        [(2, 1000, "19"), (1, 999, "7")],
        [(2000, 380, 2380), (999, 70, 1069)],  # 69.93 -> 70
        3449,
        id="eur-two-rates",
    ),
    pytest.param(
        "EUR",
        [(1, 50, "1"), (1, 250, "1"), (1, 150, "1")],
        [(50, 1, 51), (250, 3, 253), (150, 2, 152)],  # 0.5, 2.5, 1.5: half up, not half even
        456,
        id="half-up-not-bankers",
    ),
    pytest.param(
        "EUR",
        [(1, 5, "10"), (1, 5, "10"), (1, 5, "10")],
        [(5, 1, 6), (5, 1, 6), (5, 1, 6)],  # rounded per line: 3 x 0.5 -> 3, not 1.5 -> 2
        18,
        id="rounded-per-line",
    ),
    pytest.param(
        "EUR",
        [(1, 889, "5")],
        [(889, 44, 933)],  # 44.45 rounds once to 44 (rounding twice would give 45)
        933,
        id="rounded-once",
    ),
    pytest.param(
        "EUR",
        [(3, 333, "7.5"), (1, 10000, "19.0001"), (4, 1234, None)],
        [(999, 75, 1074), (10000, 1900, 11900), (4936, 0, 4936)],  # 74.925 -> 75; 1900.01
        17910,
        id="fractional-rates-and-default-zero",
    ),
    pytest.param(
        "EUR",
        [(1, 0, "19"), (2, 500, "0")],
        [(0, 0, 0), (1000, 0, 1000)],
        1000,
        id="free-line",
    ),
    pytest.param(
        "JPY",
        [(3, 1200, "10"), (1, 105, "8")],
        [(3600, 360, 3960), (105, 8, 113)],  # 8.4 -> 8
        4073,
        id="jpy",
    ),
    pytest.param(
        "KWD",
        [(1, 1250, "5"), (2, 333, "15")],
        [(1250, 63, 1313), (666, 100, 766)],  # 62.5 -> 63; 99.9 -> 100
        2079,
        id="kwd",
    ),
    pytest.param(
        "CLF",
        [(2, 12345, "19"), (1, 1, "50")],
        [(24690, 4691, 29381), (1, 1, 2)],  # 4691.1 -> 4691; 0.5 -> 1
        29383,
        id="clf",
    ),
]


@pytest.mark.parametrize(("currency", "lines", "amounts", "total"), LINE_CASES)
def test_line_items_compute_the_amount_exactly(
    api: Api,
    db: Database,
    currency: str,
    lines: list[tuple[int, int, str | None]],
    amounts: list[tuple[int, int, int]],
    total: int,
) -> None:
    body = {
        "currency": currency,
        "line_items": [
            _line(f"item {n}", qty, unit, rate) for n, (qty, unit, rate) in enumerate(lines)
        ],
    }
    response = api.post("/v1/invoices", json=body)
    assert response.status_code == 201, response.text
    invoice = response.json()
    assert invoice["amount"] == total
    assert invoice["amount_due"] == total
    assert invoice["currency"] == currency
    expected_lines = [
        {
            "id": f"li_{invoice['id'][4:]}_{n}",
            "description": f"item {n}",
            "quantity": qty,
            "unit_amount": unit,
            "tax_rate": rate if rate is not None else "0",
            "amount_net": net,
            "amount_tax": tax,
            "amount": gross,
            **UNTOUCHED,
        }
        for n, ((qty, unit, rate), (net, tax, gross)) in enumerate(zip(lines, amounts, strict=True))
    ]
    assert invoice["line_items"] == expected_lines
    assert sum(line["amount"] for line in invoice["line_items"]) == total
    assert api.get(f"/v1/invoices/{invoice['id']}").json() == invoice
    assert snapshot(db, api.merchant.id)["lines"] == len(lines)


def test_line_item_quantity_defaults_to_one_and_integer_rate_is_accepted(api: Api) -> None:
    response = api.post(
        "/v1/invoices",
        json={
            "currency": "EUR",
            "line_items": [{"description": "Mug", "unit_amount": 1250, "tax_rate": 19}],
        },
    )
    assert response.status_code == 201, response.text
    (line,) = response.json()["line_items"]
    assert line == {
        "id": f"li_{response.json()['id'][4:]}_0",
        "description": "Mug",
        "quantity": 1,
        "unit_amount": 1250,
        "tax_rate": "19",
        "amount_net": 1250,
        "amount_tax": 238,  # 237.5 -> 238
        "amount": 1488,
        **UNTOUCHED,
    }
    assert response.json()["amount"] == 1488


def test_line_items_keep_their_order(api: Api) -> None:
    names = [f"line {n:02d}" for n in range(12)]
    response = api.post(
        "/v1/invoices",
        json={
            "currency": "EUR",
            "line_items": [{"description": name, "unit_amount": 100} for name in names],
        },
    )
    assert response.status_code == 201, response.text
    invoice = response.json()
    assert [line["description"] for line in invoice["line_items"]] == names
    assert invoice["amount"] == 1200
    fetched = api.get(f"/v1/invoices/{invoice['id']}").json()
    assert [line["description"] for line in fetched["line_items"]] == names


def test_line_items_adding_up_to_zero_are_refused(api: Api, db: Database) -> None:
    with unchanged(db, api.merchant.id):
        response = api.post(
            "/v1/invoices",
            json={
                "currency": "EUR",
                "line_items": [{"description": "Free sample", "unit_amount": 0}],
            },
        )
    assert_problem(response, 422, "amount_not_positive", field="line_items")


def test_line_items_adding_up_to_too_much_are_refused(api: Api, db: Database) -> None:
    with unchanged(db, api.merchant.id):
        response = api.post(
            "/v1/invoices",
            json={
                "currency": "EUR",
                "line_items": [
                    {"description": "a", "quantity": 2, "unit_amount": MAX_AMOUNT // 2 + 1},
                ],
            },
        )
    assert_problem(response, 422, "amount_too_large", field="line_items")
    with unchanged(db, api.merchant.id):
        response = api.post(
            "/v1/invoices",
            json={
                "currency": "EUR",
                "line_items": [
                    {"description": "a", "quantity": 1_000_000, "unit_amount": MAX_AMOUNT},
                ],
            },
        )
    assert_problem(response, 422, "amount_too_large", field="line_items")


def test_line_items_tax_can_push_the_total_over_the_limit(api: Api, db: Database) -> None:
    with unchanged(db, api.merchant.id):
        response = api.post(
            "/v1/invoices",
            json={
                "currency": "EUR",
                "line_items": [{"description": "a", "unit_amount": MAX_AMOUNT, "tax_rate": "1"}],
            },
        )
    assert_problem(response, 422, "amount_too_large", field="line_items")


def _token(invoice: dict[str, Any]) -> str:
    prefix = "http://testserver/pay/"
    assert invoice["redirect_url"].startswith(prefix), invoice["redirect_url"]
    return str(invoice["redirect_url"][len(prefix) :])


def test_redirect_url_carries_an_unguessable_token_not_the_id(api: Api) -> None:
    first = api.create_invoice()
    second = api.create_invoice()
    tokens = [_token(first), _token(second)]
    for invoice, token in zip((first, second), tokens, strict=True):
        assert TOKEN.match(token), token
        assert "/" not in token and "?" not in token
        # URL-safe base64 without padding: 6 bits per character.
        assert len(token) * 6 >= 128, token
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert len(raw) * 8 >= 128
        assert invoice["id"] not in token
        assert invoice["id"][4:] not in token
        assert invoice["id"][4:14] not in token  # not even the time part of the id
    assert tokens[0] != tokens[1]
    # The token is stable: reading the invoice shows the same link.
    assert api.get(f"/v1/invoices/{first['id']}").json()["redirect_url"] == first["redirect_url"]


def test_expires_at_is_created_at_plus_lifetime(api: Api) -> None:
    for lifetime in (60, 3600, 366 * 24 * 3600):
        invoice = api.create_invoice(lifetime=lifetime)
        assert invoice["lifetime"] == lifetime
        assert invoice["finalized_at"] == invoice["created_at"]
        assert ts(invoice["expires_at"]) - ts(invoice["created_at"]) == timedelta(seconds=lifetime)


def test_attempts_limit_override(api: Api) -> None:
    invoice = api.create_invoice(attempts_limit=1)
    assert invoice["attempts_limit"] == 1
    assert invoice["attempts_count"] == 0


def test_draft_has_no_expiry_and_is_not_finalized(api: Api) -> None:
    invoice = api.create_invoice(status="draft", lifetime=600)
    assert invoice["status"] == "draft"
    assert invoice["expires_at"] is None
    assert invoice["finalized_at"] is None
    assert invoice["lifetime"] == 600
    assert invoice["amount"] == 1999
    assert invoice["redirect_url"].startswith("http://testserver/pay/")
    assert api.get(f"/v1/invoices/{invoice['id']}").json() == invoice


def test_draft_with_line_items(api: Api) -> None:
    response = api.post(
        "/v1/invoices",
        json={
            "currency": "EUR",
            "status": "draft",
            "line_items": [{"description": "Tea", "quantity": 2, "unit_amount": 450}],
        },
    )
    assert response.status_code == 201, response.text
    invoice = response.json()
    assert (invoice["status"], invoice["amount"], invoice["expires_at"]) == ("draft", 900, None)


def test_create_writes_one_created_event(api: Api) -> None:
    invoice = api.create_invoice(reference="evt-1")
    events = api.get(f"/v1/invoices/{invoice['id']}/events").json()["data"]
    assert len(events) == 1
    (event,) = events
    assert event["type"] == "invoice.created"
    assert (event["previous_status"], event["status"], event["trigger"]) == (
        None,
        "created",
        "create",
    )
    assert event["data"]["object"] == invoice


def test_invoice_uses_the_merchants_payment_options(api: Api, db: Database) -> None:
    before = api.create_invoice()
    response = api.patch(
        "/v1/settings/payment_options",
        json={
            "invoice_lifetime": 7200,
            "attempts_limit": 3,
            "return_url": "https://shop.example/back",
        },
    )
    assert response.status_code == 200, response.text

    invoice = api.create_invoice()
    assert invoice["lifetime"] == 7200
    assert invoice["attempts_limit"] == 3
    assert invoice["return_url"] == "https://shop.example/back"
    assert ts(invoice["expires_at"]) - ts(invoice["created_at"]) == timedelta(seconds=7200)

    explicit = api.create_invoice(
        lifetime=120, attempts_limit=9, return_url="https://shop.example/other"
    )
    assert (explicit["lifetime"], explicit["attempts_limit"], explicit["return_url"]) == (
        120,
        9,
        "https://shop.example/other",
    )
    assert ts(explicit["expires_at"]) - ts(explicit["created_at"]) == timedelta(seconds=120)

    # The invoice created before the change keeps what it was created with.
    assert api.get(f"/v1/invoices/{before['id']}").json() == before


def test_live_key_creates_live_invoices(api: Api) -> None:
    live = api.as_live().create_invoice()
    assert live["livemode"] is True
    assert api.as_live().get(f"/v1/invoices/{live['id']}").json() == live
