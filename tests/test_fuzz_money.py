"""The money endpoints never answer 500 either, and a refused request stores nothing.

Random JSON bodies (hypothesis) against refunds, cancellations and deliveries of a paid and of
an authorised invoice, pay, fee schedules and exchange rates; `_check` asserts a 4xx problem
document with a code and an unchanged merchant (invoice, ledger, events, ...) on refusal.
"""

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from quittance.db.uow import Database
from tests.factories import Api
from tests.payment.conftest import papi, pay_client, pay_settings, sandbox_path
from tests.payment.helpers import INVOICE_METHOD, SUCCEEDS, card, paid
from tests.test_fuzz import SETTINGS, _check, json_values

__all__ = ["papi", "pay_client", "pay_settings", "sandbox_path"]

items = st.lists(
    st.fixed_dictionaries({}, optional={"line_item": json_values, "quantity": json_values}),
    max_size=3,
)
amounts = st.integers(min_value=-(10**20), max_value=10**20) | json_values
money_bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            "amount": amounts,
            "line_items": items | json_values,
            "reason": json_values,
            "refund_commission": json_values,
        },
    )
    | json_values
)


def _paid_invoice(api: Api) -> str:
    created = api.create_invoice(
        currency="EUR",
        amount=None,
        line_items=[{"description": "Tea", "quantity": 3, "unit_amount": 700, "tax_rate": "7"}],
    )
    assert paid(api, created["id"], card(SUCCEEDS))["status"] == "succeeded"
    return str(created["id"])


def _authorised_invoice(api: Api) -> str:
    created = api.create_invoice(currency="EUR", amount=5000)
    assert paid(api, created["id"], INVOICE_METHOD)["status"] == "authorized"
    return str(created["id"])


@SETTINGS
@given(body=money_bodies, path=st.sampled_from(["refunds", "cancellations", "deliveries"]))
def test_refunds_cancellations_deliveries_never_fail_with_500(
    papi: Api, db: Database, body: Any, path: str
) -> None:
    for invoice_id in (_paid_invoice(papi), _authorised_invoice(papi)):
        _check(papi, db, "POST", f"/v1/invoices/{invoice_id}/{path}", body)


@SETTINGS
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "payment_method": json_values
            | st.sampled_from([card(SUCCEEDS), INVOICE_METHOD, {"type": "bank_transfer"}]),
            "payment_currency": st.sampled_from(["USD", "usd", "XXX", ""]) | json_values,
        },
    )
    | json_values
)
def test_pay_never_fails_with_500(papi: Api, db: Database, body: Any) -> None:
    invoice = papi.create_invoice(currency="EUR", amount=5000)
    _check(papi, db, "POST", f"/v1/invoices/{invoice['id']}/pay", body)


@SETTINGS
@given(
    method=st.sampled_from(["card", "invoice", "bank_transfer", "NOPE", "%00"]),
    body=st.fixed_dictionaries(
        {},
        optional={
            "currency": st.sampled_from(["EUR", "JPY", "KWD", "XXX"]) | json_values,
            "percent": st.sampled_from(["2.9", "100.1", "-1", "1e3", "0.00001"]) | json_values,
            "fixed": amounts,
            "minimum": amounts,
            "maximum": amounts,
        },
    )
    | json_values,
)
def test_fee_schedules_never_fail_with_500(papi: Api, db: Database, method: str, body: Any) -> None:
    _check(papi, db, "PUT", f"/v1/fee_schedules/{method}", body)


@SETTINGS
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "base": st.sampled_from(["EUR", "JPY", "XXX"]) | json_values,
            "quote": st.sampled_from(["USD", "EUR", "KWD"]) | json_values,
            "rate": st.sampled_from(["1.0842", "0", "-1", "NaN", "1e400"]) | json_values,
        },
    )
    | json_values
)
def test_exchange_rates_never_fail_with_500(papi: Api, db: Database, body: Any) -> None:
    _check(papi, db, "POST", "/v1/exchange_rates", body)
