"""Recovery points (DESIGN §12): the attempt is committed before the provider is called, with
its id as the provider's idempotency key; the answer is recorded in a second commit. A process
that dies in between is healed by the worker asking the provider: nothing charged twice,
nothing lost."""

import signal
import sqlite3
import threading
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from quittance.app import create_app
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.jobs.worker import wait_for
from quittance.models import Invoice, Payment
from quittance.payment import service
from quittance.payment.schemas import PayRequest
from quittance.providers.sandbox import SandboxGateway
from tests.conftest import LiveServer, start_server, stop_server
from tests.factories import Api, MerchantFactory
from tests.payment.conftest import server_env
from tests.payment.helpers import (
    BANK_TRANSFER,
    CHALLENGE,
    DECLINED,
    INVOICE_METHOD,
    PENDING,
    RECOVERY_AFTER,
    SUCCEEDS,
    caller,
    card,
    charge_count,
    events,
    invoice,
    kinds,
    paid,
    payment,
    payments_of,
    run_worker,
    set_routes,
)


def _start(db: Database, settings: Settings, merchant_id: str, invoice_id: str,
           method: Any) -> service.Attempt:  # fmt: skip
    """Recovery point 1 only: the attempt is recorded and committed."""
    with db.write() as session:
        return service.start_attempt(
            session, caller(merchant_id), invoice_id,
            PayRequest.model_validate({"payment_method": method}), settings,
        )  # fmt: skip


def _rows(db: Database, payment_id: str) -> tuple[Payment, Invoice]:
    with db.read() as session:
        row = session.get(Payment, payment_id)
        assert row is not None
        inv = session.get(Invoice, row.invoice_id)
        assert inv is not None
        return row, inv


def test_attempt_is_committed_before_the_provider_is_called(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway
) -> None:
    created = papi.create_invoice(amount=1999)
    attempt = _start(db, pay_settings, papi.merchant.id, created["id"], card(SUCCEEDS))
    row, inv = _rows(db, attempt.payment_id)
    assert (row.status, row.amount, row.attempt, row.amount_received) == ("pending", 1999, 1, 0)
    assert (inv.status, inv.amount_paid) == ("processing", 0)
    assert [r["outcome"] for r in row.routing] == ["planned"]
    assert gateway.charges(attempt.payment_id) is None
    # The provider is called with the payment's id as its idempotency key: asking twice
    # returns the first answer and charges once.
    first = service.call_provider(attempt, pay_settings)
    second = service.call_provider(attempt, pay_settings)
    assert first.result is not None and second.result is not None
    assert first.result.reference == second.result.reference
    charge = gateway.charges(attempt.payment_id)
    assert charge is not None and charge["amount_captured"] == 1999
    with db.write() as session:
        service.record_call(session, attempt, first, pay_settings)
    assert payment(papi, attempt.payment_id)["status"] == "succeeded"
    assert invoice(papi, created["id"])["amount_paid"] == 1999


