"""GET and PATCH /v1/settings/payment_options (DESIGN §8), and their use by new invoices."""

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from quittance.db.uow import Database
from tests.api.helpers import assert_problem, ts, unchanged
from tests.factories import Api, MerchantFactory

DEFAULTS = {
    "object": "payment_options",
    "invoice_lifetime": 86400,
    "attempts_limit": 5,
    "include_commission": False,
    "refund_commission": False,
    "allow_public_creation": False,
    "public_fee_details": False,
    "public_zero_fee_badge": False,
    "expose_internal_callback_data": False,
    "descriptor_template": "{merchant}*{reference}",
    "return_url": None,
    "default_locale": "en",
}
PATH = "/v1/settings/payment_options"


def _options(api: Api) -> dict[str, Any]:
    response = api.get(PATH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def _plain(options: dict[str, Any], livemode: bool = False) -> dict[str, Any]:
    """The options without `updated_at` (checked to be a timestamp) and `livemode`."""
    plain = dict(options)
    ts(plain.pop("updated_at"))
    assert plain.pop("livemode", livemode) is livemode
    return plain


def test_defaults(api: Api) -> None:
    assert _plain(_options(api)) == DEFAULTS
    assert _plain(_options(api.as_live()), livemode=True) == DEFAULTS


def test_test_mode_options_do_not_change_live_invoices(api: Api) -> None:
    """Everything belongs to one mode (DESIGN §2): trying a setting in test mode leaves live."""
    response = api.patch(PATH, json={"invoice_lifetime": 600, "attempts_limit": 2})
    assert response.status_code == 200, response.text
    assert _plain(_options(api.as_live()), livemode=True) == DEFAULTS
    live = api.as_live().create_invoice()
    assert (live["lifetime"], live["attempts_limit"]) == (86400, 5)
    assert api.create_invoice()["lifetime"] == 600


def test_patch_updates_and_returns_the_options(api: Api) -> None:
    before = _options(api)
    changes = {
        "invoice_lifetime": 3600,
        "attempts_limit": 3,
        "include_commission": True,
        "refund_commission": True,
        "allow_public_creation": True,
        "public_fee_details": True,
        "public_zero_fee_badge": True,
        "expose_internal_callback_data": True,
        "descriptor_template": "{merchant} {invoice_id}",
        "return_url": "https://shop.example/return?i={invoice_id}",
        "default_locale": "de",
    }
    response = api.patch(PATH, json=changes)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert _plain(updated) == {**DEFAULTS, **changes}
    assert ts(updated["updated_at"]) >= ts(before["updated_at"])
    assert _options(api) == updated


def test_patch_changes_only_the_fields_given(api: Api) -> None:
    response = api.patch(PATH, json={"attempts_limit": 7})
    assert response.status_code == 200, response.text
    assert _plain(response.json()) == {**DEFAULTS, "attempts_limit": 7}
    response = api.patch(PATH, json={"default_locale": "de"})
    assert _plain(response.json()) == {**DEFAULTS, "attempts_limit": 7, "default_locale": "de"}
    assert _plain(_options(api)) == {**DEFAULTS, "attempts_limit": 7, "default_locale": "de"}


def test_refund_commission_is_per_mode_and_changes_alone(api: Api) -> None:
    response = api.patch(PATH, json={"refund_commission": True})
    assert response.status_code == 200, response.text
    assert _plain(response.json()) == {**DEFAULTS, "refund_commission": True}
    assert _plain(_options(api)) == {**DEFAULTS, "refund_commission": True}
    assert _plain(_options(api.as_live()), livemode=True) == DEFAULTS
    response = api.patch(PATH, json={"refund_commission": False})
    assert _plain(response.json()) == DEFAULTS


def test_return_url_can_be_cleared(api: Api) -> None:
    api.patch(PATH, json={"return_url": "https://shop.example/r"})
    response = api.patch(PATH, json={"return_url": None})
    assert response.status_code == 200, response.text
    assert response.json()["return_url"] is None
    assert api.create_invoice()["return_url"] is None


def test_next_invoice_uses_the_new_options(api: Api) -> None:
    old = api.create_invoice()
    old_draft = api.create_invoice(status="draft")
    response = api.patch(
        PATH,
        json={
            "invoice_lifetime": 600,
            "attempts_limit": 2,
            "return_url": "https://shop.example/back",
        },
    )
    assert response.status_code == 200, response.text

    invoice = api.create_invoice()
    assert (invoice["lifetime"], invoice["attempts_limit"], invoice["return_url"]) == (
        600,
        2,
        "https://shop.example/back",
    )
    assert ts(invoice["expires_at"]) - ts(invoice["created_at"]) == timedelta(seconds=600)

    draft = api.create_invoice(status="draft")
    assert (draft["lifetime"], draft["attempts_limit"]) == (600, 2)
    final = api.post(f"/v1/invoices/{draft['id']}/finalize").json()
    assert ts(final["expires_at"]) - ts(final["finalized_at"]) == timedelta(seconds=600)

    # Invoices created before keep their own values, even a draft finalized later.
    assert api.get(f"/v1/invoices/{old['id']}").json() == old
    old_final = api.post(f"/v1/invoices/{old_draft['id']}/finalize").json()
    assert old_final["lifetime"] == 86400
    assert old_final["attempts_limit"] == 5
    assert old_final["return_url"] is None
    assert ts(old_final["expires_at"]) - ts(old_final["finalized_at"]) == timedelta(days=1)


def test_options_belong_to_one_merchant(
    api: Api, client: TestClient, merchants: MerchantFactory
) -> None:
    other = Api(client, merchants.create("Other Shop"))
    api.patch(PATH, json={"invoice_lifetime": 600, "default_locale": "de"})
    assert _plain(_options(other)) == DEFAULTS
    assert other.create_invoice()["lifetime"] == 86400


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"invoice_lifetime": 59}, "invoice_lifetime", "out_of_range"),
        ({"invoice_lifetime": 366 * 86400 + 1}, "invoice_lifetime", "out_of_range"),
        ({"invoice_lifetime": "3600"}, "invoice_lifetime", "invalid_type"),
        ({"invoice_lifetime": 3600.5}, "invoice_lifetime", "invalid_type"),
        ({"attempts_limit": 0}, "attempts_limit", "out_of_range"),
        ({"attempts_limit": 101}, "attempts_limit", "out_of_range"),
        ({"attempts_limit": True}, "attempts_limit", "invalid_type"),
        ({"include_commission": "yes"}, "include_commission", "invalid_type"),
        ({"include_commission": 1}, "include_commission", "invalid_type"),
        ({"refund_commission": "true"}, "refund_commission", "invalid_type"),
        ({"refund_commission": 0}, "refund_commission", "invalid_type"),
        ({"descriptor_template": ""}, "descriptor_template", "too_short"),
        ({"descriptor_template": "x" * 201}, "descriptor_template", "too_long"),
        (
            {"descriptor_template": "{shop}*{reference}"},
            "descriptor_template",
            "invalid_placeholder",
        ),
        ({"return_url": "not a url"}, "return_url", "invalid_url"),
        ({"return_url": "javascript:alert(1)"}, "return_url", "invalid_url"),
        ({"default_locale": "fr"}, "default_locale", "invalid_value"),
        ({"default_locale": "EN"}, "default_locale", "invalid_value"),
        ({"colour": "red"}, "colour", "unknown_field"),
        ({"attempts_limit": 3, "colour": "red"}, "colour", "unknown_field"),
        ({"attempts_limit": 3, "invoice_lifetime": 1}, "invoice_lifetime", "out_of_range"),
    ],
)
def test_invalid_values_change_nothing(
    api: Api, db: Database, body: dict[str, Any], field: str, code: str
) -> None:
    before = _options(api)
    with unchanged(db, api.merchant.id):
        response = api.patch(PATH, json=body)
    assert_problem(response, 422, code, field=field)
    assert _options(api) == before


@pytest.mark.parametrize(
    "name",
    [
        "invoice_lifetime",
        "attempts_limit",
        "include_commission",
        "refund_commission",
        "descriptor_template",
        "default_locale",
    ],
)
def test_null_for_a_required_option_is_refused(api: Api, db: Database, name: str) -> None:
    before = _options(api)
    with unchanged(db, api.merchant.id):
        response = api.patch(PATH, json={name: None})
    assert_problem(response, 422, "field_not_nullable")
    assert _options(api) == before


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b"{", {"Content-Type": "application/json"}, 400, "invalid_json"),
        (b"[]", {"Content-Type": "application/json"}, 422, "invalid_type"),
        (
            b"attempts_limit=3",
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
    ],
)
def test_unreadable_body_changes_nothing(
    api: Api, db: Database, content: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    before = _options(api)
    with unchanged(db, api.merchant.id):
        response = api.patch(PATH, content=content, headers=headers)
    assert_problem(response, status, code)
    assert _options(api) == before
