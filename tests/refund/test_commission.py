"""The merchant chooses whether a refund gives the commission back; converted payments are
refunded in the payer's currency."""

from typing import Any

import pytest

from quittance.db.uow import Database
from quittance.providers.sandbox import SandboxGateway
from tests.factories import Api
from tests.payment.helpers import SUCCEEDS, card, invoice, problem
from tests.refund.helpers import (
    CLEARING,
    assert_verified,
    full_state,
    ledger,
    paid_invoice,
    refund,
    refund_entries,
    refunded,
    set_commission,
    two_payments,
)

OPTIONS = "/v1/settings/payment_options"


def commission_paid(api: Api, db: Database, commission: int = 150) -> dict[str, Any]:
    inv = paid_invoice(api, 5000)
    (payment,) = api.get("/v1/payments", params={"invoice": inv["id"]}).json()["data"]
    set_commission(db, payment["id"], commission)
    return invoice(api, inv["id"])


def entries(amount: int, commission: int) -> list[dict[str, Any]]:
    """A refund posting's entries: merchant and commission revenue pay, the provider sends."""
    rows = [
        {"account": "commission_revenue", "currency": "EUR", "amount": commission},
        {"account": "merchant_balance", "currency": "EUR", "amount": amount - commission},
        {"account": CLEARING, "currency": "EUR", "amount": -amount},
    ]
    return [row for row in rows if row["amount"]]


def test_the_commission_is_kept_by_default(papi: Api, db: Database) -> None:
    inv = commission_paid(papi, db)
    assert inv["commission"] == 150
    document = refunded(papi, inv["id"], amount=1000)
    assert document["commission_returned"] == 0
    assert refund_entries(papi, document["id"], inv["id"]) == entries(1000, 0)
    assert document["invoice"]["commission"] == 150
    assert_verified(db, papi.merchant.id)


def test_a_full_refund_returns_exactly_the_commission(papi: Api, db: Database) -> None:
    inv = commission_paid(papi, db)
    document = refunded(papi, inv["id"], refund_commission=True)
    assert (document["amount"], document["commission_returned"]) == (5000, 150)
    assert refund_entries(papi, document["id"], inv["id"]) == entries(5000, 150)
    after = document["invoice"]
    assert (after["status"], after["commission"]) == ("refunded", 0)
    assert_verified(db, papi.merchant.id)


def test_the_payment_option_decides_and_a_refund_may_override_it(papi: Api, db: Database) -> None:
    inv = commission_paid(papi, db)
    response = papi.patch(OPTIONS, json={"refund_commission": True})
    assert response.status_code == 200 and response.json()["refund_commission"] is True
    # Cumulative over the payment's money: 150 x 1000/5000 = 30, then 150 x 3500/5000 = 105
    # less the 30 (kept back here by the override), then the rest up to 150.
    one = refunded(papi, inv["id"], amount=1000)
    two = refunded(papi, inv["id"], amount=2500, refund_commission=False)
    three = refunded(papi, inv["id"])
    assert [r["commission_returned"] for r in (one, two, three)] == [30, 0, 45]
    assert [refund_entries(papi, r["id"], inv["id"]) for r in (one, two, three)] == [
        entries(1000, 30), entries(2500, 0), entries(1500, 45),
    ]  # fmt: skip
    assert three["invoice"]["commission"] == 150 - 30 - 45
    assert_verified(db, papi.merchant.id)


@pytest.mark.parametrize(
    ("amount", "expected"), [(333, 10), (16, 0), (50, 2), (4999, 150)],
    ids=["9.99", "0.48", "1.5-half-up", "149.97"],
)  # fmt: skip
def test_commission_shares_round_once_half_up(
    papi: Api, db: Database, amount: int, expected: int
) -> None:
    inv = commission_paid(papi, db)  # 150 on 5000: amount x 0.03
    document = refunded(papi, inv["id"], amount=amount, refund_commission=True)
    assert document["commission_returned"] == expected
    assert refund_entries(papi, document["id"], inv["id"]) == entries(amount, expected)
    assert_verified(db, papi.merchant.id)


def test_a_failed_refund_returns_no_commission(papi: Api, db: Database) -> None:
    inv = commission_paid(papi, db)
    document = refunded(papi, inv["id"], amount=702, refund_commission=True)  # fails
    assert document["status"] == "failed"
    assert document["commission_returned"] == 21  # what it would have returned
    assert document["invoice"]["commission"] == 150
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["commission", "capture"]
    again = refunded(papi, inv["id"], amount=700, refund_commission=True)
    assert again["commission_returned"] == 21  # the failed refund took nothing
    assert_verified(db, papi.merchant.id)


def test_each_payment_returns_its_own_commission(papi: Api, db: Database) -> None:
    inv = two_payments(papi, transfer=2000)
    bank, cards = inv["payments"]
    set_commission(db, bank, 60)
    set_commission(db, cards, 90)
    document = refunded(papi, inv["id"], refund_commission=True)
    assert [(r["payment"], r["commission_returned"]) for r in document["refunds"]] == [
        (cards, 90), (bank, 60),
    ]  # fmt: skip
    assert document["invoice"]["commission"] == 0
    first, second = document["refunds"]
    assert refund_entries(papi, second["id"], inv["id"]) == entries(2000, 60)
    assert refund_entries(papi, first["id"], inv["id"]) == entries(3000, 90)
    assert_verified(db, papi.merchant.id)


