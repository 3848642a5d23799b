"""GET /v1/invoices: newest first, cursor pagination, filters and free-text search."""

from dataclasses import dataclass
from datetime import UTC, timedelta, timezone
from typing import Any

import pytest

from quittance.db.uow import Database
from tests.api.helpers import assert_problem, ids, ts, unchanged
from tests.factories import Api


def test_empty_list(api: Api) -> None:
    response = api.get("/v1/invoices")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "object": "list",
        "url": "/v1/invoices",
        "data": [],
        "has_more": False,
        "next_cursor": None,
    }


def test_list_items_are_full_invoice_documents(api: Api) -> None:
    invoice = api.create_invoice(reference="full")
    body = api.get("/v1/invoices").json()
    assert body["data"] == [invoice]


def test_cursor_pagination_over_several_pages(api: Api) -> None:
    created = [api.create_invoice(reference=f"p{n}")["id"] for n in range(7)]
    newest_first = list(reversed(created))
    assert newest_first == sorted(created, reverse=True)

    first = api.get("/v1/invoices", params={"limit": 3}).json()
    assert [i["id"] for i in first["data"]] == newest_first[0:3]
    assert first["has_more"] is True
    assert first["next_cursor"] == newest_first[2]

    second = api.get("/v1/invoices", params={"limit": 3, "starting_after": first["next_cursor"]})
    second_body = second.json()
    assert [i["id"] for i in second_body["data"]] == newest_first[3:6]
    assert second_body["has_more"] is True
    assert second_body["next_cursor"] == newest_first[5]

    third = api.get(
        "/v1/invoices", params={"limit": 3, "starting_after": second_body["next_cursor"]}
    ).json()
    assert [i["id"] for i in third["data"]] == newest_first[6:]
    assert third["has_more"] is False
    assert third["next_cursor"] is None

    # Exactly one page's worth left: has_more is False, not a dangling empty page.
    exact = api.get("/v1/invoices", params={"limit": 4, "starting_after": newest_first[2]}).json()
    assert [i["id"] for i in exact["data"]] == newest_first[3:7]
    assert exact["has_more"] is False
    assert exact["next_cursor"] is None

    # Past the oldest: empty.
    assert ids(api.get("/v1/invoices", params={"starting_after": newest_first[-1]})) == []

    # The default limit (20) holds all seven.
    everything = api.get("/v1/invoices").json()
    assert [i["id"] for i in everything["data"]] == newest_first
    assert everything["has_more"] is False


def test_ending_before_pages_backwards(api: Api) -> None:
    created = [api.create_invoice()["id"] for _ in range(6)]
    newest_first = list(reversed(created))

    # The two invoices just newer than newest_first[4], still listed newest first.
    back = api.get("/v1/invoices", params={"limit": 2, "ending_before": newest_first[4]}).json()
    assert [i["id"] for i in back["data"]] == newest_first[2:4]
    assert back["has_more"] is True

    back = api.get("/v1/invoices", params={"limit": 5, "ending_before": newest_first[2]}).json()
    assert [i["id"] for i in back["data"]] == newest_first[0:2]
    assert back["has_more"] is False

    assert ids(api.get("/v1/invoices", params={"ending_before": newest_first[0]})) == []


def test_limit_of_one_walks_every_invoice(api: Api) -> None:
    created = [api.create_invoice()["id"] for _ in range(4)]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 1}
        if cursor:
            params["starting_after"] = cursor
        body = api.get("/v1/invoices", params=params).json()
        seen.extend(i["id"] for i in body["data"])
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    assert seen == list(reversed(created))


@dataclass
class Catalogue:
    """Invoices with distinct fields, by name, to check filters against."""

    api: Api
    by_name: dict[str, dict[str, Any]]

    def id(self, name: str) -> str:
        return str(self.by_name[name]["id"])

    def expect(self, *names: str) -> list[str]:
        """The ids of these invoices, newest first (the order of the list)."""
        return sorted((self.id(name) for name in names), reverse=True)

    def list(self, **params: Any) -> list[str]:
        return ids(self.api.get("/v1/invoices", params=params))