def test_interrupted_before_the_provider_saw_it(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway, sandbox_path: str
) -> None:
    created = papi.create_invoice(amount=1999)
    charges = charge_count(sandbox_path)
    started = time.monotonic()
    attempt = _start(db, pay_settings, papi.merchant.id, created["id"], card(SUCCEEDS))
    # A worker round before the recovery delay leaves the attempt alone (it may be in flight).
    run_worker(db, pay_settings)
    row, inv = _rows(db, attempt.payment_id)
    if time.monotonic() - started < RECOVERY_AFTER:  # (a very slow machine proves nothing)
        assert (row.status, inv.status) == ("pending", "processing")
    run_worker(db, pay_settings, after=RECOVERY_AFTER + 0.1)
    failed = payment(papi, attempt.payment_id)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "attempt_interrupted"
    assert failed["amount_received"] == 0
    inv_doc = invoice(papi, created["id"])
    assert (inv_doc["status"], inv_doc["amount_paid"], inv_doc["attempts_count"]) == (
        "created", 0, 1,
    )  # fmt: skip
    assert inv_doc["last_payment_error"]["code"] == "attempt_interrupted"
    assert inv_doc["last_payment_error"]["payment"] == attempt.payment_id
    assert gateway.charges(attempt.payment_id) is None
    assert charge_count(sandbox_path) == charges
    assert kinds(events(papi, created["id"])) == [
        "invoice.created", "invoice.processing", "payment.created", "invoice.payment_failed",
        "payment.failed",
    ]  # fmt: skip
    # The invoice is payable again.
    retry = paid(papi, created["id"], card(SUCCEEDS))
    assert (retry["attempt"], retry["status"], retry["invoice"]["amount_paid"]) == (
        2, "succeeded", 1999,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("method", "payment_status", "invoice_status", "paid_amount"),
    [
        (card(SUCCEEDS), "succeeded", "processed", 1999),
        (card(DECLINED), "failed", "created", 0),
        (card(CHALLENGE), "requires_action", "processing", 0),
        (card(PENDING), "pending", "process_pending", 0),
        (BANK_TRANSFER, "pending", "process_pending", 0),
        (INVOICE_METHOD, "authorized", "processed", 0),
    ],
    ids=["succeeds", "declined", "challenge", "pending", "bank_transfer", "invoice"],
)
def test_answer_lost_after_the_provider_call_is_recovered(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway,
    method: Any, payment_status: str, invoice_status: str, paid_amount: int,
) -> None:  # fmt: skip
    set_routes(db, papi.merchant.id, method["type"], {"settle_after_ms": 60_000})
    created = papi.create_invoice(amount=1999)
    attempt = _start(db, pay_settings, papi.merchant.id, created["id"], method)
    service.call_provider(attempt, pay_settings)  # the process dies before recording it
    run_worker(db, pay_settings, after=RECOVERY_AFTER + 0.1)
    healed = payment(papi, attempt.payment_id)
    assert healed["status"] == payment_status
    assert healed["amount_received"] == paid_amount
    inv = invoice(papi, created["id"])
    assert (inv["status"], inv["amount_paid"]) == (invoice_status, paid_amount)
    charge = gateway.charges(attempt.payment_id)
    assert charge is not None
    assert charge["amount_captured"] == paid_amount
    assert healed["provider_reference"] == charge["reference"]
    if payment_status == "failed":
        assert healed["error"]["code"] == "card_declined"
        assert inv["attempts_count"] == 1


def test_late_answer_after_the_worker_healed_changes_nothing(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway
) -> None:
    created = papi.create_invoice(amount=1999)
    attempt = _start(db, pay_settings, papi.merchant.id, created["id"], card(SUCCEEDS))
    call = service.call_provider(attempt, pay_settings)
    run_worker(db, pay_settings, after=RECOVERY_AFTER + 0.1)
    history = events(papi, created["id"])
    with db.write() as session:  # the original request finally records its answer
        service.record_call(session, attempt, call, pay_settings)
    inv = invoice(papi, created["id"])
    assert (inv["status"], inv["amount_paid"]) == ("processed", 1999)
    assert events(papi, created["id"]) == history
    assert kinds(history).count("payment.succeeded") == 1


def test_slow_call_reaching_the_provider_after_the_worker_gave_up_loses_nothing(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway
) -> None:
    """The request was slow, not dead: the worker found nothing at the provider and failed the
    attempt, then the call arrived and the provider charged. That money must not vanish."""
    created = papi.create_invoice(amount=1999)
    attempt = _start(db, pay_settings, papi.merchant.id, created["id"], card(SUCCEEDS))
    run_worker(db, pay_settings, after=RECOVERY_AFTER + 0.1)
    assert payment(papi, attempt.payment_id)["error"]["code"] == "attempt_interrupted"
    call = service.call_provider(attempt, pay_settings)  # the slow request goes on
    with db.write() as session:
        service.record_call(session, attempt, call, pay_settings)
    charge = gateway.charges(attempt.payment_id)
    assert charge is not None
    inv = invoice(papi, created["id"])
    assert inv["amount_paid"] == charge["amount_captured"], (inv, charge)


