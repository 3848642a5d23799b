"""Commission on payments: paid on top by the payer or taken from the merchant's proceeds,
for card payments and bank transfers that bring part, all or more of the money; JPY
(exponent 0) and KWD (exponent 3); rounded once."""

from typing import Any

import pytest

from quittance.db.uow import Database
from quittance.domain.money import MAX_AMOUNT
from quittance.providers.sandbox import SandboxGateway
from tests.factories import Api
from tests.payment.helpers import BANK_TRANSFER, SUCCEEDS, card, charge_count, paid, pay, problem
from tests.pricing.helpers import (
    CLEARING,
    assert_books,
    delete,
    everything,
    set_options,
    set_schedule,
    shapes,
    totals,
    transfer,
)

BALANCE, REVENUE = "merchant_balance", "commission_revenue"


def money(document: dict[str, Any]) -> tuple[Any, ...]:
    """A payment's money: amount, received for the invoice, commission, payer's side."""
    return (
        document["amount"],
        document["amount_received"],
        document["commission"],
        document["payer_currency"],
        document["payer_amount"],
        document["payer_received"],
    )


def invoice_money(document: dict[str, Any]) -> tuple[Any, ...]:
    return (document["status"], document["amount_paid"], document["amount_due"],
            document["commission"])  # fmt: skip


