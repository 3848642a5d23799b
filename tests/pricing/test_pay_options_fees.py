"""Pay options show each method's fee from the merchant's schedules, the zero-fee badge, and
what the payer pays in all when the commission is paid on top."""

from typing import Any

from quittance.db.uow import Database
from tests.factories import Api
from tests.payment.helpers import SUCCEEDS, card, paid
from tests.pricing.helpers import assert_books, set_options, set_schedule


def methods(api: Api, invoice_id: str) -> dict[str, dict[str, Any]]:
    response = api.get(f"/v1/invoices/{invoice_id}/payment_options")
    assert response.status_code == 200, response.text
    return {entry["method"]: entry for entry in response.json()["methods"]}


def shown(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (entry.get("fee"), entry.get("zero_fee"), entry.get("total"))


def test_fees_and_the_zero_fee_badge_come_from_the_schedules(papi: Api, db: Database) -> None:
    set_schedule(papi, "card", "EUR", "2.9", fixed=30, maximum=500)
    set_schedule(papi, "bank_transfer", "EUR", "0")  # a schedule that charges nothing
    set_schedule(papi, "invoice", "EUR", "0.01")  # 0.1999 of 1999 rounds to 0
    created = papi.create_invoice(amount=1999, currency="EUR")
    # Nothing is shown unless the merchant enables it.
    assert {m: shown(e) for m, e in methods(papi, created["id"]).items()} == {
        "card": (None, None, None), "bank_transfer": (None, None, None),
        "invoice": (None, None, None),
    }  # fmt: skip
    set_options(papi, public_fee_details=True, public_zero_fee_badge=True)
    merchant_pays = {m: shown(e) for m, e in methods(papi, created["id"]).items()}
    assert merchant_pays == {
        "card": ({"amount": 88, "currency": "EUR", "paid_by": "merchant"}, False, None),
        "bank_transfer": ({"amount": 0, "currency": "EUR", "paid_by": "merchant"}, True, None),
        "invoice": ({"amount": 0, "currency": "EUR", "paid_by": "merchant"}, True, None),
    }
    # With the commission on top, each method says what the payer pays in all.
    set_options(papi, include_commission=True)
    payer_pays = methods(papi, created["id"])
    assert payer_pays["card"]["fee"] == {"amount": 88, "currency": "EUR", "paid_by": "payer"}
    assert payer_pays["card"]["total"] == {"amount": 2087, "currency": "EUR"}
    assert payer_pays["bank_transfer"]["total"] == {"amount": 1999, "currency": "EUR"}
    # The fee shown is the fee charged.
    body = paid(papi, created["id"], card(SUCCEEDS))
    assert (body["commission"], body["payer_amount"]) == (88, 2087)
    assert_books(db, papi.merchant.id)


def test_fees_follow_the_amount_due_and_the_invoice_currency(papi: Api) -> None:
    set_schedule(papi, "card", "JPY", "3.25", fixed=10)
    set_schedule(papi, "card", "EUR", "50")
    set_options(papi, public_fee_details=True, include_commission=True)
    jpy = papi.create_invoice(amount=999, currency="JPY")
    card_option = methods(papi, jpy["id"])["card"]
    assert card_option["fee"] == {"amount": 42, "currency": "JPY", "paid_by": "payer"}
    assert card_option["total"] == {"amount": 1041, "currency": "JPY"}
    # A currency without a schedule shows no fee, and the live mode has schedules of its own.
    usd = papi.create_invoice(amount=1000, currency="USD")
    assert methods(papi, usd["id"])["card"]["fee"]["amount"] == 0
    live = papi.as_live()
    set_options(live, public_fee_details=True)
    live_invoice = live.create_invoice(amount=1000, currency="EUR")
    assert methods(live, live_invoice["id"])["card"]["fee"]["amount"] == 0  # test mode: 500
    eur = papi.create_invoice(amount=1000, currency="EUR")
    assert methods(papi, eur["id"])["card"]["fee"]["amount"] == 500