@pytest.fixture
def catalogue(api: Api) -> Catalogue:
    specs: list[tuple[str, dict[str, Any]]] = [
        ("mug", {"amount": 1000, "currency": "EUR", "reference": "order-1",
                 "description": "Blue mug",
                 "customer": {"email": "ada@example.com", "name": "Ada Lovelace"}}),
        ("shirt", {"amount": 2500, "currency": "EUR", "reference": "order-2",
                   "description": "100% cotton shirt",
                   "customer": {"email": "bob@example.com", "name": "Bob_Smith"}}),
        ("tea", {"amount": 5000, "currency": "JPY", "reference": "order-3",
                 "description": "Tea set",
                 "customer": {"email": "carol@example.org", "name": "Carol"}}),
        ("gift", {"amount": 2500, "currency": "KWD", "reference": "order_4",
                  "description": "Gift card", "status": "draft"}),
        ("cancelled", {"amount": 1999, "currency": "EUR", "reference": "ORDER-5",
                       "description": "Cancelled lamp"}),
        ("expired", {"amount": 750, "currency": "USD", "reference": "order-6",
                     "description": "Old order", "customer": {"email": "dan@example.net"}}),
    ]  # fmt: skip
    by_name = {name: api.create_invoice(**fields) for name, fields in specs}
    assert api.post(f"/v1/invoices/{by_name['cancelled']['id']}/cancel").status_code == 200
    response = api.post(f"/v1/test_helpers/invoices/{by_name['expired']['id']}/expire")
    assert response.status_code == 200, response.text
    return Catalogue(api, by_name)


def test_filter_by_one_status(catalogue: Catalogue) -> None:
    assert catalogue.list(status="created") == catalogue.expect("mug", "shirt", "tea")
    assert catalogue.list(status="draft") == catalogue.expect("gift")
    assert catalogue.list(status="cancelled") == catalogue.expect("cancelled")
    assert catalogue.list(status="expired") == catalogue.expect("expired")
    assert catalogue.list(status="processed") == []


def test_filter_by_several_statuses(catalogue: Catalogue) -> None:
    draft_or_cancelled = catalogue.expect("gift", "cancelled")
    assert catalogue.list(status=["draft", "cancelled"]) == draft_or_cancelled
    assert catalogue.list(status="draft,cancelled") == draft_or_cancelled
    assert catalogue.list(status="draft, cancelled") == draft_or_cancelled
    assert catalogue.list(status=["created,expired", "draft"]) == catalogue.expect(
        "mug", "shirt", "tea", "expired", "gift"
    )


@pytest.mark.parametrize("status", ["paid", "CREATED", "created,bogus", "open"])
def test_unknown_status_is_refused(catalogue: Catalogue, db: Database, status: str) -> None:
    with unchanged(db, catalogue.api.merchant.id):
        response = catalogue.api.get("/v1/invoices", params={"status": status})
    assert_problem(response, 422, "invalid_value", field="status")


def test_filter_by_reference(catalogue: Catalogue) -> None:
    assert catalogue.list(reference="order-2") == catalogue.expect("shirt")
    assert catalogue.list(reference="order_4") == catalogue.expect("gift")
    assert catalogue.list(reference="order") == []  # exact, not a prefix
    assert catalogue.list(reference="order-%") == []  # no wildcards


def test_filter_by_customer_email(catalogue: Catalogue) -> None:
    assert catalogue.list(customer_email="bob@example.com") == catalogue.expect("shirt")
    assert catalogue.list(customer_email="dan@example.net") == catalogue.expect("expired")
    assert catalogue.list(customer_email="nobody@example.com") == []


def test_filter_by_currency(catalogue: Catalogue) -> None:
    eur = catalogue.expect("mug", "shirt", "cancelled")
    assert catalogue.list(currency="EUR") == eur
    assert catalogue.list(currency="eur") == eur
    assert catalogue.list(currency="KWD") == catalogue.expect("gift")
    assert catalogue.list(currency="CHF") == []


def test_unknown_currency_filter_is_refused(catalogue: Catalogue, db: Database) -> None:
    with unchanged(db, catalogue.api.merchant.id):
        response = catalogue.api.get("/v1/invoices", params={"currency": "XYZ"})
    assert_problem(response, 422, "currency_not_supported", field="currency")


