"""The worker's rounds: one read says which jobs have work; only those run.

Each job gets an item that has just become due, and the very next round must handle it: a look
that answered "nothing due" where the job would have found work fails here. An idle round, on a
database with nothing in it, must cost one read and no transaction.
"""

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from quittance import clock
from quittance.config import Settings
from quittance.db.migrate import upgrade
from quittance.db.uow import Database
from quittance.invoice.repository import overdue
from quittance.jobs import worker as worker_module
from quittance.jobs.due import CHECKS, DueCheck
from quittance.jobs.worker import Worker
from quittance.models import Cancellation, Delivery, IdempotencyKey, Invoice, Payment, Refund
from quittance.providers.base import PaymentResult, ProviderError
from quittance.providers.sandbox import SandboxGateway
from quittance.refund import service as refund_service
from quittance.refund.schemas import RefundCreate
from quittance.webhook.dispatcher import Dispatcher
from tests.conftest import postgres_database
from tests.factories import Api
from tests.fulfilment.helpers import authorised, cancelled, delivered, take
from tests.payment.helpers import PENDING, caller, card, paid, payment, set_routes
from tests.refund.helpers import paid_invoice
from tests.webhook.conftest import create_endpoint
from tests.webhook.receiver import Receiver

JOBS = (
    "expire_invoices",
    "purge_idempotency_keys",
    "settle_payments",
    "settle_refunds",
    "settle_fulfilment",
    "dispatch_webhooks",
)
# The job functions as the worker calls them (looked up in its module at every round).
JOB_FUNCTIONS = {
    "expire_invoices": "expire_overdue",
    "purge_idempotency_keys": "purge_expired",
    "settle_payments": "settle_open_payments",
    "settle_refunds": "settle_open_refunds",
    "settle_fulfilment": "recover_pending",
}


def look(db: Database, settings: Settings, now: datetime | None = None) -> dict[str, bool]:
    """What the worker's look for due work answers at `now` (default: the clock)."""
    return DueCheck(db.engine).run(now or clock.now(), settings)


def round_of(db: Database, settings: Settings) -> dict[str, int]:
    """One worker round, with its own dispatcher (closed afterwards)."""
    worker = Worker(db, settings)
    try:
        return worker.run_once()
    finally:
        if worker.dispatcher is not None:
            worker.dispatcher.close()