def test_refund_commission_must_be_a_boolean(papi: Api, db: Database) -> None:
    inv = commission_paid(papi, db)
    before = full_state(db, papi.merchant.id)
    problem(refund(papi, inv["id"], refund_commission=1), 422, "invalid_type")
    assert full_state(db, papi.merchant.id) == before


def test_commission_from_a_fee_schedule_goes_back_in_full(papi: Api, db: Database) -> None:
    """End to end: the fee schedule prices the payment, a full refund returns all of it."""
    response = papi.client.put("/v1/fee_schedules/card", headers=papi._headers(None),
                               json={"currency": "EUR", "percent": "3"})  # fmt: skip
    assert response.status_code == 200, response.text
    inv = paid_invoice(papi, 5000)
    assert inv["commission"] == 150
    one = refunded(papi, inv["id"], amount=1234, refund_commission=True)
    rest = refunded(papi, inv["id"], refund_commission=True)
    # 150 x 1234/5000 = 37.02 -> 37; the rest takes exactly what is left.
    assert [one["commission_returned"], rest["commission_returned"]] == [37, 113]
    assert (rest["invoice"]["status"], rest["invoice"]["commission"]) == ("refunded", 0)
    assert refund_entries(papi, one["id"], inv["id"]) == entries(1234, 37)
    assert_verified(db, papi.merchant.id)


@pytest.mark.parametrize("give_back", [True, False])
def test_commission_paid_on_top_goes_back_to_the_payer(
    papi: Api, db: Database, gateway: SandboxGateway, give_back: bool
) -> None:
    """With `include_commission` the payer paid 5000 + 150; returning the commission sends
    the payer's 150 back with the invoice money (revenue pays it, not the merchant)."""
    response = papi.client.put("/v1/fee_schedules/card", headers=papi._headers(None),
                               json={"currency": "EUR", "percent": "3"})  # fmt: skip
    assert response.status_code == 200, response.text
    assert papi.patch(OPTIONS, json={"include_commission": True}).status_code == 200
    inv = paid_invoice(papi, 5000)
    assert (inv["amount_paid"], inv["commission"]) == (5000, 150)
    document = refunded(papi, inv["id"], refund_commission=give_back)
    commission = 150 if give_back else 0
    assert document["amount"] == 5000
    assert document["commission_returned"] == commission
    assert document["payer_amount"] == (5150 if give_back else None)
    rows = [
        {"account": "commission_revenue", "currency": "EUR", "amount": commission},
        {"account": "merchant_balance", "currency": "EUR", "amount": 5000},
        {"account": CLEARING, "currency": "EUR", "amount": -(5000 + commission)},
    ]
    assert refund_entries(papi, document["id"], inv["id"]) == [r for r in rows if r["amount"]]
    after = document["invoice"]
    assert (after["status"], after["amount_refunded"], after["commission"]) == (
        "refunded", 5000, 150 - commission,
    )  # fmt: skip
    charge = gateway.charges(document["payment"])
    assert charge is not None and charge["amount_refunded"] == 5000 + commission
    assert_verified(db, papi.merchant.id)


def test_a_payment_in_another_currency_is_refunded_in_it(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    """End to end: the payer paid GBP for a EUR invoice; refunds send GBP back."""
    response = papi.post("/v1/exchange_rates",
                         json={"base": "EUR", "quote": "GBP", "rate": "0.86"})  # fmt: skip
    assert response.status_code == 201, response.text
    created = papi.create_invoice(amount=5000, currency="EUR")
    response = papi.post(
        f"/v1/invoices/{created['id']}/pay",
        json={"payment_method": card(SUCCEEDS), "payment_currency": "GBP"},
    )
    assert response.status_code == 200, response.text
    payment = response.json()
    assert (payment["status"], payment["payer_currency"], payment["payer_received"]) == (
        "succeeded", "GBP", 4300,
    )  # fmt: skip
    one = refunded(papi, created["id"], amount=1999)
    rest = refunded(papi, created["id"])
    # 4300 x 1999/5000 = 1719.14 -> 1719; the rest: 2581, so GBP 43.00 goes back in all.
    assert [(r["payer_currency"], r["payer_amount"]) for r in (one, rest)] == [
        ("GBP", 1719), ("GBP", 2581),
    ]  # fmt: skip
    sent = [gateway.refund_status(r["id"]) for r in (one, rest)]
    assert [r.amount_received if r else None for r in sent] == [1719, 2581]
    assert rest["invoice"]["status"] == "refunded"
    posted = [e for t in ledger(papi, created["id"]) if t["refund_id"] == one["id"]
              for e in t["entries"]]  # fmt: skip
    assert {"account": CLEARING, "currency": "GBP", "amount": -1719} in posted
    assert_verified(db, papi.merchant.id)
