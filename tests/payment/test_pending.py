"""Pending payments and challenges: settled by the worker asking the provider, or by the test
helpers, which exist in test mode only (DESIGN §4, §5)."""

import time
from datetime import timedelta

from sqlalchemy import update

from quittance import clock
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.models import Payment
from quittance.providers.sandbox import SandboxGateway
from tests.factories import Api, MerchantFactory
from tests.payment.helpers import (
    BANK_TRANSFER,
    CHALLENGE,
    PENDING,
    POLL_INTERVAL,
    SUCCEEDS,
    card,
    invoice,
    paid,
    payment,
    payments_of,
    problem,
    run_worker,
    set_routes,
    state,
)


def test_worker_settles_a_pending_card(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway
) -> None:
    set_routes(db, papi.merchant.id, "card", {"settle_after_ms": 50})
    created = papi.create_invoice(amount=3100)
    started = time.monotonic()
    body = paid(papi, created["id"], card(PENDING))
    assert (body["status"], body["invoice"]["status"]) == ("pending", "process_pending")
    (row,) = payments_of(db, created["id"])
    assert row.next_check_at is not None
    # Not asked before the poll interval has passed.
    run_worker(db, pay_settings)
    if time.monotonic() - started < POLL_INTERVAL:  # (a very slow machine proves nothing)
        assert payment(papi, body["id"])["status"] == "pending"
        assert invoice(papi, created["id"])["status"] == "process_pending"
    run_worker(db, pay_settings, after=POLL_INTERVAL + 0.1)
    settled = payment(papi, body["id"])
    assert (settled["status"], settled["amount_received"]) == ("succeeded", 3100)
    inv = invoice(papi, created["id"])
    assert (inv["status"], inv["amount_paid"], inv["amount_due"]) == ("processed", 3100, 0)
    assert settled["invoice"] == inv
    charge = gateway.charges(body["id"])
    assert charge is not None and charge["amount_captured"] == 3100
    (row,) = payments_of(db, created["id"])
    assert row.next_check_at is None and row.lease_until is None
    # Nothing more happens on the next rounds.
    run_worker(db, pay_settings, after=POLL_INTERVAL + 0.1)
    assert invoice(papi, created["id"]) == inv


def test_worker_keeps_asking_while_the_provider_has_no_answer(
    papi: Api, db: Database, pay_settings: Settings
) -> None:
    set_routes(db, papi.merchant.id, "card", {"settle_after_ms": 60_000})
    created = papi.create_invoice()
    body = paid(papi, created["id"], card(PENDING))
    (before,) = payments_of(db, created["id"])
    run_worker(db, pay_settings, after=POLL_INTERVAL + 0.1)
    (after,) = payments_of(db, created["id"])
    assert after.status == "pending" and after.lease_until is None
    assert after.next_check_at is not None and before.next_check_at is not None
    assert after.next_check_at > before.next_check_at
    assert invoice(papi, created["id"])["status"] == "process_pending"
    settled = papi.post(f"/v1/test_helpers/payments/{body['id']}/settle")
    assert settled.status_code == 200, settled.text
    assert settled.json()["invoice"]["status"] == "processed"


def test_settle_helper_passes_a_pending_card(papi: Api, gateway: SandboxGateway) -> None:
    created = papi.create_invoice(amount=2000)
    body = paid(papi, created["id"], card(PENDING))
    response = papi.post(f"/v1/test_helpers/payments/{body['id']}/settle")
    assert response.status_code == 200, response.text
    settled = response.json()
    assert (settled["status"], settled["amount_received"]) == ("succeeded", 2000)
    assert (settled["invoice"]["status"], settled["invoice"]["amount_paid"]) == (
        "processed", 2000,
    )  # fmt: skip
    charge = gateway.charges(body["id"])
    assert charge is not None and charge["amount_captured"] == 2000
    # Settling twice is refused by the sandbox and changes nothing.
    again = papi.post(f"/v1/test_helpers/payments/{body['id']}/settle")
    problem(again, 409, "payment_not_pending")
    assert invoice(papi, created["id"])["amount_paid"] == 2000


def test_fail_helper_fails_a_pending_card(papi: Api, gateway: SandboxGateway) -> None:
    created = papi.create_invoice(amount=2000)
    body = paid(papi, created["id"], card(PENDING))
    response = papi.post(f"/v1/test_helpers/payments/{body['id']}/fail")
    assert response.status_code == 200, response.text
    failed = response.json()
    assert failed["status"] == "failed"
    assert failed["error"] == {
        "code": "payment_failed", "message": "The provider reported the payment as failed.",
    }  # fmt: skip
    inv = failed["invoice"]
    assert (inv["status"], inv["amount_paid"], inv["attempts_count"]) == ("created", 0, 1)
    assert inv["last_payment_error"]["code"] == "payment_failed"
    charge = gateway.charges(body["id"])
    assert charge is not None and charge["amount_captured"] == 0


