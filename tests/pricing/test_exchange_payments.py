"""Paying an invoice in another currency: the newest rate of the pair, the payer's amount and
the rounding recorded, the ledger balanced per currency; refunds go back in that currency."""

from typing import Any

import pytest

from quittance.db.uow import Database
from quittance.providers.sandbox import SandboxGateway
from tests.factories import Api
from tests.payment.helpers import BANK_TRANSFER, SUCCEEDS, card, charge_count, pay, problem
from tests.pricing.helpers import (
    CLEARING,
    assert_books,
    everything,
    ledger,
    set_options,
    set_rate,
    set_schedule,
    shapes,
    totals,
    transfer,
)

BALANCE, REVENUE, EXCHANGE = "merchant_balance", "commission_revenue", "exchange"


def pay_in(api: Api, invoice_id: str, currency: str, method: Any) -> dict[str, Any]:
    response = api.post(f"/v1/invoices/{invoice_id}/pay",
                        json={"payment_method": method, "payment_currency": currency})  # fmt: skip
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_card_pays_a_euro_invoice_in_dollars(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    set_rate(papi, "EUR", "USD", "1.05")
    set_rate(papi, "EUR", "USD", "1.0842")  # the newest rate of the pair applies
    created = papi.create_invoice(amount=1999, currency="EUR")
    body = pay_in(papi, created["id"], "usd", card(SUCCEEDS))
    # 19.99 EUR x 1.0842 = 21.673158 USD → 2167 cents, rounded once, half up.
    assert (body["status"], body["amount"], body["currency"], body["amount_received"]) == (
        "succeeded", 1999, "EUR", 1999,
    )  # fmt: skip
    assert (body["payer_currency"], body["payer_amount"], body["payer_received"],
            body["exchange_rate"]) == ("USD", 2167, 2167, "1.0842")  # fmt: skip
    assert body["exchange"] == {"base": "EUR", "quote": "USD", "rate": "1.0842", "amount": 1999,
                                "exact": "2167.3158", "rounding": "-0.3158"}  # fmt: skip
    inv = body["invoice"]
    assert (inv["status"], inv["amount_paid"], inv["commission"]) == ("processed", 1999, 0)
    assert (inv["payment_currency"], inv["payment_amount"], inv["exchange_rate"]) == (
        "USD", 2167, "1.0842",
    )  # fmt: skip
    charge = gateway.charges(body["id"])
    assert charge is not None and (charge["amount"], charge["currency"]) == (2167, "USD")
    # Captured in dollars, then exchanged into euros on the merchant's balance.
    assert shapes(papi, created["id"]) == [
        ("capture", [(CLEARING, "USD", 2167), (BALANCE, "USD", -2167)]),
        ("exchange", [(BALANCE, "USD", 2167), (EXCHANGE, "USD", -2167),
                      (EXCHANGE, "EUR", 1999), (BALANCE, "EUR", -1999)]),
    ]  # fmt: skip
    assert ledger(papi, created["id"])[1]["description"] == (
        "Exchange at 1 EUR = 1.0842 USD, rounding -0.3158"
    )
    assert totals(papi, created["id"]) == {
        (CLEARING, "USD"): 2167, (EXCHANGE, "USD"): -2167, (EXCHANGE, "EUR"): 1999,
        (BALANCE, "EUR"): -1999,
    }  # fmt: skip
    assert_books(db, papi.merchant.id)


def test_the_commission_on_top_is_converted_with_the_amount(papi: Api, db: Database) -> None:
    set_rate(papi, "EUR", "USD", "1.0842")
    set_schedule(papi, "card", "EUR", "2.9", fixed=30)
    set_options(papi, include_commission=True)
    created = papi.create_invoice(amount=1999, currency="EUR")
    body = pay_in(papi, created["id"], "USD", card(SUCCEEDS))
    # 1999 + 88 commission = 2087 EUR cents x 1.0842 = 2262.7254 → 2263 USD cents.
    assert (body["amount_received"], body["commission"], body["payer_amount"]) == (1999, 88, 2263)
    assert body["exchange"]["amount"] == 2087
    assert (body["exchange"]["exact"], body["exchange"]["rounding"]) == ("2262.7254", "0.2746")
    assert (body["invoice"]["amount_paid"], body["invoice"]["commission"]) == (1999, 88)
    assert shapes(papi, created["id"]) == [
        ("capture", [(CLEARING, "USD", 2263), (BALANCE, "USD", -2263)]),
        ("exchange", [(BALANCE, "USD", 2263), (EXCHANGE, "USD", -2263),
                      (EXCHANGE, "EUR", 2087), (BALANCE, "EUR", -2087)]),
        # The payer paid the commission: it goes from the exchanged money to revenue.
        ("capture", [(BALANCE, "EUR", 88), (REVENUE, "EUR", -88)]),
    ]  # fmt: skip
    assert_books(db, papi.merchant.id)


def test_transfers_in_yen_pay_a_euro_invoice_in_parts(papi: Api, db: Database) -> None:
    set_rate(papi, "EUR", "JPY", "161.23")
    set_schedule(papi, "bank_transfer", "EUR", "1")  # from the merchant's proceeds
    created = papi.create_invoice(amount=10000, currency="EUR")
    pending = pay_in(papi, created["id"], "JPY", BANK_TRANSFER)
    assert (pending["payer_currency"], pending["payer_amount"]) == ("JPY", 16123)
    # 8000 JPY / 161.23 = 49.6185 EUR → 4962 cents; 1 % of it = 49.62 → 50.
    part = transfer(papi, pending["id"], 8000)
    assert (part["amount_received"], part["commission"], part["payer_received"]) == (
        4962, 50, 8000,
    )  # fmt: skip
    assert part["invoice"]["status"] == "partially_processed"
    assert part["exchange"]["rounding"] == "-0.2326"  # 8000 - 4962 x 1.6123
    # The rest of the payer's amount is worth exactly the rest of the invoice.
    rest = transfer(papi, pending["id"], 8123)
    assert (rest["status"], rest["amount_received"], rest["commission"]) == (
        "succeeded", 10000, 100,
    )  # fmt: skip
    inv = rest["invoice"]
    assert (inv["status"], inv["amount_paid"], inv["commission"]) == ("processed", 10000, 100)
    assert (inv["payment_currency"], inv["payment_amount"]) == ("JPY", 16123)
    kinds = [kind for kind, _ in shapes(papi, created["id"])]
    assert kinds == ["capture", "exchange", "commission"] * 2
    assert totals(papi, created["id"]) == {
        (CLEARING, "JPY"): 16123, (EXCHANGE, "JPY"): -16123, (EXCHANGE, "EUR"): 10000,
        (BALANCE, "EUR"): -9900, (REVENUE, "EUR"): -100,
    }  # fmt: skip
    assert_books(db, papi.merchant.id)


@pytest.mark.parametrize(
    ("currency", "rate", "amount", "payer_amount"),
    [
        ("KWD", "0.3312", 1001, 3315),  # 10.01 EUR x 0.3312 = 3.315312 KWD → 3315 fils
        ("JPY", "161.235", 1999, 3223),  # 19.99 EUR x 161.235 = 3223.08765 JPY → 3223
    ],
)
def test_the_payers_amount_keeps_the_payers_exponent(
    papi: Api, db: Database, currency: str, rate: str, amount: int, payer_amount: int
) -> None:
    set_rate(papi, "EUR", currency, rate)
    created = papi.create_invoice(amount=amount, currency="EUR")
    body = pay_in(papi, created["id"], currency, card(SUCCEEDS))
    assert (body["payer_currency"], body["payer_amount"], body["amount_received"]) == (
        currency, payer_amount, amount,
    )  # fmt: skip
    assert_books(db, papi.merchant.id)


def test_paying_in_the_invoices_own_currency_converts_nothing(papi: Api) -> None:
    created = papi.create_invoice(amount=1999, currency="EUR")
    body = pay_in(papi, created["id"], "EUR", card(SUCCEEDS))
    assert (body["payer_currency"], body["payer_amount"], body["exchange_rate"]) == (
        "EUR", 1999, None,
    )  # fmt: skip
    assert body["invoice"]["payment_currency"] is None


@pytest.mark.parametrize(
    ("currency", "code", "status"),
    [("USD", "exchange_rate_not_found", 422), ("XYZ", "currency_not_supported", 422)],
)
def test_without_a_rate_nothing_is_stored_and_nothing_charged(
    papi: Api, db: Database, sandbox_path: str, currency: str, code: str, status: int
) -> None:
    set_rate(papi, "USD", "EUR", "0.9223")  # the inverse pair is never used
    papi.as_live().post("/v1/exchange_rates", json={"base": "EUR", "quote": "USD", "rate": "1"})
    created = papi.create_invoice(amount=1999, currency="EUR")
    before, charges = everything(db, papi.merchant.id), charge_count(sandbox_path)
    response = papi.post(
        f"/v1/invoices/{created['id']}/pay",
        json={"payment_method": card(SUCCEEDS), "payment_currency": currency},
    )
    body = problem(response, status, code)  # fmt: skip
    if code == "exchange_rate_not_found":
        assert (body["base"], body["quote"]) == ("EUR", "USD")
    assert everything(db, papi.merchant.id) == before
    assert charge_count(sandbox_path) == charges
    assert pay(papi, created["id"], card(SUCCEEDS)).status_code == 200  # still payable


def test_a_converted_payment_is_refunded_in_the_payers_currency(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    set_rate(papi, "EUR", "USD", "1.0842")
    created = papi.create_invoice(amount=1999, currency="EUR")
    body = pay_in(papi, created["id"], "USD", card(SUCCEEDS))
    first = papi.post(f"/v1/invoices/{created['id']}/refunds", json={"amount": 999})
    assert first.status_code == 201, first.text
    rest = papi.post(f"/v1/invoices/{created['id']}/refunds", json={})
    assert rest.status_code == 201, rest.text
    refunds = [first.json(), rest.json()]
    assert [(r["amount"], r["payer_currency"], r["status"]) for r in refunds] == [
        (999, "USD", "succeeded"), (1000, "USD", "succeeded"),
    ]  # fmt: skip
    # The payer gets exactly the dollars they paid back, over the two refunds.
    assert sum(r["payer_amount"] for r in refunds) == body["payer_amount"] == 2167
    charge = gateway.charges(body["id"])
    assert charge is not None and charge["amount_refunded"] == 2167
    for refund in refunds:
        mine = [t for t in ledger(papi, created["id"]) if t["refund_id"] == refund["id"]]
        assert [t["kind"] for t in mine] == ["exchange", "refund"]
        assert mine[1]["entries"] == [
            {"account": BALANCE, "currency": "USD", "amount": refund["payer_amount"]},
            {"account": CLEARING, "currency": "USD", "amount": -refund["payer_amount"]},
        ]
    # Everything went back: the merchant's balances are zero in both currencies.
    moved = totals(papi, created["id"])
    assert (BALANCE, "EUR") not in moved and (BALANCE, "USD") not in moved
    assert moved.get((CLEARING, "USD"), 0) == 0
    assert rest.json()["invoice"]["status"] == "refunded"
    assert_books(db, papi.merchant.id)
