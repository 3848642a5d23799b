"""The sandbox provider with every outcome (DESIGN §9): the test cards, bank transfers of any
amount, the invoice method, and currencies with 0 and 3 decimals."""

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from quittance.db.uow import Database
from quittance.providers.base import CardDetails, Outcome, PaymentRequest, ProviderError
from quittance.providers.sandbox import _SCHEMA, SandboxError, SandboxGateway
from tests.factories import Api
from tests.payment.helpers import (
    BANK_TRANSFER,
    CHALLENGE,
    DECLINED,
    INSUFFICIENT,
    INVOICE_METHOD,
    PENDING,
    PROVIDER_ERROR,
    SUCCEEDS,
    card,
    invoice,
    paid,
    payments_of,
    problem,
)


def _transfer(api: Api, payment_id: str, amount: int) -> dict[str, Any]:
    response = api.post(
        "/v1/test_helpers/bank_transfers", json={"payment": payment_id, "amount": amount}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize(
    ("number", "brand"),
    [(SUCCEEDS, "visa"), ("5555555555554444", "mastercard"), ("378282246310005", "amex")],
)
def test_succeeding_cards(
    papi: Api, gateway: SandboxGateway, db: Database, number: str, brand: str
) -> None:
    created = papi.create_invoice(amount=1999)
    body = paid(papi, created["id"], card(number))
    assert (body["status"], body["amount_received"], body["captured"]) == ("succeeded", 1999, True)
    assert (body["invoice"]["status"], body["invoice"]["amount_paid"]) == ("processed", 1999)
    assert body["invoice"]["amount_due"] == 0
    charge = gateway.charges(body["id"])
    assert charge is not None
    assert (charge["state"], charge["amount_captured"]) == ("succeeded", 1999)
    response = papi.get(f"/v1/payments/{body['id']}")
    assert response.json()["payment_method"] == body["payment_method"]


@pytest.mark.parametrize(
    ("number", "code", "message"),
    [
        (DECLINED, "card_declined", "The card was declined."),
        (INSUFFICIENT, "insufficient_funds", "The card has insufficient funds."),
    ],
)
def test_declining_cards(
    papi: Api, gateway: SandboxGateway, number: str, code: str, message: str
) -> None:
    created = papi.create_invoice(amount=1999)
    body = paid(papi, created["id"], card(number))
    assert body["status"] == "failed"
    assert body["error"] == {"code": code, "message": message}
    assert (body["amount_received"], body["next_action"]) == (0, None)
    assert [r["outcome"] for r in body["routing"]] == ["declined"]
    inv = body["invoice"]
    assert (inv["status"], inv["amount_paid"], inv["amount_due"]) == ("created", 0, 1999)
    assert inv["attempts_count"] == 1
    assert inv["last_payment_error"] == {"code": code, "message": message, "payment": body["id"]}
    charge = gateway.charges(body["id"])
    assert charge is not None
    assert (charge["state"], charge["amount_captured"]) == ("declined", 0)


def test_challenge_card_requires_action(papi: Api, gateway: SandboxGateway) -> None:
    created = papi.create_invoice(amount=1999)
    body = paid(papi, created["id"], card(CHALLENGE))
    assert body["status"] == "requires_action"
    assert body["amount_received"] == 0
    assert body["next_action"] == {"type": "challenge", "reference": body["provider_reference"]}
    assert (body["invoice"]["status"], body["invoice"]["amount_paid"]) == ("processing", 0)
    charge = gateway.charges(body["id"])
    assert charge is not None
    assert (charge["state"], charge["amount_captured"]) == ("requires_action", 0)


def test_pending_card_is_process_pending(papi: Api, gateway: SandboxGateway) -> None:
    created = papi.create_invoice(amount=1999)
    body = paid(papi, created["id"], card(PENDING))
    assert (body["status"], body["amount_received"], body["error"]) == ("pending", 0, None)
    assert (body["invoice"]["status"], body["invoice"]["amount_paid"]) == ("process_pending", 0)
    charge = gateway.charges(body["id"])
    assert charge is not None
    assert (charge["state"], charge["amount_captured"]) == ("pending", 0)


def test_provider_error_card_fails_without_a_charge(
    papi: Api, gateway: SandboxGateway, db: Database
) -> None:
    created = papi.create_invoice(amount=1999)
    body = paid(papi, created["id"], card(PROVIDER_ERROR))
    assert body["status"] == "failed"
    assert body["error"]["code"] == "provider_error"
    assert [(r["outcome"], r["error"]) for r in body["routing"]] == [("error", "provider_error")]
    inv = body["invoice"]
    assert (inv["status"], inv["amount_paid"], inv["attempts_count"]) == ("created", 0, 1)
    assert inv["last_payment_error"]["code"] == "provider_error"
    assert gateway.charges(body["id"]) is None


def test_bank_transfer_pending_until_a_transfer_arrives(papi: Api, gateway: SandboxGateway) -> None:
    created = papi.create_invoice(amount=10000)
    body = paid(papi, created["id"], BANK_TRANSFER)
    assert (body["status"], body["method"], body["amount_received"]) == (
        "pending", "bank_transfer", 0,
    )  # fmt: skip
    action = body["next_action"]
    assert action["type"] == "bank_transfer"
    assert action["reference"] == body["provider_reference"]
    assert action["amount_remaining"] == 10000
    assert action["iban"]
    assert body["invoice"]["status"] == "process_pending"
    charge = gateway.charges(body["id"])
    assert charge is not None
    assert (charge["state"], charge["amount"], charge["amount_captured"]) == (
        "awaiting_transfer", 10000, 0,
    )  # fmt: skip


def test_bank_transfer_less_then_exact(papi: Api, gateway: SandboxGateway) -> None:
    created = papi.create_invoice(amount=10000)
    payment_id = paid(papi, created["id"], BANK_TRANSFER)["id"]
    first = _transfer(papi, payment_id, 2500)
    assert (first["status"], first["amount_received"]) == ("pending", 2500)
    assert first["next_action"]["amount_remaining"] == 7500
    inv = first["invoice"]
    assert (inv["status"], inv["amount_paid"], inv["amount_due"], inv["overpaid"]) == (
        "partially_processed", 2500, 7500, False,
    )  # fmt: skip
    second = _transfer(papi, payment_id, 7500)
    assert (second["status"], second["amount_received"], second["next_action"]) == (
        "succeeded", 10000, None,
    )  # fmt: skip
    inv = second["invoice"]
    assert (inv["status"], inv["amount_paid"], inv["amount_due"], inv["overpaid"]) == (
        "processed", 10000, 0, False,
    )  # fmt: skip
    assert invoice(papi, created["id"]) == inv
    charge = gateway.charges(payment_id)
    assert charge is not None and charge["amount_captured"] == 10000


def test_bank_transfer_exact(papi: Api, gateway: SandboxGateway) -> None:
    created = papi.create_invoice(amount=10000)
    payment_id = paid(papi, created["id"], BANK_TRANSFER)["id"]
    body = _transfer(papi, payment_id, 10000)
    assert (body["status"], body["amount_received"]) == ("succeeded", 10000)
    inv = body["invoice"]
    assert (inv["status"], inv["amount_paid"], inv["amount_due"], inv["overpaid"]) == (
        "processed", 10000, 0, False,
    )  # fmt: skip


def test_bank_transfer_more_is_overpaid(papi: Api, gateway: SandboxGateway) -> None:
    created = papi.create_invoice(amount=10000)
    payment_id = paid(papi, created["id"], BANK_TRANSFER)["id"]
    body = _transfer(papi, payment_id, 12345)
    assert (body["status"], body["amount_received"]) == ("succeeded", 12345)
    inv = body["invoice"]
    assert (inv["status"], inv["amount_paid"], inv["amount_due"], inv["overpaid"]) == (
        "processed", 12345, -2345, True,
    )  # fmt: skip
    # A further transfer after completion is recorded too, never dropped.
    again = _transfer(papi, payment_id, 55)
    inv = again["invoice"]
    assert (inv["status"], inv["amount_paid"], inv["amount_due"], inv["overpaid"]) == (
        "processed", 12400, -2400, True,
    )  # fmt: skip
    charge = gateway.charges(payment_id)
    assert charge is not None and charge["amount_captured"] == 12400


def test_bank_transfer_partial_then_over(papi: Api) -> None:
    created = papi.create_invoice(amount=10000)
    payment_id = paid(papi, created["id"], BANK_TRANSFER)["id"]
    _transfer(papi, payment_id, 4000)
    body = _transfer(papi, payment_id, 7000)
    inv = body["invoice"]
    assert (body["status"], inv["status"], inv["amount_paid"], inv["amount_due"]) == (
        "succeeded", "processed", 11000, -1000,
    )  # fmt: skip
    assert inv["overpaid"] is True


def test_transfer_helper_refuses_a_card_payment(papi: Api, db: Database) -> None:
    created = papi.create_invoice()
    payment_id = paid(papi, created["id"], card(PENDING))["id"]
    response = papi.post(
        "/v1/test_helpers/bank_transfers", json={"payment": payment_id, "amount": 100}
    )
    problem(response, 409, "payment_not_bank_transfer")
    assert invoice(papi, created["id"])["amount_paid"] == 0


def test_transfer_helper_validates_its_body(papi: Api) -> None:
    for body in (
        {"payment": "pay_01JD3Z7Q8W0000000000000000", "amount": 0},
        {"payment": "pay_01JD3Z7Q8W0000000000000000", "amount": -5},
        {"payment": "inv_01JD3Z7Q8W0000000000000000", "amount": 5},
        {"amount": 5},
    ):
        response = papi.post("/v1/test_helpers/bank_transfers", json=body)
        assert response.status_code == 422, (body, response.text)
    unknown = {"payment": "pay_01JD3Z7Q8W0000000000000000", "amount": 5}
    problem(papi.post("/v1/test_helpers/bank_transfers", json=unknown), 404, "payment_not_found")


def test_invoice_method_is_authorised_not_captured(
    papi: Api, gateway: SandboxGateway, db: Database
) -> None:
    created = papi.create_invoice(amount=8900)
    body = paid(papi, created["id"], INVOICE_METHOD)
    assert (body["status"], body["method"]) == ("authorized", "invoice")
    assert (body["amount_authorized"], body["amount_received"], body["captured"]) == (
        8900, 0, False,
    )  # fmt: skip
    inv = body["invoice"]
    assert (inv["status"], inv["amount_paid"]) == ("processed", 0)
    charge = gateway.charges(body["id"])
    assert charge is not None
    assert (charge["state"], charge["amount"], charge["amount_captured"]) == (
        "authorized", 8900, 0,
    )  # fmt: skip
    (row,) = payments_of(db, created["id"])
    assert row.status == "authorized" and row.next_check_at is None


@pytest.mark.parametrize(
    ("currency", "amount"), [("JPY", 1999), ("JPY", 1), ("KWD", 12345), ("KWD", 1)]
)
def test_zero_and_three_decimal_currencies(
    papi: Api, gateway: SandboxGateway, currency: str, amount: int
) -> None:
    created = papi.create_invoice(amount=amount, currency=currency)
    body = paid(papi, created["id"], card(SUCCEEDS))
    assert (body["amount"], body["currency"], body["amount_received"]) == (
        amount, currency, amount,
    )  # fmt: skip
    assert (body["invoice"]["amount_paid"], body["invoice"]["amount_due"]) == (amount, 0)
    charge = gateway.charges(body["id"])
    assert charge is not None
    assert (charge["amount"], charge["currency"], charge["amount_captured"]) == (
        amount, currency, amount,
    )  # fmt: skip


def test_kwd_bank_transfer_in_parts(papi: Api, gateway: SandboxGateway) -> None:
    created = papi.create_invoice(amount=10005, currency="KWD")  # 10.005 KWD
    payment_id = paid(papi, created["id"], BANK_TRANSFER)["id"]
    first = _transfer(papi, payment_id, 5)
    assert (first["invoice"]["status"], first["invoice"]["amount_due"]) == (
        "partially_processed", 10000,
    )  # fmt: skip
    second = _transfer(papi, payment_id, 10000)
    assert (second["invoice"]["status"], second["invoice"]["amount_paid"]) == (
        "processed", 10005,
    )  # fmt: skip
    charge = gateway.charges(payment_id)
    assert charge is not None
    assert (charge["currency"], charge["amount_captured"]) == ("KWD", 10005)


def test_jpy_invoice_method(papi: Api, gateway: SandboxGateway) -> None:
    created = papi.create_invoice(amount=5000, currency="JPY")
    body = paid(papi, created["id"], INVOICE_METHOD)
    assert (body["status"], body["amount_authorized"], body["currency"]) == (
        "authorized", 5000, "JPY",
    )  # fmt: skip
    charge = gateway.charges(body["id"])
    assert charge is not None and (charge["amount"], charge["currency"]) == (5000, "JPY")


def test_second_payment_pays_only_what_is_due(papi: Api, gateway: SandboxGateway) -> None:
    """A partly paid invoice is payable again, for the rest only."""
    created = papi.create_invoice(amount=10000)
    transfer_id = paid(papi, created["id"], BANK_TRANSFER)["id"]
    _transfer(papi, transfer_id, 3000)
    body = paid(papi, created["id"], card(SUCCEEDS))
    assert (body["attempt"], body["amount"], body["amount_received"]) == (2, 7000, 7000)
    inv = body["invoice"]
    assert (inv["status"], inv["amount_paid"], inv["amount_due"]) == ("processed", 10000, 0)
    charge = gateway.charges(body["id"])
    assert charge is not None and charge["amount_captured"] == 7000


def test_transfer_after_expiry_is_recorded_and_flagged_paid_late(
    papi: Api, gateway: SandboxGateway
) -> None:
    created = papi.create_invoice(amount=10000)
    payment_id = paid(papi, created["id"], BANK_TRANSFER)["id"]
    _transfer(papi, payment_id, 4000)
    expired = papi.post(f"/v1/test_helpers/invoices/{created['id']}/expire")
    assert expired.status_code == 200, expired.text
    assert expired.json()["status"] == "expired"
    body = _transfer(papi, payment_id, 6000)
    assert (body["status"], body["amount_received"]) == ("succeeded", 10000)
    inv = body["invoice"]
    assert (inv["status"], inv["amount_paid"], inv["amount_due"], inv["paid_late"]) == (
        "expired", 10000, 0, True,
    )  # fmt: skip
    history = papi.get(f"/v1/invoices/{created['id']}/events").json()["data"]
    (late,) = [e for e in history if e["type"] == "invoice.paid_late"]
    assert (late["data"]["amount"], late["data"]["payment"]) == (6000, payment_id)
    assert late["data"]["object"]["paid_late"] is True


# -- captures and releases by operation id --------------------------------------------------


def _authorised(gateway: SandboxGateway, payment_id: str, amount: int = 1000) -> None:
    """An authorisation of the invoice method, straight at the sandbox."""
    result = gateway.authorize(PaymentRequest(payment_id, amount, "EUR", "invoice", None, "Test"))
    assert result.outcome is Outcome.AUTHORIZED


def _operations(gateway: SandboxGateway) -> list[tuple[Any, ...]]:
    with sqlite3.connect(gateway.path) as connection:
        return [tuple(row) for row in connection.execute(
            "SELECT * FROM authorization_operations ORDER BY operation_id"
        )]  # fmt: skip


def test_a_capture_repeated_under_its_operation_id_captures_once(tmp_path: Path) -> None:
    gateway = SandboxGateway(tmp_path / "sandbox.db")
    _authorised(gateway, "pay_a")
    assert gateway.operation_status("dlv_1") is None
    first = gateway.capture("pay_a", 300, "dlv_1")
    assert (first.outcome, first.amount_received) == (Outcome.AUTHORIZED, 300)
    assert gateway.capture("pay_a", 300, "dlv_1") == first  # the first answer, nothing moved
    assert gateway.operation_status("dlv_1") == first
    charge = gateway.charges("pay_a")
    assert charge is not None and (charge["amount_captured"], charge["state"]) == (
        300, "authorized",
    )  # fmt: skip
    # A later capture does not change what the first one answered.
    second = gateway.capture("pay_a", 700, "dlv_2")
    assert (second.outcome, second.amount_received) == (Outcome.SUCCEEDED, 1000)
    assert gateway.capture("pay_a", 300, "dlv_1") == first
    assert gateway.operation_status("dlv_2") == second
    charge = gateway.charges("pay_a")
    assert charge is not None and charge["amount_captured"] == 1000
    assert [op[:4] for op in _operations(gateway)] == [
        ("dlv_1", "pay_a", "capture", 300), ("dlv_2", "pay_a", "capture", 700),
    ]  # fmt: skip


def test_a_release_repeated_under_its_operation_id_releases_once(tmp_path: Path) -> None:
    gateway = SandboxGateway(tmp_path / "sandbox.db")
    _authorised(gateway, "pay_a")
    partial = gateway.cancel("pay_a", 100, "can_1")
    assert partial.outcome is Outcome.AUTHORIZED
    assert gateway.cancel("pay_a", 100, "can_1") == partial
    rest = gateway.cancel("pay_a", 900, "can_2")
    assert rest.outcome is Outcome.DECLINED and rest.raw["state"] == "cancelled"
    # Asked again after the whole authorisation is gone: still the first answer, no refusal.
    assert gateway.cancel("pay_a", 100, "can_1") == partial
    assert gateway.cancel("pay_a", 900, "can_2") == rest
    assert gateway.operation_status("can_1") == partial
    charge = gateway.charges("pay_a")
    assert charge is not None and (charge["amount_cancelled"], charge["state"]) == (
        1000, "cancelled",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "payment_id", "amount"),
    [("capture", "pay_a", 301), ("capture", "pay_b", 300), ("cancel", "pay_a", 300)],
    ids=["other-amount", "other-payment", "other-kind"],
)
def test_an_operation_id_reused_for_another_request_is_refused(
    tmp_path: Path, kind: str, payment_id: str, amount: int
) -> None:
    gateway = SandboxGateway(tmp_path / "sandbox.db")
    _authorised(gateway, "pay_a")
    _authorised(gateway, "pay_b")
    first = gateway.capture("pay_a", 300, "dlv_1")
    before = (gateway.charges("pay_a"), gateway.charges("pay_b"), _operations(gateway))
    with pytest.raises(SandboxError) as refused:
        getattr(gateway, kind)(payment_id, amount, "dlv_1")
    assert refused.value.code == "operation_id_reused"
    assert "dlv_1" in refused.value.message and "new operation id" in refused.value.message
    assert (gateway.charges("pay_a"), gateway.charges("pay_b"), _operations(gateway)) == before
    assert gateway.operation_status("dlv_1") == first