def test_filter_by_amount_range(catalogue: Catalogue) -> None:
    assert catalogue.list(amount_gte=2500) == catalogue.expect("shirt", "tea", "gift")
    assert catalogue.list(amount_lte=1000) == catalogue.expect("mug", "expired")
    assert catalogue.list(amount_gte=1000, amount_lte=2000) == catalogue.expect("mug", "cancelled")
    assert catalogue.list(amount_gte=2500, amount_lte=2500) == catalogue.expect("shirt", "gift")
    assert catalogue.list(amount_gte=3000, amount_lte=2000) == []


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"amount_gte": -1}, "amount_gte", "out_of_range"),
        ({"amount_lte": "ten"}, "amount_lte", "invalid_type"),
        ({"created_gte": "yesterday"}, "created_gte", "invalid_datetime"),
        ({"limit": 0}, "limit", "out_of_range"),
        ({"limit": 101}, "limit", "out_of_range"),
        ({"limit": "all"}, "limit", "invalid_type"),
        ({"starting_after": "inv_nope"}, "starting_after", "invalid_format"),
        ({"ending_before": "evt_01JD3Z7Q8W0000000000000000"}, "ending_before", "invalid_format"),
        ({"q": ""}, "q", "too_short"),
        ({"q": "x" * 201}, "q", "too_long"),
    ],
)
def test_invalid_query_parameters_are_refused(
    api: Api, db: Database, params: dict[str, Any], field: str, code: str
) -> None:
    api.create_invoice()
    with unchanged(db, api.merchant.id):
        response = api.get("/v1/invoices", params=params)
    assert_problem(response, 422, code, field=field)


def test_filter_by_created_range(catalogue: Catalogue) -> None:
    invoices = list(catalogue.by_name.values())
    pivot = catalogue.by_name["tea"]["created_at"]
    pivot_at = ts(pivot)

    def newest_first(keep: Any) -> list[str]:
        return sorted((i["id"] for i in invoices if keep(ts(i["created_at"]))), reverse=True)

    assert catalogue.list(created_gte=pivot) == newest_first(lambda at: at >= pivot_at)
    assert catalogue.list(created_lte=pivot) == newest_first(lambda at: at <= pivot_at)
    assert catalogue.id("tea") in catalogue.list(created_gte=pivot, created_lte=pivot)

    # The same instant written with an offset selects the same invoices.
    berlin = pivot_at.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert catalogue.list(created_gte=berlin) == newest_first(lambda at: at >= pivot_at)
    # A naive timestamp is read as UTC.
    naive = pivot_at.astimezone(UTC).replace(tzinfo=None).isoformat()
    assert catalogue.list(created_lte=naive) == newest_first(lambda at: at <= pivot_at)

    later = (pivot_at + timedelta(days=1)).isoformat()
    assert catalogue.list(created_gte=later) == []
    earlier = (pivot_at - timedelta(days=1)).isoformat()
    assert catalogue.list(created_gte=earlier) == newest_first(lambda at: True)


@pytest.mark.parametrize(
    ("q", "names"),
    [
        ("mug", ["mug"]),
        ("MUG", ["mug"]),
        ("bLuE mUg", ["mug"]),
        ("lovelace", ["mug"]),
        ("ada@", ["mug"]),
        ("EXAMPLE.ORG", ["tea"]),
        ("example.", ["mug", "shirt", "tea", "expired"]),
        ("order-", ["mug", "shirt", "tea", "cancelled", "expired"]),
        ("order_", ["gift"]),  # _ is a literal underscore, not "any character"
        ("_", ["gift", "shirt"]),
        ("b_s", ["shirt"]),
        ("%", ["shirt"]),  # % is a literal percent sign, not "anything"
        ("100%", ["shirt"]),
        ("0%", ["shirt"]),
        ("%cotton", []),
        ("1_0", []),
        ("\\", []),
        ("'", []),
        ('"', []),
        ("nothing like this", []),
    ],
)
def test_free_text_search(catalogue: Catalogue, q: str, names: list[str]) -> None:
    assert catalogue.list(q=q) == catalogue.expect(*names)


def test_free_text_search_is_case_insensitive_beyond_ascii(api: Api) -> None:
    invoice = api.create_invoice(
        description="Café au lait", customer={"name": "Jürgen Müller", "email": "j@example.de"}
    )
    for q in ("café", "CAFÉ", "müller", "MÜLLER", "Jürgen"):
        assert ids(api.get("/v1/invoices", params={"q": q})) == [invoice["id"]], q


def test_filters_combine(catalogue: Catalogue) -> None:
    assert catalogue.list(status="created", currency="EUR", amount_gte=2000) == catalogue.expect(
        "shirt"
    )
    assert catalogue.list(status="created,cancelled", q="order-") == catalogue.expect(
        "mug", "shirt", "tea", "cancelled"
    )
    assert catalogue.list(currency="EUR", customer_email="ada@example.com") == catalogue.expect(
        "mug"
    )
    assert catalogue.list(reference="order-1", status="draft") == []


