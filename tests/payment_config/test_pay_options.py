"""`GET /v1/invoices/{id}/payment_options`: methods for the payer, fees, saved methods."""

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from quittance import clock
from quittance.app import create_app
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.models import Invoice
from tests.api.helpers import assert_problem
from tests.factories import Api, MerchantFactory
from tests.payment_config.helpers import (
    METHODS,
    card,
    default_connection,
    link_customer,
    pay,
    save_customer,
    save_method,
    set_method,
    stored,
)

OPTION_KEYS = {
    "object", "invoice", "livemode", "payable", "currency", "amount_due", "country",
    "country_source", "methods", "saved_methods",
}  # fmt: skip


def options(api: Api, invoice_id: str, **kwargs: Any) -> dict[str, Any]:
    response = api.get(f"/v1/invoices/{invoice_id}/payment_options", **kwargs)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _open(method: str) -> dict[str, Any]:
    return {"method": method, "available": True, "min_amount": None, "max_amount": None}


def test_a_new_merchant_offers_every_method(api: Api, db: Database) -> None:
    invoice = api.create_invoice(amount=4200, currency="JPY")
    before = stored(db, api.merchant.id)
    body = options(api, invoice["id"])
    assert body == {
        "object": "payment_options", "invoice": invoice["id"], "livemode": False,
        "payable": True, "currency": "JPY", "amount_due": 4200, "country": None,
        "country_source": None, "methods": [_open(m) for m in METHODS], "saved_methods": [],
    }  # fmt: skip
    assert stored(db, api.merchant.id) == before  # a read


def test_the_query_country_comes_first(api: Api) -> None:
    invoice = api.create_invoice(customer={"country": "AT"})
    body = options(api, invoice["id"], params={"country": "fr"},
                   headers={"CF-IPCountry": "DE"})  # fmt: skip
    assert (body["country"], body["country_source"]) == ("FR", "query")


def test_the_customer_country_comes_before_the_header(api: Api) -> None:
    invoice = api.create_invoice(customer={"country": "AT"})
    body = options(api, invoice["id"], headers={"CF-IPCountry": "DE"})
    assert (body["country"], body["country_source"]) == ("AT", "customer")


def test_the_header_is_the_last_resort_and_its_name_is_case_insensitive(api: Api) -> None:
    invoice = api.create_invoice(customer={"email": "ada@example.com"})
    for name in ("CF-IPCountry", "cf-ipcountry", "CF-IPCOUNTRY"):
        body = options(api, invoice["id"], headers={name: "de"})
        assert (body["country"], body["country_source"]) == ("DE", "header")


@pytest.mark.parametrize("value", ["XX", "T1", "", "DEU", "D", "1", "  "])
def test_header_values_that_are_not_countries_are_ignored(api: Api, value: str) -> None:
    invoice = api.create_invoice()
    body = options(api, invoice["id"], headers={"CF-IPCountry": value})
    assert (body["country"], body["country_source"]) == (None, None)


def test_the_header_name_comes_from_the_settings(
    config_settings: Settings, db: Database, merchants: MerchantFactory
) -> None:
    settings = config_settings.model_copy(update={"country_header": "X-Geo-Country"})
    with TestClient(create_app(settings, db), raise_server_exceptions=False) as client:
        geo = Api(client, merchants.create())
        invoice = geo.create_invoice()
        body = options(geo, invoice["id"], headers={"x-geo-country": "CH", "CF-IPCountry": "DE"})
        assert (body["country"], body["country_source"]) == ("CH", "header")
        ignored = options(geo, invoice["id"], headers={"CF-IPCountry": "DE"})
        assert (ignored["country"], ignored["country_source"]) == (None, None)


@pytest.mark.parametrize(
    ("value", "code"),
    [("XX", "invalid_country"), ("T1", "invalid_country"), ("DEU", "too_long"),
     ("D", "too_short")],
)  # fmt: skip
def test_a_query_country_that_is_not_one_is_refused(api: Api, value: str, code: str) -> None:
    invoice = api.create_invoice()
    response = api.get(f"/v1/invoices/{invoice['id']}/payment_options", params={"country": value})
    assert_problem(response, 422, code, field="country")


