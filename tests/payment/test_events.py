"""Events for payments, and for every invoice status change they cause (DESIGN §3, §10).

Status events are `(type, previous_status, status, trigger)` and each is a row of
GET /v1/invoice_statuses; the others are named by type."""

from typing import Any

from quittance.config import Settings
from quittance.db.uow import Database
from tests.factories import Api
from tests.payment.helpers import (
    BANK_TRANSFER,
    CHALLENGE,
    DECLINED,
    INVOICE_METHOD,
    PENDING,
    POLL_INTERVAL,
    SUCCEEDS,
    assert_history,
    card,
    paid,
    run_worker,
    set_routes,
)

CREATED = ("invoice.created", None, "created", "create")
PROCESSING = ("invoice.processing", "created", "processing", "attempt_start")
PROCESSED = ("invoice.processed", "processing", "processed", "payment_succeeded")
PENDING_INVOICE = ("invoice.process_pending", "processing", "process_pending", "payment_pending")
FAILED_BACK = ("invoice.payment_failed", "processing", "created", "payment_failed")


def _by_type(history: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in history if event["type"] == kind]


def test_successful_card(papi: Api) -> None:
    created = papi.create_invoice(amount=1999)
    body = paid(papi, created["id"], card(SUCCEEDS))
    history = assert_history(papi, created["id"], [
        CREATED, PROCESSING, "payment.created", PROCESSED, "payment.succeeded",
    ])  # fmt: skip
    (succeeded,) = _by_type(history, "payment.succeeded")
    assert succeeded["data"]["object"]["id"] == body["id"]
    assert succeeded["data"]["object"]["amount_received"] == 1999
    assert succeeded["data"]["invoice"]["amount_paid"] == 1999
    (created_event,) = _by_type(history, "payment.created")
    assert created_event["data"]["object"]["id"] == body["id"]
    assert created_event["data"]["object"]["amount_received"] == 0
    # The raw provider answer is not exposed by default.
    assert "provider_response" not in succeeded["data"]["object"]
    # The same events are in the global list.
    listed = papi.get("/v1/events", params={"invoice_id": created["id"]}).json()["data"]
    assert [e["id"] for e in reversed(listed)] == [e["id"] for e in history]


def test_declined_then_exhausted(papi: Api) -> None:
    created = papi.create_invoice(attempts_limit=2)
    paid(papi, created["id"], card(DECLINED))
    paid(papi, created["id"], card(DECLINED))
    history = assert_history(papi, created["id"], [
        CREATED,
        PROCESSING, "payment.created", FAILED_BACK, "payment.failed",
        PROCESSING, "payment.created",
        ("invoice.process_failed", "processing", "process_failed", "attempts_exhausted"),
        "payment.failed",
    ])  # fmt: skip
    for event in _by_type(history, "payment.failed"):
        assert event["data"]["object"]["error"]["code"] == "card_declined"
    (back,) = _by_type(history, "invoice.payment_failed")
    assert back["data"]["object"]["last_payment_error"]["code"] == "card_declined"


def test_challenge_passed(papi: Api) -> None:
    created = papi.create_invoice()
    body = paid(papi, created["id"], card(CHALLENGE))
    assert papi.post(f"/v1/test_helpers/payments/{body['id']}/settle").status_code == 200
    history = assert_history(papi, created["id"], [
        CREATED, PROCESSING, "payment.created", "payment.requires_action",
        PROCESSED, "payment.succeeded",
    ])  # fmt: skip
    (action,) = _by_type(history, "payment.requires_action")
    assert action["data"]["object"]["next_action"]["type"] == "challenge"


def test_challenge_failed(papi: Api) -> None:
    created = papi.create_invoice()
    body = paid(papi, created["id"], card(CHALLENGE))
    assert papi.post(f"/v1/test_helpers/payments/{body['id']}/fail").status_code == 200
    history = assert_history(papi, created["id"], [
        CREATED, PROCESSING, "payment.created", "payment.requires_action",
        FAILED_BACK, "payment.failed",
    ])  # fmt: skip
    (failed,) = _by_type(history, "payment.failed")
    assert failed["data"]["object"]["error"]["code"] == "authentication_failed"