def test_a_card_pays_the_commission_on_top(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    set_schedule(papi, "card", "EUR", "2.9", fixed=30, maximum=500)
    set_options(papi, include_commission=True)
    created = papi.create_invoice(amount=1999, currency="EUR")
    body = paid(papi, created["id"], card(SUCCEEDS))
    # 2.9 % of 1999 = 57.971, + 30 = 87.971 → 88, rounded once; the payer pays 2087.
    assert money(body) == (1999, 1999, 88, "EUR", 2087, 2087)
    assert invoice_money(body["invoice"]) == ("processed", 1999, 0, 88)
    charge = gateway.charges(body["id"])
    assert charge is not None and (charge["amount"], charge["currency"]) == (2087, "EUR")
    # One capture: the payer's money goes to the merchant and, for the commission, to revenue.
    assert shapes(papi, created["id"]) == [
        ("capture", [(CLEARING, "EUR", 2087), (BALANCE, "EUR", -1999), (REVENUE, "EUR", -88)]),
    ]
    assert_books(db, papi.merchant.id)


def test_a_card_payment_gives_up_the_commission_from_the_proceeds(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    set_schedule(papi, "card", "EUR", "2.9", fixed=30, maximum=500)
    created = papi.create_invoice(amount=1999, currency="EUR")
    body = paid(papi, created["id"], card(SUCCEEDS))
    assert money(body) == (1999, 1999, 88, "EUR", 1999, 1999)
    assert invoice_money(body["invoice"]) == ("processed", 1999, 0, 88)
    charge = gateway.charges(body["id"])
    assert charge is not None and charge["amount"] == 1999
    # The capture credits the merchant the whole payment; a commission transaction takes 88.
    assert shapes(papi, created["id"]) == [
        ("capture", [(CLEARING, "EUR", 1999), (BALANCE, "EUR", -1999)]),
        ("commission", [(BALANCE, "EUR", 88), (REVENUE, "EUR", -88)]),
    ]
    assert totals(papi, created["id"])[(BALANCE, "EUR")] == -1911
    assert_books(db, papi.merchant.id)


def test_transfers_pay_the_invoice_first_then_the_commission_on_top(
    papi: Api, db: Database
) -> None:
    set_schedule(papi, "bank_transfer", "EUR", "1.5")
    set_options(papi, include_commission=True)
    created = papi.create_invoice(amount=10000, currency="EUR")
    pending = paid(papi, created["id"], BANK_TRANSFER)
    assert (pending["status"], pending["payer_amount"]) == ("pending", 10150)
    assert pending["next_action"]["amount_remaining"] == 10150
    part = transfer(papi, pending["id"], 6000)
    assert money(part) == (10000, 6000, 0, "EUR", 10150, 6000)
    assert invoice_money(part["invoice"]) == ("partially_processed", 6000, 4000, 0)
    # 4100 more pays the invoice (4000) and 100 of the 150 commission: the invoice is paid,
    # the payment waits for the last 50.
    more = transfer(papi, pending["id"], 4100)
    assert (more["status"], *money(more)) == ("pending", 10000, 10000, 100, "EUR", 10150, 10100)
    assert invoice_money(more["invoice"]) == ("processed", 10000, 0, 100)
    # 200 more: 50 of commission, then 150 overpaid (no commission on an overpayment).
    over = transfer(papi, pending["id"], 200)
    assert (over["status"], *money(over)) == ("succeeded", 10000, 10150, 150, "EUR", 10150,
                                              10300)  # fmt: skip
    assert invoice_money(over["invoice"]) == ("processed", 10150, -150, 150)
    assert over["invoice"]["overpaid"] is True
    assert shapes(papi, created["id"]) == [
        ("capture", [(CLEARING, "EUR", 6000), (BALANCE, "EUR", -6000)]),
        ("capture", [(CLEARING, "EUR", 4100), (BALANCE, "EUR", -4000), (REVENUE, "EUR", -100)]),
        ("capture", [(CLEARING, "EUR", 200), (BALANCE, "EUR", -150), (REVENUE, "EUR", -50)]),
    ]
    assert_books(db, papi.merchant.id)


def test_transfers_from_proceeds_never_leave_the_merchant_a_negative_net(
    papi: Api, db: Database
) -> None:
    set_schedule(papi, "bank_transfer", "EUR", "1", fixed=30)
    created = papi.create_invoice(amount=5000, currency="EUR")
    pending = paid(papi, created["id"], BANK_TRANSFER)
    assert pending["payer_amount"] == 5000
    # 1 % of 20 + 30 = 30.2, more than the 20 received: all 20 is commission, net 0.
    tiny = transfer(papi, pending["id"], 20)
    assert (tiny["amount_received"], tiny["commission"]) == (20, 20)
    # On 2020: 20.2 + 30 = 50.2 → 50, so 30 more.
    half = transfer(papi, pending["id"], 2000)
    assert (half["amount_received"], half["commission"]) == (2020, 50)
    # On 5520: priced on the 5000 asked (50 + 30 = 80); the 520 overpaid carries none.
    over = transfer(papi, pending["id"], 3500)
    assert (over["status"], over["amount_received"], over["commission"]) == ("succeeded", 5520, 80)
    assert invoice_money(over["invoice"]) == ("processed", 5520, -520, 80)
    assert shapes(papi, created["id"]) == [
        ("capture", [(CLEARING, "EUR", 20), (BALANCE, "EUR", -20)]),
        ("commission", [(BALANCE, "EUR", 20), (REVENUE, "EUR", -20)]),
        ("capture", [(CLEARING, "EUR", 2000), (BALANCE, "EUR", -2000)]),
        ("commission", [(BALANCE, "EUR", 30), (REVENUE, "EUR", -30)]),
        ("capture", [(CLEARING, "EUR", 3500), (BALANCE, "EUR", -3500)]),
        ("commission", [(BALANCE, "EUR", 30), (REVENUE, "EUR", -30)]),
    ]
    assert totals(papi, created["id"])[(BALANCE, "EUR")] == -5440
    assert_books(db, papi.merchant.id)


def test_commission_on_parts_is_rounded_once_over_the_whole(papi: Api, db: Database) -> None:
    # 2.5 % of 100 is 2.5 (3 each, were each part rounded); of 200 it is exactly 5.
    set_schedule(papi, "bank_transfer", "EUR", "2.5")
    created = papi.create_invoice(amount=200, currency="EUR")
    pending = paid(papi, created["id"], BANK_TRANSFER)
    first = transfer(papi, pending["id"], 100)
    second = transfer(papi, pending["id"], 100)
    assert (first["commission"], second["commission"]) == (3, 5)
    assert second["invoice"]["commission"] == 5
    assert_books(db, papi.merchant.id)


@pytest.mark.parametrize(
    ("currency", "amount", "schedule", "on_top", "fee"),
    [
        # JPY has no minor unit: 0.5 % of 900 JPY = 4.5 → 5 (half up, not to even).
        ("JPY", 900, {"percent": "0.5"}, True, 5),
        ("JPY", 999, {"percent": "3.25", "fixed": 10}, False, 42),  # 32.4675 + 10 → 42
        # KWD has three: 1.2345 % of 12.345 KWD = 152.399025 fils, + 500 = 652.4, max 600.
        ("KWD", 12345, {"percent": "1.2345", "fixed": 500, "maximum": 600}, True, 600),
        ("KWD", 12345, {"percent": "0.1", "minimum": 50}, False, 50),  # 12.345 → min 50
    ],
)
def test_commission_in_currencies_of_other_exponents(
    papi: Api, db: Database, currency: str, amount: int, schedule: dict[str, Any],
    on_top: bool, fee: int,
) -> None:  # fmt: skip
    set_schedule(papi, "card", currency, **schedule)
    set_options(papi, include_commission=on_top)
    created = papi.create_invoice(amount=amount, currency=currency)
    body = paid(papi, created["id"], card(SUCCEEDS))
    payer = amount + fee if on_top else amount
    assert money(body) == (amount, amount, fee, currency, payer, payer)
    assert invoice_money(body["invoice"]) == ("processed", amount, 0, fee)
    moved = totals(papi, created["id"])
    assert moved[(REVENUE, currency)] == -fee
    assert moved[(BALANCE, currency)] == -(amount if on_top else amount - fee)
    assert moved[(CLEARING, currency)] == payer
    assert_books(db, papi.merchant.id)


def test_without_a_schedule_for_the_method_and_currency_there_is_no_commission(
    papi: Api, db: Database
) -> None:
    set_schedule(papi, "card", "USD", "2.9", fixed=30)  # another currency
    set_schedule(papi, "bank_transfer", "EUR", "5")  # another method
    set_options(papi, include_commission=True)
    created = papi.create_invoice(amount=1999, currency="EUR")
    body = paid(papi, created["id"], card(SUCCEEDS))
    assert money(body) == (1999, 1999, 0, "EUR", 1999, 1999)
    assert shapes(papi, created["id"]) == [
        ("capture", [(CLEARING, "EUR", 1999), (BALANCE, "EUR", -1999)]),
    ]
    assert_books(db, papi.merchant.id)


def test_a_commission_on_top_past_the_largest_amount_is_refused(
    papi: Api, db: Database, sandbox_path: str
) -> None:
    set_schedule(papi, "card", "EUR", "1")
    set_options(papi, include_commission=True)
    created = papi.create_invoice(amount=MAX_AMOUNT, currency="EUR")
    before, charges = everything(db, papi.merchant.id), charge_count(sandbox_path)
    problem(pay(papi, created["id"], card(SUCCEEDS)), 422, "payer_amount_too_large")
    assert everything(db, papi.merchant.id) == before
    assert charge_count(sandbox_path) == charges


def test_a_changed_or_deleted_schedule_prices_the_next_payment_at_once(papi: Api) -> None:
    """The pay path caches schedules (and their absence); a change must not wait for it."""
    amounts = []
    for step in ("none", "2%", "5%", "deleted"):
        if step in ("2%", "5%"):
            set_schedule(papi, "card", "EUR", step.rstrip("%"))
        elif step == "deleted":
            assert delete(papi, "/v1/fee_schedules/card/EUR").status_code == 200
        invoice = papi.create_invoice(amount=10_000)
        payment = pay(papi, invoice["id"], card(SUCCEEDS)).json()
        amounts.append(payment["commission"])
    assert amounts == [0, 200, 500, 0]