def test_each_method_says_why_it_is_not_available(api: Api) -> None:
    sandbox = default_connection(api)
    set_method(api, "card", countries=["FR", "AT"], min_amount=100, max_amount=10_000)
    set_method(api, "bank_transfer", currencies=["USD"])
    set_method(api, "invoice", enabled=False)
    invoice = api.create_invoice(amount=5000, currency="EUR")
    body = options(api, invoice["id"], params={"country": "DE"})
    assert body["methods"] == [
        {"method": "card", "available": False, "reason": "country_not_accepted",
         "message": "This payment method is not offered in DE.", "min_amount": 100,
         "max_amount": 10_000},
        {"method": "bank_transfer", "available": False, "reason": "currency_not_accepted",
         "message": "This payment method does not take EUR.", "min_amount": None,
         "max_amount": None},
        {"method": "invoice", "available": False, "reason": "method_disabled",
         "message": "The merchant does not accept this payment method.", "min_amount": None,
         "max_amount": None},
    ]  # fmt: skip
    assert options(api, invoice["id"], params={"country": "AT"})["methods"][0] == {
        "method": "card", "available": True, "min_amount": 100, "max_amount": 10_000,
    }  # fmt: skip
    # Without any country the country list does not exclude the payer.
    assert options(api, invoice["id"])["methods"][0]["available"] is True
    set_method(api, "card", countries=None, min_amount=5001)
    below = options(api, invoice["id"])["methods"][0]
    assert (below["reason"], below["min_amount"]) == ("amount_below_minimum", 5001)
    set_method(api, "card", min_amount=None, max_amount=4999)
    assert options(api, invoice["id"])["methods"][0]["reason"] == "amount_above_maximum"
    set_method(api, "card", max_amount=None, connections=[])
    assert options(api, invoice["id"])["methods"][0]["reason"] == "no_provider_connection"
    set_method(api, "card", connections=[sandbox])
    api.patch(f"/v1/settings/provider_connections/{sandbox}", json={"enabled": False})
    paused = options(api, invoice["id"])["methods"]
    assert [m["reason"] for m in paused] == [
        "no_provider_connection", "currency_not_accepted", "method_disabled",
    ]  # fmt: skip


def test_the_limits_apply_to_the_amount_due(api: Api) -> None:
    set_method(api, "card", max_amount=1000)
    invoice = api.create_invoice(amount=1500)
    assert options(api, invoice["id"])["methods"][0]["reason"] == "amount_above_maximum"


def test_fees_are_shown_only_when_the_merchant_enables_them(api: Api) -> None:
    invoice = api.create_invoice(currency="KWD")
    plain = options(api, invoice["id"])["methods"]
    assert all("fee" not in m and "zero_fee" not in m for m in plain)
    api.patch("/v1/settings/payment_options", json={"public_fee_details": True})
    with_fees = options(api, invoice["id"])["methods"]
    no_fee = {"amount": 0, "currency": "KWD", "paid_by": "merchant"}
    assert [m["fee"] for m in with_fees] == [no_fee] * 3
    assert all("zero_fee" not in m for m in with_fees)
    api.patch(
        "/v1/settings/payment_options",
        json={"public_fee_details": False, "public_zero_fee_badge": True},
    )
    badges = options(api, invoice["id"])["methods"]
    assert [m.get("zero_fee") for m in badges] == [True] * 3
    assert all("fee" not in m for m in badges)
    api.patch("/v1/settings/payment_options", json={"public_fee_details": True})
    both = options(api, invoice["id"])["methods"][0]
    assert both == {**_open("card"), "fee": no_fee, "zero_fee": True}
    live = api.as_live().get("/v1/settings/payment_options").json()
    assert (live["public_fee_details"], live["public_zero_fee_badge"]) == (False, False)


