"""Random sequences of money operations on one invoice, checked after every step (issue 4 §7).

Hypothesis draws a currency (JPY, EUR, KWD, ...), an amount or line items, a merchant's
commission set-up (a fee schedule, on top or from proceeds, returned on refund or not), maybe
a payer currency with an exchange rate, and a sequence of operations: card payments, bank
transfers that pay part, all or more than what is due, authorisations by the invoice method
with deliveries and cancellations (all, by amount or by items), refunds by amount or by items
(some of which the sandbox leaves pending or fails, settled or failed later), and expiry. Each
operation goes through the API as a merchant would call it; a refusal must be a 4xx with a
stable code. After every step, on SQLite and on PostgreSQL:

- no request answered 5xx;
- `quittance verify` finds nothing wrong with this merchant's books and invoice (every ledger
  transaction balanced per currency, the invoice's amounts equal to its ledger movements, one
  event per transition, each a row of the transition table);
- independently of `verify`, when no commission or exchange is involved, the provider
  clearing and merchant balance accounts move by exactly what was paid and refunded;
- refunded never exceeds paid, amount_due is amount - paid, amount + amount_cancelled stays
  what was invoiced, and no line has more units cancelled, delivered or refunded than it has;
- a final status without refundable money never changes again.
"""

from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from quittance.db.uow import Database
from quittance.domain.invoice import STATUS_INFO, Status
from quittance.models import LedgerEntry, LedgerTransaction, Refund
from tests.factories import Api, MerchantFactory
from tests.payment.conftest import pay_client, pay_settings, sandbox_path
from tests.payment.helpers import (
    BANK_TRANSFER,
    INVOICE_METHOD,
    SUCCEEDS,
    card,
    merchant_violations,
)

__all__ = ["pay_client", "pay_settings", "sandbox_path"]

CURRENCIES = {"JPY": 0, "EUR": 2, "USD": 2, "KWD": 3, "CLF": 4}
# Refusals a merchant may meet in a random sequence; anything else fails the test.
EXPECTED_REFUSALS = {
    "invoice_not_payable",
    "invoice_not_refundable",
    "refund_exceeds_refundable",
    "invalid_status_transition",
    "invoice_not_expirable",
    "sandbox_refused",
    "payment_not_open",
    "refund_not_pending",
    "payment_method_not_available",
    "invoice_not_cancellable",
    "invoice_not_deliverable",
    "cancellation_exceeds_cancellable",
    "delivery_exceeds_deliverable",
    "line_item_quantity_exceeded",
    "refund_quantity_exceeds_refundable",
    "fulfilment_pending",
    "amount_not_positive",
    "payer_amount_too_large",
}

_card = st.just(("card",))
_bank = st.just(("bank_transfer",))
_transfer = st.tuples(st.just("transfer"), st.sampled_from([25, 50, 100, 150]))
_refund = st.tuples(
    st.just("refund"), st.sampled_from([10, 33, 50, 100]), st.sampled_from(["", "", "01", "02"])
)
_authorise = st.just(("authorise",))
_part = st.tuples(st.sampled_from(["all", "amount", "items"]), st.sampled_from([25, 50, 100]))
_deliver = st.tuples(st.just("deliver"), _part)
_cancel = st.tuples(st.just("cancel"), _part)
_refund_items = st.tuples(st.just("refund_items"), st.sampled_from([1, 2]))
# Weighted so that most sequences get money in and then move it back out.
operation = st.one_of(
    _card, _bank, _bank, _transfer, _transfer, _transfer, _refund, _refund, _refund, _refund,
    _authorise, _deliver, _deliver, _cancel, _refund_items, _refund_items,
    st.just(("settle_refund",)), st.just(("fail_refund",)), st.just(("expire",)),
)  # fmt: skip
fees = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(["0", "1.5", "2.9", "12.3456"]), st.sampled_from([0, 1, 30]),
              st.sampled_from([None, 5])),
)  # fmt: skip
# Payer currency and the rate from the invoice's currency to it.
exchanges = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(["GBP", "JPY", "KWD"]),
              st.sampled_from(["0.8571", "163.2", "0.3079"])),
)  # fmt: skip