def test_provider_timeout_after_the_charge_loses_nothing(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway
) -> None:
    """The provider charged the card but its answer came too late (a timeout): the money it
    holds must end up on the invoice, not be forgotten with a failed attempt."""
    impatient = pay_settings.model_copy(update={"provider_timeout": 0.2})
    set_routes(db, papi.merchant.id, "card", {"delay_ms": 400})
    created = papi.create_invoice(amount=1999)
    with TestClient(create_app(impatient, db), raise_server_exceptions=False) as client:
        body = paid(Api(client, papi.merchant), created["id"], card(SUCCEEDS))
    charge = gateway.charges(body["id"])
    assert charge is not None and charge["amount_captured"] == 1999  # the provider has it
    run_worker(db, impatient, after=RECOVERY_AFTER + 0.1)
    run_worker(db, impatient, after=0.4)
    inv = invoice(papi, created["id"])
    assert inv["amount_paid"] == charge["amount_captured"] == 1999, (body["status"], inv)
    assert inv["status"] == "processed"
    assert payment(papi, body["id"])["status"] == "succeeded"


def _charges_since(sandbox_path: str, payment_ids: list[str]) -> list[dict[str, Any]]:
    with sqlite3.connect(sandbox_path, timeout=30) as connection:
        connection.row_factory = sqlite3.Row
        marks = ",".join("?" * len(payment_ids))
        rows = connection.execute(
            f"SELECT * FROM charges WHERE payment_id IN ({marks})", payment_ids
        ).fetchall()
        return [dict(row) for row in rows]


@pytest.mark.slow
def test_server_killed_during_the_provider_call(
    database_url: str, sandbox_path: str, db: Database, merchants: MerchantFactory,
    pay_client: TestClient, gateway: SandboxGateway,
) -> None:  # fmt: skip
    merchant = merchants.create()
    api = Api(pay_client, merchant)
    set_routes(db, merchant.id, "card", {"delay_ms": 15000})
    created = api.create_invoice(amount=2999, currency="EUR")
    charges_before = charge_count(sandbox_path)
    first = start_server(database_url, **server_env(sandbox_path, worker=False))
    second: LiveServer | None = None
    outcome: dict[str, Any] = {}

    def send() -> None:
        headers = {"Authorization": f"Bearer {merchant.test_key}"}
        try:
            with httpx.Client(base_url=first.url, timeout=60) as client:
                outcome["response"] = client.post(
                    f"/v1/invoices/{created['id']}/pay",
                    json={"payment_method": card(SUCCEEDS)}, headers=headers,
                )  # fmt: skip
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=send)
    try:
        thread.start()
        # The provider has the charge; its answer has not come back yet.
        assert wait_for(lambda: bool(payments_of(db, created["id"])), 15)
        (row,) = payments_of(db, created["id"])
        assert wait_for(lambda: gateway.charges(row.id) is not None, 15)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
        thread.join(timeout=10)
        assert "response" not in outcome, "the answer must not have come back"
        # The first commit happened, the second did not.
        row, inv = _rows(db, row.id)
        assert (row.status, row.amount_received) == ("pending", 0)
        assert (inv.status, inv.amount_paid) == ("processing", 0)
        charge = gateway.charges(row.id)
        assert charge is not None
        assert (charge["state"], charge["amount_captured"]) == ("succeeded", 2999)
        # A new server with its worker asks the provider and finishes the attempt.
        started = time.monotonic()
        second = start_server(database_url, **server_env(sandbox_path, worker=True))
        assert wait_for(lambda: _rows(db, row.id)[0].status == "succeeded", 30), _rows(db, row.id)
        assert time.monotonic() - started < 30
    finally:
        if first.process.poll() is None:
            first.process.kill()
            first.process.wait()
        if second is not None:
            stop_server(second)
        thread.join(timeout=5)

    healed = payment(api, row.id)
    assert (healed["status"], healed["amount_received"]) == ("succeeded", 2999)
    inv_doc = invoice(api, created["id"])
    assert (inv_doc["status"], inv_doc["amount_paid"], inv_doc["amount_due"]) == (
        "processed", 2999, 0,
    )  # fmt: skip
    (charge,) = _charges_since(sandbox_path, [p.id for p in payments_of(db, created["id"])])
    assert charge["amount_captured"] == inv_doc["amount_paid"] == created["amount"]
    assert charge_count(sandbox_path) == charges_before + 1
    history = kinds(events(api, created["id"]))
    assert history.count("payment.succeeded") == 1
    assert history.count("invoice.processed") == 1
    assert history == [
        "invoice.created", "invoice.processing", "payment.created", "invoice.processed",
        "payment.succeeded",
    ]  # fmt: skip
    assert len(payments_of(db, created["id"])) == 1