def test_filters_paginate(catalogue: Catalogue) -> None:
    expected = catalogue.expect("mug", "shirt", "tea")
    first = catalogue.api.get("/v1/invoices", params={"status": "created", "limit": 2}).json()
    assert [i["id"] for i in first["data"]] == expected[:2]
    assert first["has_more"] is True
    second = catalogue.api.get(
        "/v1/invoices",
        params={"status": "created", "limit": 2, "starting_after": first["next_cursor"]},
    ).json()
    assert [i["id"] for i in second["data"]] == expected[2:]
    assert second["has_more"] is False
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"amount_gte": 10**19}, id="amount-gte-beyond-int64"),
        pytest.param({"amount_lte": 10**30}, id="amount-lte-huge"),
    ],
)
def test_amount_filter_beyond_any_amount_is_not_500(api: Api, params: dict[str, Any]) -> None:
    """Either refused as out of range, or answered (nothing is that large); never a 500."""
    invoice = api.create_invoice()
    response = api.get("/v1/invoices", params=params)
    (field,) = params
    if response.status_code == 200:
        expected = [] if field == "amount_gte" else [invoice["id"]]
        assert ids(response) == expected
    else:
        assert_problem(response, 422, "out_of_range", field=field)


def test_amount_filter_at_the_largest_amount(api: Api) -> None:
    invoice = api.create_invoice(amount=999_999_999_999)
    assert ids(api.get("/v1/invoices", params={"amount_gte": 999_999_999_999})) == [invoice["id"]]
    assert ids(api.get("/v1/invoices", params={"amount_lte": 999_999_999_999})) == [invoice["id"]]


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"created_lte": "9999-12-31T23:59:59.999999-12:00"}, id="after-year-9999"),
        pytest.param({"created_gte": "0001-01-01T00:00:00+01:00"}, id="before-year-1"),
    ],
)
def test_created_filter_outside_the_calendar_is_not_500(api: Api, params: dict[str, Any]) -> None:
    """Either refused as an invalid datetime, or answered (every invoice is inside); never 500."""
    invoice = api.create_invoice()
    response = api.get("/v1/invoices", params=params)
    (field,) = params
    if response.status_code == 200:
        assert ids(response) == [invoice["id"]]
    else:
        assert_problem(response, 422, "invalid_datetime", field=field)


def test_created_filter_at_the_ends_of_the_calendar(api: Api) -> None:
    invoice = api.create_invoice()
    assert ids(api.get("/v1/invoices", params={"created_lte": "9999-12-31T23:59:59Z"})) == [
        invoice["id"]
    ]
    assert ids(api.get("/v1/invoices", params={"created_gte": "0001-01-01T00:00:00Z"})) == [
        invoice["id"]
    ]


def test_both_cursors_at_once_are_refused(api: Api, db: Database) -> None:
    first, second = api.create_invoice()["id"], api.create_invoice()["id"]
    with unchanged(db, api.merchant.id):
        response = api.get(
            "/v1/invoices", params={"starting_after": second, "ending_before": first}
        )
    body = assert_problem(response, 422, "cursor_conflict")
    assert {e["field"] for e in body["errors"]} & {"starting_after", "ending_before"}


def test_next_cursor_continues_in_the_direction_of_the_page(api: Api) -> None:
    """Following `next_cursor` with the same parameter walks every page once, both ways."""
    created = [api.create_invoice()["id"] for _ in range(7)]
    newest_first = list(reversed(created))

    for direction, start, expected in (
        ("starting_after", newest_first[0], newest_first[1:]),
        ("ending_before", newest_first[-1], newest_first[:-1]),
    ):
        pages: list[list[str]] = []
        cursor = start
        for _ in range(10):
            body = api.get("/v1/invoices", params={"limit": 2, direction: cursor}).json()
            pages.append([i["id"] for i in body["data"]])
            if not body["has_more"]:
                assert body["next_cursor"] is None
                break
            cursor = body["next_cursor"]
        walked = [invoice_id for page in pages for invoice_id in page]
        assert sorted(walked, reverse=True) == expected, (direction, pages)
        assert len(walked) == len(set(walked)), (direction, pages)
