"""Every captured amount is one balanced `capture` transaction (DESIGN §11), shown by the API."""

from typing import Any

import pytest
from sqlalchemy import func, select

from quittance.db.uow import Database
from quittance.models import LedgerEntry, LedgerTransaction
from tests.factories import Api, MerchantFactory
from tests.payment.helpers import BANK_TRANSFER, DECLINED, SUCCEEDS, card, invoice, paid, problem

CLEARING = "provider_clearing:sandbox"


def ledger(api: Api, invoice_id: str) -> list[dict[str, Any]]:
    response = api.get("/v1/ledger/transactions", params={"invoice": invoice_id})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["has_more"] is False
    return list(body["data"])


def transfer(api: Api, payment_id: str, amount: int) -> dict[str, Any]:
    response = api.post("/v1/test_helpers/bank_transfers",
                        json={"payment": payment_id, "amount": amount})  # fmt: skip
    assert response.status_code == 200, response.text
    return dict(response.json())


def stored_sums(db: Database, transaction_id: str) -> dict[str, int]:
    with db.read() as session:
        rows = session.execute(
            select(LedgerEntry.currency, func.sum(LedgerEntry.amount))
            .where(LedgerEntry.transaction_id == transaction_id)
            .group_by(LedgerEntry.currency)
        )
        return {currency: int(total) for currency, total in rows}


def assert_capture(
    txn: dict[str, Any], invoice_id: str, payment_id: str, currency: str, amount: int
) -> None:
    assert txn["object"] == "ledger_transaction"
    assert txn["id"].startswith("ltx_") and len(txn["id"]) == 30
    assert (txn["kind"], txn["invoice_id"], txn["payment_id"], txn["refund_id"]) == (
        "capture", invoice_id, payment_id, None,
    )  # fmt: skip
    assert txn["livemode"] is False
    assert txn["entries"] == [
        {"account": CLEARING, "currency": currency, "amount": amount},
        {"account": "merchant_balance", "currency": currency, "amount": -amount},
    ]


@pytest.mark.parametrize(("currency", "amount"), [("JPY", 1999), ("EUR", 1999), ("KWD", 12345)])
def test_a_paid_invoice_has_one_balanced_capture(
    papi: Api, db: Database, currency: str, amount: int
) -> None:
    created = papi.create_invoice(amount=amount, currency=currency)
    payment = paid(papi, created["id"], card(SUCCEEDS))
    assert payment["status"] == "succeeded"
    assert invoice(papi, created["id"])["amount_paid"] == amount
    [txn] = ledger(papi, created["id"])
    assert_capture(txn, created["id"], payment["id"], currency, amount)
    assert stored_sums(db, txn["id"]) == {currency: 0}
    one = papi.get(f"/v1/ledger/transactions/{txn['id']}")
    assert one.status_code == 200 and one.json() == txn


def test_a_partial_transfer_and_the_rest_are_two_captures(papi: Api, db: Database) -> None:
    created = papi.create_invoice(amount=5000, currency="EUR")
    payment = paid(papi, created["id"], BANK_TRANSFER)
    assert ledger(papi, created["id"]) == []  # instructions only: no money yet
    transfer(papi, payment["id"], 2000)
    assert invoice(papi, created["id"])["status"] == "partially_processed"
    transfer(papi, payment["id"], 3000)
    after = invoice(papi, created["id"])
    assert (after["status"], after["amount_paid"]) == ("processed", 5000)
    newest, oldest = ledger(papi, created["id"])
    assert_capture(oldest, created["id"], payment["id"], "EUR", 2000)
    assert_capture(newest, created["id"], payment["id"], "EUR", 3000)
    assert oldest["id"] < newest["id"]
    credited = -sum(e["amount"] for t in (oldest, newest) for e in t["entries"]
                    if e["account"] == "merchant_balance")  # fmt: skip
    assert credited == after["amount_paid"]


def test_an_overpayment_is_captured_in_full(papi: Api) -> None:
    created = papi.create_invoice(amount=5000, currency="EUR")
    payment = paid(papi, created["id"], BANK_TRANSFER)
    transfer(papi, payment["id"], 6500)
    assert invoice(papi, created["id"])["amount_paid"] == 6500
    [txn] = ledger(papi, created["id"])
    assert_capture(txn, created["id"], payment["id"], "EUR", 6500)


def test_a_declined_payment_posts_nothing(papi: Api, db: Database) -> None:
    created = papi.create_invoice(amount=1999, currency="EUR")
    assert paid(papi, created["id"], card(DECLINED))["status"] == "failed"
    assert ledger(papi, created["id"]) == []
    assert papi.get("/v1/ledger/balances").json()["data"] == []
    with db.read() as session:
        count = session.scalar(
            select(func.count()).where(LedgerTransaction.merchant_id == papi.merchant.id)
        )
    assert count == 0


def test_balances_are_the_sums_of_entries(papi: Api, db: Database) -> None:
    for amount, currency in ((1000, "EUR"), (2500, "EUR"), (700, "JPY")):
        created = papi.create_invoice(amount=amount, currency=currency)
        paid(papi, created["id"], card(SUCCEEDS))
    response = papi.get("/v1/ledger/balances")
    assert response.status_code == 200, response.text
    got = {(b["account"], b["currency"]): b["balance"] for b in response.json()["data"]}
    assert got == {
        (CLEARING, "EUR"): 3500, ("merchant_balance", "EUR"): -3500,
        (CLEARING, "JPY"): 700, ("merchant_balance", "JPY"): -700,
    }  # fmt: skip
    with db.read() as session:
        stored = {
            (account, currency): int(total)
            for account, currency, total in session.execute(
                select(LedgerEntry.account, LedgerEntry.currency, func.sum(LedgerEntry.amount))
                .where(LedgerEntry.merchant_id == papi.merchant.id, LedgerEntry.livemode.is_(False))
                .group_by(LedgerEntry.account, LedgerEntry.currency)
            )
        }
    assert got == stored


def test_pages_go_newest_first(papi: Api) -> None:
    ids = []
    for _ in range(3):
        created = papi.create_invoice(amount=100, currency="EUR")
        paid(papi, created["id"], card(SUCCEEDS))
        ids.append(ledger(papi, created["id"])[0]["id"])
    first = papi.get("/v1/ledger/transactions", params={"limit": 2}).json()
    assert [t["id"] for t in first["data"]] == ids[::-1][:2] and first["has_more"] is True
    rest = papi.get("/v1/ledger/transactions",
                    params={"limit": 2, "starting_after": first["next_cursor"]}).json()  # fmt: skip
    assert [t["id"] for t in rest["data"]] == [ids[0]] and rest["has_more"] is False


def test_another_merchant_or_mode_sees_nothing(papi: Api, merchants: MerchantFactory) -> None:
    created = papi.create_invoice(amount=1999, currency="EUR")
    paid(papi, created["id"], card(SUCCEEDS))
    [txn] = ledger(papi, created["id"])
    other = Api(papi.client, merchants.create("Other Shop"))
    for stranger in (other, papi.as_live()):
        problem(stranger.get(f"/v1/ledger/transactions/{txn['id']}"), 404,
                "ledger_transaction_not_found")  # fmt: skip
        assert stranger.get("/v1/ledger/transactions").json()["data"] == []
        assert ledger(stranger, created["id"]) == []
        assert stranger.get("/v1/ledger/balances").json()["data"] == []
    problem(papi.get("/v1/ledger/transactions/ltx_nope"), 404, "ledger_transaction_not_found")