@dataclass
class Run:
    api: Api
    db: Database
    invoice_id: str
    currency: str
    bank_payment: str | None = None
    payer_currency: str | None = None
    invoiced: int = 0
    statuses: list[str] = field(default_factory=list)
    statuses_refundable: bool = False

    def invoice(self) -> dict[str, Any]:
        response = self.api.get(f"/v1/invoices/{self.invoice_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any] | None:
        response = self.api.client.request(method, path, json=body, headers=self.api._headers(None))
        assert response.status_code < 500, (path, body, response.text)
        if response.status_code >= 400:
            problem = response.json()
            assert problem["code"] in EXPECTED_REFUSALS, (path, body, problem)
            return None
        result: dict[str, Any] = response.json()
        return result


def _refund_amount(refundable: int, percent: int, ending: str) -> int:
    amount = max(1, refundable * percent // 100)
    if ending and amount >= 100:
        # Sandbox refund outcomes: an amount ending in 01 stays pending, in 02 fails.
        amount = amount - amount % 100 + int(ending)
        amount = amount if amount <= refundable else amount - 100
    return amount


def _apply(run: Run, op: tuple[Any, ...]) -> None:
    invoice = run.invoice()
    kind = op[0]
    pay = f"/v1/invoices/{run.invoice_id}/pay"
    extra = {} if run.payer_currency is None else {"payment_currency": run.payer_currency}
    if kind == "card":
        run.call("POST", pay, {"payment_method": card(SUCCEEDS), **extra})
    elif kind == "authorise":
        run.call("POST", pay, {"payment_method": INVOICE_METHOD, **extra})
    elif kind in ("deliver", "cancel"):
        path = "deliveries" if kind == "deliver" else "cancellations"
        run.call("POST", f"/v1/invoices/{run.invoice_id}/{path}", _part_body(invoice, *op[1]))
    elif kind == "refund_items":
        lines = [{"line_item": line["id"], "quantity": op[1]} for line in invoice["line_items"][:1]]
        if lines:
            run.call("POST", f"/v1/invoices/{run.invoice_id}/refunds", {"line_items": lines})
    elif kind == "bank_transfer":
        payment = run.call("POST", pay, {"payment_method": BANK_TRANSFER, **extra})
        if payment is not None and payment["status"] == "pending":
            run.bank_payment = payment["id"]
    elif kind == "bank_then_transfer":
        _apply(run, ("bank_transfer",))
        _apply(run, ("transfer", op[1]))
    elif kind == "transfer":
        if run.bank_payment is None:
            return
        due = max(1, invoice["amount"] - invoice["amount_paid"])
        amount = max(1, due * op[1] // 100)
        if run.payer_currency is not None:
            amount = max(1, _payment(run, run.bank_payment)["payer_amount"] * op[1] // 100)
        run.call("POST", "/v1/test_helpers/bank_transfers",
                 {"payment": run.bank_payment, "amount": amount})  # fmt: skip
    elif kind == "refund":
        refundable = invoice["amount_paid"] - invoice["amount_refunded"]
        amount = _refund_amount(max(refundable, 1), op[1], op[2])
        run.call("POST", f"/v1/invoices/{run.invoice_id}/refunds", {"amount": amount})
    elif kind in ("settle_refund", "fail_refund"):
        with run.db.read() as session:
            pending = session.scalars(
                select(Refund.id).where(
                    Refund.invoice_id == run.invoice_id, Refund.status == "pending"
                )
            ).first()
        if pending is not None:
            action = "settle" if kind == "settle_refund" else "fail"
            run.call("POST", f"/v1/test_helpers/refunds/{pending}/{action}")
    elif kind == "expire":
        run.call("POST", f"/v1/test_helpers/invoices/{run.invoice_id}/expire")


def _part_body(invoice: dict[str, Any], how: str, percent: int) -> dict[str, Any] | None:
    """All (no body), an amount, or some units of the first line with units left."""
    if how == "all":
        return None
    if how == "amount":
        return {"amount": max(1, invoice["amount"] * percent // 100)}
    for line in invoice["line_items"]:
        left = line["quantity"] - line["quantity_cancelled"] - line["quantity_delivered"]
        if left > 0:
            quantity = max(1, left * percent // 100)
            return {"line_items": [{"line_item": line["id"], "quantity": quantity}]}
    return {"amount": 1}


def _payment(run: Run, payment_id: str) -> dict[str, Any]:
    response = run.api.get(f"/v1/payments/{payment_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _movements(db: Database, merchant_id: str, invoice_id: str, currency: str) -> dict[str, int]:
    """The invoice's ledger movements per account, in its currency."""
    with db.read() as session:
        rows = session.execute(
            select(LedgerEntry.account, func.sum(LedgerEntry.amount))
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(
                LedgerTransaction.merchant_id == merchant_id,
                LedgerTransaction.invoice_id == invoice_id,
                LedgerEntry.currency == currency,
            )
            .group_by(LedgerEntry.account)
        ).all()
    return {account: int(total) for account, total in rows}


def _check(run: Run, merchant_id: str, plain: bool) -> None:
    invoice = run.invoice()
    paid, refunded = invoice["amount_paid"], invoice["amount_refunded"]
    assert 0 <= refunded <= paid
    assert invoice["amount_due"] == invoice["amount"] - paid
    assert invoice["amount"] + invoice["amount_cancelled"] == run.invoiced
    assert invoice["amount_authorized"] >= 0 and invoice["commission"] >= 0
    for line in invoice["line_items"]:
        assert line["quantity_cancelled"] + line["quantity_delivered"] <= line["quantity"], line
        assert line["quantity_refunded"] <= line["quantity"] - line["quantity_cancelled"], line
    if plain:
        moves = _movements(run.db, merchant_id, run.invoice_id, run.currency)
        clearing = sum(v for k, v in moves.items() if k.startswith("provider_clearing"))
        assert clearing == paid - refunded, moves
        assert moves.get("merchant_balance", 0) == -(paid - refunded), moves
    broken, _ = merchant_violations(run.db, merchant_id)
    assert broken == [], broken
    # A final status with nothing left to refund never changes again.
    if run.statuses:
        before = Status(run.statuses[-1])
        if STATUS_INFO[before].final and not run.statuses_refundable:
            assert invoice["status"] == before.value
    run.statuses.append(invoice["status"])
    run.statuses_refundable = paid - refunded > 0


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    currency=st.sampled_from(sorted(CURRENCIES)),
    amount=st.integers(min_value=1, max_value=5_000_000),
    lines=st.one_of(
        st.none(),
        st.lists(
            st.tuples(
                st.integers(1, 4), st.integers(1, 100_000), st.sampled_from(["0", "7", "19.6"])
            ),
            min_size=1,
            max_size=3,
        ),
    ),
    fee=fees,
    include_commission=st.booleans(),
    refund_commission=st.booleans(),
    exchange=exchanges,
    # Money comes in first more often than not; then anything may happen.
    first=st.one_of(
        _card,
        st.tuples(st.just("bank_then_transfer"), st.sampled_from([50, 100, 150])),
        _authorise,
        _authorise,
    ),
    operations=st.lists(operation, min_size=1, max_size=12),
)
def test_random_money_sequences_keep_the_books_right(
    pay_client: TestClient,
    merchants: MerchantFactory,
    db: Database,
    currency: str,
    amount: int,
    lines: list[tuple[int, int, str]] | None,
    fee: tuple[str, int, int | None] | None,
    include_commission: bool,
    refund_commission: bool,
    exchange: tuple[str, str] | None,
    first: tuple[Any, ...],
    operations: list[tuple[Any, ...]],
) -> None:
    merchant = merchants.create()
    api = Api(pay_client, merchant)
    options = {"include_commission": include_commission, "refund_commission": refund_commission}
    assert api.patch("/v1/settings/payment_options", json=options).status_code == 200
    if fee is not None:
        percent, fixed, maximum = fee
        schedule = {"currency": currency, "percent": percent, "fixed": fixed, "maximum": maximum}
        for method in ("card", "bank_transfer", "invoice"):
            response = api.client.put(f"/v1/fee_schedules/{method}", json=schedule,
                                      headers=api._headers(None))  # fmt: skip
            assert response.status_code == 200, response.text
    payer_currency = None
    if exchange is not None and exchange[0] != currency:
        payer_currency, rate = exchange
        body = {"base": currency, "quote": payer_currency, "rate": rate}
        assert api.post("/v1/exchange_rates", json=body).status_code == 201
    if lines is None:
        created = api.create_invoice(amount=amount, currency=currency)
    else:
        items = [
            {"description": f"item {n}", "quantity": q, "unit_amount": unit, "tax_rate": tax}
            for n, (q, unit, tax) in enumerate(lines)
        ]
        response = api.post("/v1/invoices", json={"currency": currency, "line_items": items})
        assert response.status_code == 201, response.text
        created = response.json()
    run = Run(api, db, created["id"], currency, payer_currency=payer_currency)
    run.invoiced = created["amount"]
    plain = fee is None and payer_currency is None
    _check(run, merchant.id, plain)
    for op in [first, *operations]:
        _apply(run, op)
        _check(run, merchant.id, plain)