def test_a_refused_capture_is_not_remembered(tmp_path: Path) -> None:
    gateway = SandboxGateway(tmp_path / "sandbox.db")
    _authorised(gateway, "pay_a")
    with pytest.raises(ProviderError) as refused:
        gateway.capture("pay_a", 1001, "dlv_1")
    assert refused.value.code == "invalid_request"
    assert gateway.operation_status("dlv_1") is None
    assert _operations(gateway) == []
    with pytest.raises(ProviderError):
        gateway.cancel("pay_missing", 1, "can_1")
    assert gateway.operation_status("can_1") is None


def test_a_sandbox_file_from_before_operation_ids_gets_the_new_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_schema = _SCHEMA.split("CREATE TABLE IF NOT EXISTS authorization_operations")[0]
    assert "charges" in old_schema and "authorization_operations" not in old_schema
    with sqlite3.connect(path) as connection:
        connection.executescript(old_schema)
        connection.execute(
            "INSERT INTO charges (payment_id, reference, method, amount, currency, state,"
            " created_at) VALUES ('pay_old', 'sbx_old', 'invoice', 500, 'EUR', 'authorized',"
            " '2024-01-01T00:00:00+00:00')"
        )
    gateway = SandboxGateway(path)
    assert gateway.operation_status("dlv_1") is None
    result = gateway.capture("pay_old", 500, "dlv_1")
    assert (result.outcome, result.amount_received, result.reference) == (
        Outcome.SUCCEEDED, 500, "sbx_old",
    )  # fmt: skip
    assert gateway.capture("pay_old", 500, "dlv_1") == result
    assert SandboxGateway(path).operation_status("dlv_1") == result