def test_challenge_passed_with_settle(papi: Api, gateway: SandboxGateway) -> None:
    created = papi.create_invoice(amount=4200)
    body = paid(papi, created["id"], card(CHALLENGE))
    assert (body["status"], body["invoice"]["status"]) == ("requires_action", "processing")
    response = papi.post(f"/v1/test_helpers/payments/{body['id']}/settle")
    assert response.status_code == 200, response.text
    settled = response.json()
    assert (settled["status"], settled["amount_received"], settled["next_action"]) == (
        "succeeded", 4200, None,
    )  # fmt: skip
    assert (settled["invoice"]["status"], settled["invoice"]["amount_paid"]) == (
        "processed", 4200,
    )  # fmt: skip
    charge = gateway.charges(body["id"])
    assert charge is not None and charge["amount_captured"] == 4200


def test_challenge_failed_makes_the_invoice_payable_again(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway
) -> None:
    created = papi.create_invoice(amount=4200)
    body = paid(papi, created["id"], card(CHALLENGE))
    # While the payer is challenged the invoice cannot be paid by another attempt.
    problem(papi.post(f"/v1/invoices/{created['id']}/pay", json={
        "payment_method": card(SUCCEEDS)}), 409, "invoice_not_payable")  # fmt: skip
    # The worker asking the provider meanwhile changes nothing.
    run_worker(db, pay_settings, after=POLL_INTERVAL + 0.1)
    assert payment(papi, body["id"])["status"] == "requires_action"
    response = papi.post(f"/v1/test_helpers/payments/{body['id']}/fail")
    assert response.status_code == 200, response.text
    failed = response.json()
    assert failed["status"] == "failed"
    assert failed["error"] == {
        "code": "authentication_failed", "message": "The payer did not pass the challenge.",
    }  # fmt: skip
    inv = failed["invoice"]
    assert (inv["status"], inv["amount_paid"], inv["attempts_count"]) == ("created", 0, 1)
    assert inv["last_payment_error"] == {
        "code": "authentication_failed", "message": "The payer did not pass the challenge.",
        "payment": body["id"],
    }  # fmt: skip
    retry = paid(papi, created["id"], card(SUCCEEDS))
    assert (retry["attempt"], retry["status"]) == (2, "succeeded")
    assert (retry["invoice"]["status"], retry["invoice"]["amount_paid"]) == ("processed", 4200)
    charge = gateway.charges(body["id"])
    assert charge is not None and charge["amount_captured"] == 0


def test_helpers_are_404_with_a_live_key(papi: Api, db: Database) -> None:
    created = papi.create_invoice()
    body = paid(papi, created["id"], card(PENDING))
    transfer_invoice = papi.create_invoice()
    transfer = paid(papi, transfer_invoice["id"], BANK_TRANSFER)
    live = papi.as_live()
    before = state(db, papi.merchant.id)
    for path, json in (
        (f"/v1/test_helpers/payments/{body['id']}/settle", None),
        (f"/v1/test_helpers/payments/{body['id']}/fail", None),
        ("/v1/test_helpers/bank_transfers", {"payment": transfer["id"], "amount": 100}),
    ):
        problem(live.post(path, json=json), 404, "not_found")
    assert state(db, papi.merchant.id) == before
    assert payment(papi, body["id"])["status"] == "pending"
    assert payment(papi, transfer["id"])["amount_received"] == 0


def test_helpers_do_not_reach_another_merchants_payment(
    papi: Api, merchants: MerchantFactory, db: Database
) -> None:
    created = papi.create_invoice()
    body = paid(papi, created["id"], card(PENDING))
    other = Api(papi.client, merchants.create())
    before = state(db, papi.merchant.id)
    for path in ("settle", "fail"):
        problem(
            other.post(f"/v1/test_helpers/payments/{body['id']}/{path}"), 404, "payment_not_found"
        )
    problem(other.get(f"/v1/payments/{body['id']}"), 404, "payment_not_found")
    assert state(db, papi.merchant.id) == before


def test_settle_helper_refuses_a_bank_transfer(papi: Api) -> None:
    created = papi.create_invoice()
    body = paid(papi, created["id"], BANK_TRANSFER)
    problem(papi.post(f"/v1/test_helpers/payments/{body['id']}/settle"), 409,
            "payment_not_pending")  # fmt: skip
    assert invoice(papi, created["id"])["status"] == "process_pending"


def test_worker_completes_bank_transfers_received_meanwhile(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway
) -> None:
    """Money the provider received without a callback is found by the worker's question."""
    created = papi.create_invoice(amount=5000)
    body = paid(papi, created["id"], BANK_TRANSFER)
    gateway.receive_transfer(body["id"], 5000)  # the provider knows; Quittance does not yet
    with db.write() as session:
        session.execute(
            update(Payment)
            .where(Payment.id == body["id"])
            .values(next_check_at=clock.now() - timedelta(seconds=1))
        )
    run_worker(db, pay_settings)
    inv = invoice(papi, created["id"])
    assert (inv["status"], inv["amount_paid"]) == ("processed", 5000)
    assert payment(papi, body["id"])["status"] == "succeeded"


def test_failing_a_pending_payment_at_the_limit_is_process_failed(papi: Api) -> None:
    created = papi.create_invoice(attempts_limit=1)
    body = paid(papi, created["id"], card(PENDING))
    response = papi.post(f"/v1/test_helpers/payments/{body['id']}/fail")
    assert response.status_code == 200, response.text
    inv = response.json()["invoice"]
    assert (inv["status"], inv["attempts_count"]) == ("process_failed", 1)
    assert inv["last_payment_error"]["code"] == "payment_failed"