def test_the_customers_saved_methods_are_listed(api: Api, db: Database) -> None:
    merchant = api.merchant.id
    customer = save_customer(db, merchant, country="AT")
    other = save_customer(db, merchant)
    first = save_method(db, merchant, customer, last4="4242")
    save_method(db, merchant, customer, last4="4444", detached=True)
    transfer = save_method(db, merchant, customer, type="bank_transfer", default=True)
    save_method(db, merchant, other, last4="0005")
    save_method(db, merchant, None, last4="1111")
    set_method(api, "bank_transfer", enabled=False)
    invoice = api.create_invoice()
    link_customer(db, invoice["id"], customer)
    body = options(api, invoice["id"], headers={"CF-IPCountry": "DE"})
    assert (body["country"], body["country_source"]) == ("AT", "customer")
    saved = body["saved_methods"]
    assert [m["id"] for m in saved] == [first, transfer]
    assert {k: saved[0][k] for k in ("object", "livemode", "type", "customer", "card",
                                     "available", "default")} == {
        "object": "payment_method", "livemode": False, "type": "card", "customer": customer,
        "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
        "available": True, "default": False,
    }  # fmt: skip
    assert (saved[1]["type"], saved[1]["card"], saved[1]["available"], saved[1]["default"]) == (
        "bank_transfer", None, False, True,
    )  # fmt: skip
    assert "provider_token" not in saved[0] and "tok_sandbox" not in str(body)


def test_an_invoice_without_a_customer_has_no_saved_methods(api: Api, db: Database) -> None:
    save_method(db, api.merchant.id, None)
    assert options(api, api.create_invoice()["id"])["saved_methods"] == []


def test_an_invoice_that_cannot_be_paid_still_answers(api: Api) -> None:
    draft = api.create_invoice(status="draft")
    body = options(api, draft["id"])
    assert body["payable"] is False
    assert [(m["method"], m["available"], m["reason"]) for m in body["methods"]] == [
        (m, False, "invoice_not_payable") for m in METHODS
    ]
    assert body["methods"][0]["message"] == "An invoice that is draft cannot be paid."
    paid = api.create_invoice(amount=700)
    assert pay(api, paid["id"], card()).json()["status"] == "succeeded"
    after = options(api, paid["id"])
    assert (after["payable"], after["amount_due"]) == (False, 0)
    assert {m["reason"] for m in after["methods"]} == {"invoice_not_payable"}


def test_an_overdue_invoice_is_expired_first(api: Api, db: Database) -> None:
    invoice = api.create_invoice()
    with db.write() as session:
        row = session.get(Invoice, invoice["id"])
        assert row is not None
        row.expires_at = clock.now() - timedelta(seconds=1)
    body = options(api, invoice["id"])
    assert body["payable"] is False
    assert body["methods"][0]["message"] == "An invoice that is expired cannot be paid."
    assert api.get(f"/v1/invoices/{invoice['id']}").json()["status"] == "expired"


def test_unknown_and_foreign_invoices_are_404(api: Api, merchants: MerchantFactory) -> None:
    invoice = api.create_invoice()
    other = Api(api.client, merchants.create("Other"))
    for caller, invoice_id in ((api, "inv_01JD3Z7Q8W0000000000000000"), (other, invoice["id"]),
                               (api.as_live(), invoice["id"])):  # fmt: skip
        response = caller.get(f"/v1/invoices/{invoice_id}/payment_options")
        assert_problem(response, 404, "invoice_not_found")


def test_live_mode_offers_only_what_the_merchant_set_up(api: Api) -> None:
    live = api.as_live()
    invoice = live.create_invoice()
    body = options(live, invoice["id"])
    assert body["livemode"] is True
    assert [(m["available"], m["reason"]) for m in body["methods"]] == [
        (False, "method_disabled")
    ] * 3
    live.patch("/v1/settings/methods/card", json={"enabled": True})
    card_option = options(live, invoice["id"])["methods"][0]
    assert card_option["reason"] == "no_provider_connection"


def test_pay_options_need_a_key(api: Api) -> None:
    invoice = api.create_invoice()
    response = api.client.get(f"/v1/invoices/{invoice['id']}/payment_options")
    assert_problem(response, 401, "authentication_required")