def test_pending_card_settled_by_the_worker(
    papi: Api, db: Database, pay_settings: Settings
) -> None:
    set_routes(db, papi.merchant.id, "card", {"settle_after_ms": 10})
    created = papi.create_invoice()
    paid(papi, created["id"], card(PENDING))
    run_worker(db, pay_settings, after=POLL_INTERVAL + 0.1)
    assert_history(papi, created["id"], [
        CREATED, PROCESSING, "payment.created", PENDING_INVOICE, "payment.pending",
        ("invoice.processed", "process_pending", "processed", "payment_succeeded"),
        "payment.succeeded",
    ])  # fmt: skip


def test_pending_card_failed_by_the_helper(papi: Api) -> None:
    created = papi.create_invoice()
    body = paid(papi, created["id"], card(PENDING))
    assert papi.post(f"/v1/test_helpers/payments/{body['id']}/fail").status_code == 200
    assert_history(papi, created["id"], [
        CREATED, PROCESSING, "payment.created", PENDING_INVOICE, "payment.pending",
        ("invoice.payment_failed", "process_pending", "created", "payment_failed"),
        "payment.failed",
    ])  # fmt: skip


def test_bank_transfer_in_parts_and_overpaid(papi: Api) -> None:
    created = papi.create_invoice(amount=10000)
    body = paid(papi, created["id"], BANK_TRANSFER)
    for amount in (4000, 6000, 500):
        response = papi.post(
            "/v1/test_helpers/bank_transfers", json={"payment": body["id"], "amount": amount}
        )
        assert response.status_code == 200, response.text
    history = assert_history(papi, created["id"], [
        CREATED, PROCESSING, "payment.created", PENDING_INVOICE, "payment.pending",
        ("invoice.partially_processed", "process_pending", "partially_processed",
         "payment_partial"),
        "payment.updated",
        ("invoice.processed", "partially_processed", "processed", "payment_succeeded"),
        "payment.succeeded",
        "invoice.payment_received",
        "payment.updated",
    ])  # fmt: skip
    (pending,) = _by_type(history, "payment.pending")
    assert pending["data"]["object"]["next_action"]["type"] == "bank_transfer"
    (received,) = _by_type(history, "invoice.payment_received")
    assert (received["data"]["amount"], received["data"]["payment"]) == (500, body["id"])
    assert received["data"]["object"]["amount_paid"] == 10500
    assert received["data"]["object"]["overpaid"] is True
    updates = _by_type(history, "payment.updated")
    assert [e["data"]["object"]["amount_received"] for e in updates] == [4000, 10500]


def test_invoice_method(papi: Api) -> None:
    created = papi.create_invoice()
    paid(papi, created["id"], INVOICE_METHOD)
    history = assert_history(papi, created["id"], [
        CREATED, PROCESSING, "payment.created", PROCESSED, "payment.authorized",
    ])  # fmt: skip
    (authorized,) = _by_type(history, "payment.authorized")
    assert authorized["data"]["object"]["captured"] is False


def test_provider_response_is_exposed_when_the_merchant_asks(papi: Api) -> None:
    response = papi.patch(
        "/v1/settings/payment_options", json={"expose_internal_callback_data": True}
    )
    assert response.status_code == 200, response.text
    created = papi.create_invoice()
    paid(papi, created["id"], card(SUCCEEDS))
    history = assert_history(papi, created["id"], [
        CREATED, PROCESSING, "payment.created", PROCESSED, "payment.succeeded",
    ])  # fmt: skip
    (succeeded,) = _by_type(history, "payment.succeeded")
    raw = succeeded["data"]["object"]["provider_response"]
    assert raw["provider"] == "sandbox" and raw["state"] == "succeeded"
    assert raw["amount_captured"] == 1999