def _card_request(payment_id: str, token: str | None) -> PaymentRequest:
    return PaymentRequest(payment_id, 1000, "EUR", "card", token, "Shop")


def test_a_token_carries_its_cards_behaviour(tmp_path: Path) -> None:
    gateway = SandboxGateway(tmp_path / "sandbox.db")
    declined = gateway.tokenize_card(CardDetails("4000000000000002", 12, 2040, "123"))
    assert declined.token.startswith("tok_sandbox_decline_")
    assert gateway.authorize(_card_request("pay_a", declined.token)).outcome is Outcome.DECLINED
    succeeding = gateway.tokenize_card(CardDetails("4242424242424242", 12, 2040, "123"))
    assert gateway.authorize(_card_request("pay_b", succeeding.token)).outcome is Outcome.SUCCEEDED


@pytest.mark.parametrize(
    "token",
    ["tok_sandbox_unknown_0123456789abcdef01234567", "tok_sandbox_succeed_", "tok_other",
     "tok_sandbox_succeed", "succeed_0123"],
)  # fmt: skip
def test_a_token_the_sandbox_did_not_make_is_refused(tmp_path: Path, token: str) -> None:
    gateway = SandboxGateway(tmp_path / "sandbox.db")
    with pytest.raises(ProviderError) as refused:
        gateway.authorize(_card_request("pay_a", token))
    assert refused.value.code == "invalid_request"
    assert gateway.charges("pay_a") is None


def test_a_stored_token_from_an_older_sandbox_still_pays(tmp_path: Path) -> None:
    gateway = SandboxGateway(tmp_path / "sandbox.db")
    with gateway._store() as store:
        store.execute(
            "INSERT INTO tokens VALUES ('tok_sandbox_0123456789abcdef01234567', 'card', "
            "'insufficient_funds', 'visa', '9995', 12, 2040, '2026-01-01T00:00:00+00:00')"
        )
    answer = gateway.authorize(_card_request("pay_a", "tok_sandbox_0123456789abcdef01234567"))
    assert (answer.outcome, answer.error_code) == (Outcome.DECLINED, "insufficient_funds")