@pytest.fixture(scope="module")
def empty_db(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A migrated database of the backend under test, with nothing in it."""
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('empty') / 'quittance.db'}"
        else:
            url = stack.enter_context(postgres_database())
        upgrade(url)
        database = Database(url)
        stack.callback(database.dispose)
        yield database


@contextlib.contextmanager
def counting(db: Database) -> Iterator[Counter[str]]:
    """Count the transactions begun and the connections checked out of the pool meanwhile."""
    counts: Counter[str] = Counter()

    def begun(*_args: Any) -> None:
        counts["transactions"] += 1

    def checked_out(*_args: Any) -> None:
        counts["connections"] += 1

    event.listen(db.engine, "begin", begun)
    event.listen(db.engine, "checkout", checked_out)
    try:
        yield counts
    finally:
        event.remove(db.engine, "begin", begun)
        event.remove(db.engine, "checkout", checked_out)


# Idle rounds


def test_an_idle_round_is_one_read_and_runs_no_job(empty_db: Database, settings: Settings) -> None:
    worker = Worker(empty_db, settings)
    try:
        assert worker.run_once() == dict.fromkeys(JOBS, 0)  # also the dispatcher's first purge
        assert look(empty_db, settings) == dict.fromkeys(JOBS, False)
        with counting(empty_db) as counts, empty_db.read() as session:
            session.execute(select(1))
        assert counts == {"transactions": 1, "connections": 1}  # the counting counts

        with counting(empty_db) as counts:
            done = worker.run_once()
        assert done == dict.fromkeys(JOBS, 0)
        assert counts == {"connections": 1}  # the look: one read, outside any transaction

        with counting(empty_db) as counts:
            assert worker.dispatch() == 0  # the webhook poll between rounds
        assert counts == {"connections": 1}
    finally:
        if worker.dispatcher is not None:
            worker.dispatcher.close()


def test_every_job_is_looked_for() -> None:
    # A job missing from the look would run every round (correct, but not cheap).
    assert tuple(CHECKS) == JOBS


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Stand-ins for every job of the worker, recording the calls (and the dispatcher's `due`)."""
    made: list[tuple[str, Any]] = []

    def stand_in(name: str) -> Callable[..., int]:
        def job(*_args: Any, **_kwargs: Any) -> int:
            made.append((name, None))
            return 0

        return job

    for name, function in JOB_FUNCTIONS.items():
        monkeypatch.setattr(worker_module, function, stand_in(name))

    def dispatch(_self: Dispatcher, now: datetime | None = None, *, due: bool | None = None) -> int:
        made.append(("dispatch_webhooks", due))
        return 0

    monkeypatch.setattr(Dispatcher, "run_once", dispatch)
    return made


@pytest.mark.parametrize("job", JOBS)
def test_a_round_runs_only_the_jobs_the_look_found_work_for(
    empty_db: Database, settings: Settings, calls: list[tuple[str, Any]],
    monkeypatch: pytest.MonkeyPatch, job: str,
) -> None:  # fmt: skip
    monkeypatch.setattr(DueCheck, "run", lambda *_args: {name: name == job for name in JOBS})
    assert round_of(empty_db, settings) == dict.fromkeys(JOBS, 0)
    if job == "dispatch_webhooks":
        assert calls == [(job, True)]  # the dispatcher does not look again
    else:
        assert calls == [(job, None), ("dispatch_webhooks", False)]  # (it may purge)


def test_when_the_look_fails_every_job_runs(
    empty_db: Database, settings: Settings, calls: list[tuple[str, Any]],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    def failing(*_args: Any) -> dict[str, bool]:
        raise RuntimeError("the database is away")

    monkeypatch.setattr(DueCheck, "run", failing)
    with caplog.at_level(logging.ERROR, logger="quittance.worker"):
        assert round_of(empty_db, settings) == dict.fromkeys(JOBS, 0)
    assert calls == [(job, None) for job in JOBS]  # the dispatcher looks itself
    assert "worker look for due work failed" in caplog.text


# Each job's item, just due, is handled by the next round


def test_an_invoice_that_just_expired_is_expired_by_the_next_round(
    api: Api, db: Database, settings: Settings
) -> None:
    created = api.create_invoice()
    with db.write() as session:
        row = session.get(Invoice, created["id"])
        assert row is not None
        row.expires_at = clock.now()
    assert look(db, settings)["expire_invoices"] is True
    done = round_of(db, settings)
    assert done["expire_invoices"] >= 1
    with db.read() as session:  # the row itself: reading it through the API would expire it
        row = session.get(Invoice, created["id"])
        assert row is not None and row.status == "expired"


def _keyed_create(api: Api, key: str) -> tuple[str, bool, str]:
    """Create an invoice with an `Idempotency-Key`; the key's row's identity."""
    response = api.post(
        "/v1/invoices", json={"amount": 1999, "currency": "EUR"}, headers={"Idempotency-Key": key}
    )
    assert response.status_code == 201, response.text
    return (api.merchant.id, False, key)


def test_a_key_that_just_expired_is_purged_by_the_next_round(
    api: Api, db: Database, settings: Settings
) -> None:
    identity = _keyed_create(api, "k-just-expired")
    with db.write() as session:
        key = session.get(IdempotencyKey, identity)
        assert key is not None
        key.expires_at = clock.now()
    assert look(db, settings)["purge_idempotency_keys"] is True
    done = round_of(db, settings)
    assert done["purge_idempotency_keys"] >= 1
    with db.read() as session:
        assert session.get(IdempotencyKey, identity) is None


def test_a_payment_just_due_for_a_look_is_settled_by_the_next_round(
    papi: Api, db: Database, pay_settings: Settings
) -> None:
    set_routes(db, papi.merchant.id, "card", {"settle_after_ms": 0})
    created = papi.create_invoice(amount=3100)
    body = paid(papi, created["id"], card(PENDING))
    assert body["status"] == "pending"
    with db.write() as session:
        row = session.get(Payment, body["id"])
        assert row is not None and row.next_check_at is not None
        row.next_check_at = clock.now()  # its lease is free: none was taken
    assert look(db, pay_settings)["settle_payments"] is True
    done = round_of(db, pay_settings)
    assert done["settle_payments"] >= 1
    settled = payment(papi, body["id"])
    assert (settled["status"], settled["amount_received"]) == ("succeeded", 3100)


def test_a_refund_just_due_for_a_look_is_sent_by_the_next_round(
    papi: Api, db: Database, pay_settings: Settings
) -> None:
    inv = paid_invoice(papi, 5000)
    with db.write() as session:  # recorded, never sent: the process died at once
        (call,) = refund_service.start_refund(
            session, caller(papi.merchant.id), inv["id"],
            RefundCreate.model_validate({"amount": 1500}), pay_settings,
        )  # fmt: skip
    with db.write() as session:
        row = session.get(Refund, call.refund_id)
        assert row is not None and row.status == "pending"
        now = clock.now()
        row.created_at = now - timedelta(seconds=pay_settings.payment_recovery_after)
        row.next_check_at = now
    assert look(db, pay_settings)["settle_refunds"] is True
    done = round_of(db, pay_settings)
    assert done["settle_refunds"] >= 1
    document = papi.get(f"/v1/refunds/{call.refund_id}").json()
    assert (document["status"], document["amount"]) == ("succeeded", 1500)


def _answer_lost(original: Callable[..., PaymentResult]) -> Callable[..., PaymentResult]:
    """A provider call carried out whose answer never arrives."""

    def call(self: SandboxGateway, payment_id: str, amount: int, operation_id: str
             ) -> PaymentResult:  # fmt: skip
        original(self, payment_id, amount, operation_id)
        raise ProviderError("The sandbox did not answer in time.", code="provider_timeout")

    return call


@pytest.mark.parametrize("kind", ["delivery", "cancellation"])
def test_an_operation_just_due_for_recovery_is_settled_by_the_next_round(
    papi: Api, db: Database, pay_settings: Settings, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    inv = authorised(papi)
    model = Delivery if kind == "delivery" else Cancellation
    with monkeypatch.context() as patch:
        if kind == "delivery":
            patch.setattr(SandboxGateway, "capture", _answer_lost(SandboxGateway.capture))
            document = delivered(papi, inv["id"], {"line_items": take(inv, 2)})
        else:
            patch.setattr(SandboxGateway, "cancel", _answer_lost(SandboxGateway.cancel))
            document = cancelled(papi, inv["id"], {"line_items": take(inv, 0, 1)})
    assert document["status"] == "pending"
    with db.write() as session:
        row = session.get(model, document["id"])
        assert row is not None
        row.updated_at = clock.now() - timedelta(seconds=pay_settings.payment_recovery_after)
    assert look(db, pay_settings)["settle_fulfilment"] is True
    done = round_of(db, pay_settings)
    assert done["settle_fulfilment"] >= 1
    with db.read() as session:
        row = session.get(model, document["id"])
        assert row is not None and row.status == "succeeded"


def test_a_webhook_just_queued_is_sent_by_the_next_round(
    hook_api: Api, receiver: Receiver, db: Database, hook_settings: Settings
) -> None:
    create_endpoint(hook_api, receiver.url)
    hook_api.create_invoice()
    assert look(db, hook_settings)["dispatch_webhooks"] is True
    done = round_of(db, hook_settings)
    assert done["dispatch_webhooks"] >= 1
    assert len(receiver.requests) == 1


# The look's conditions written out again (their jobs' queries live in modules of their own)


def test_the_look_for_expiry_and_purge_is_exactly_the_jobs_condition(
    api: Api, db: Database, settings: Settings
) -> None:
    moment = datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)  # before anything else stored
    just_before = moment - timedelta(milliseconds=1)
    assert look(db, settings, moment)["expire_invoices"] is False
    assert look(db, settings, moment)["purge_idempotency_keys"] is False
    expirable = api.create_invoice()
    settled = api.create_invoice()
    assert api.post(f"/v1/invoices/{settled['id']}/cancel").status_code == 200
    identity = _keyed_create(api, "k-boundary")

    def move(expirable_at: datetime, settled_at: datetime, key_at: datetime) -> None:
        with db.write() as session:
            for invoice_id, at in ((expirable["id"], expirable_at), (settled["id"], settled_at)):
                row = session.get(Invoice, invoice_id)
                assert row is not None
                row.expires_at = at
            key = session.get(IdempotencyKey, identity)
            assert key is not None
            key.expires_at = key_at

    # A cancelled invoice long overdue is not expirable: only the other one counts.
    move(moment, moment - timedelta(days=1), moment)
    try:
        assert look(db, settings, just_before)["expire_invoices"] is False
        assert look(db, settings, moment)["expire_invoices"] is True
        assert look(db, settings, just_before)["purge_idempotency_keys"] is False
        assert look(db, settings, moment)["purge_idempotency_keys"] is True
        with db.write() as session:  # the job's own query agrees
            assert overdue(session, just_before, limit=10) == []
            assert [row.id for row in overdue(session, moment, limit=10)] == [expirable["id"]]
    finally:
        later = clock.now() + timedelta(days=1)
        move(later, later, later)
