"""`post_capture` and `post_refund` with commission and another currency: each transaction
balances per currency, and the shapes keep `quittance verify`'s invariants."""

from collections import defaultdict

import pytest
from sqlalchemy import select

from quittance.db.uow import Database
from quittance.ledger.service import post_capture, post_refund
from quittance.models import Invoice, LedgerEntry, LedgerTransaction, Payment
from tests.factories import Api
from tests.payment.helpers import SUCCEEDS, card, paid
from tests.pricing.helpers import CLEARING, assert_books, set_rate

BALANCE, REVENUE, EXCHANGE = "merchant_balance", "commission_revenue", "exchange"


def postings(db: Database, refund_id: str) -> list[tuple[str, str, list[tuple[str, str, int]]]]:
    """A refund's transactions: (kind, description, entries), each balanced per currency."""
    with db.read() as session:
        rows = session.scalars(
            select(LedgerTransaction)
            .where(LedgerTransaction.refund_id == refund_id)
            .order_by(LedgerTransaction.id)
        ).all()
        out = []
        for row in rows:
            entries = session.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.transaction_id == row.id)
                .order_by(LedgerEntry.id)
            ).all()
            sums: dict[str, int] = defaultdict(int)
            for entry in entries:
                sums[entry.currency] += entry.amount
            assert set(sums.values()) == {0}
            out.append((row.kind, row.description,
                        [(e.account, e.currency, e.amount) for e in entries]))  # fmt: skip
        return out


def test_a_converted_refund_returns_commission_then_exchanges_back(papi: Api, db: Database) -> None:
    set_rate(papi, "EUR", "USD", "1.0842")
    created = papi.create_invoice(amount=1999, currency="EUR")
    response = papi.post(
        f"/v1/invoices/{created['id']}/pay",
        json={"payment_method": card(SUCCEEDS), "payment_currency": "USD"},
    )
    payment = response.json()  # fmt: skip
    with db.write() as session:
        # Refund 999 EUR, 50 of it commission given back, as 1083 USD (as the refunds service
        # does for a payment made in dollars).
        invoice = session.get(Invoice, created["id"])
        assert invoice is not None
        post_refund(
            session, merchant_id=papi.merchant.id, livemode=False, provider="sandbox",
            currency="EUR", amount=999, invoice_id=invoice.id, payment_id=payment["id"],
            refund_id="re_01TEST0000000000000000000A", commission_returned=50,
            payer_currency="USD", payer_amount=1083,
        )  # fmt: skip
    assert postings(db, "re_01TEST0000000000000000000A") == [
        ("commission", "Commission returned with a refund",
         [(BALANCE, "EUR", -50), (REVENUE, "EUR", 50)]),
        ("exchange", "Exchange at 1 EUR = 1.0842 USD, rounding -0.1158",
         [(BALANCE, "USD", -1083), (EXCHANGE, "USD", 1083), (EXCHANGE, "EUR", -999),
          (BALANCE, "EUR", 999)]),
        ("refund", "Refund", [(BALANCE, "USD", 1083), (CLEARING, "USD", -1083)]),
    ]  # fmt: skip
    with db.write() as session:  # what the refunds service records with it
        invoice = session.get(Invoice, created["id"])
        assert invoice is not None
        invoice.amount_refunded += 999
        invoice.commission -= 50
    assert_books(db, papi.merchant.id)


def test_a_capture_from_proceeds_is_two_transactions(papi: Api, db: Database) -> None:
    created = papi.create_invoice(amount=1000, currency="JPY")
    payment = paid(papi, created["id"], card(SUCCEEDS))
    with db.write() as session:
        first = post_capture(
            session, merchant_id=papi.merchant.id, livemode=False, provider="sandbox",
            currency="JPY", received=500, invoice_id=created["id"], payment_id=payment["id"],
            commission=30, include_commission=False,
        )  # fmt: skip
        kinds = [
            row.kind
            for row in session.scalars(
                select(LedgerTransaction)
                .where(LedgerTransaction.id >= first, LedgerTransaction.invoice_id == created["id"])
                .order_by(LedgerTransaction.id)
            )
        ]
        invoice = session.get(Invoice, created["id"])
        assert invoice is not None
        invoice.amount_paid += 500  # what the payment service records with it
        invoice.commission += 30
    assert kinds == ["capture", "commission"]
    assert_books(db, papi.merchant.id)


def test_refund_arguments_that_cannot_balance_are_refused(papi: Api, db: Database) -> None:
    created = papi.create_invoice(amount=1000, currency="EUR")
    payment = paid(papi, created["id"], card(SUCCEEDS))
    common = {"merchant_id": papi.merchant.id, "livemode": False, "provider": "sandbox",
              "currency": "EUR", "invoice_id": created["id"], "payment_id": payment["id"],
              "refund_id": "re_01TEST0000000000000000000B"}  # fmt: skip
    with db.read() as session:
        stored = session.get(Payment, payment["id"])
        assert stored is not None and stored.exchange_rate is None
    for extra in ({"amount": 100, "payer_currency": "EUR", "payer_amount": 90},
                  {"amount": 100, "payer_currency": "USD"},
                  {"amount": 100, "payer_currency": "USD", "payer_amount": 110,
                   "commission_returned": 101}):  # fmt: skip
        with pytest.raises(ValueError), db.write() as session:
            post_refund(session, **common, **extra)  # type: ignore[arg-type]
