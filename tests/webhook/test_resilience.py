"""None lost: a receiver that goes down, three workers at once, a worker killed mid-dispatch."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from quittance import clock
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.models import WebhookAttempt, WebhookDelivery
from quittance.webhook.dispatcher import Dispatcher
from tests.factories import Api
from tests.webhook.conftest import attempts_of, create_endpoint, deliveries_of, drain, verify
from tests.webhook.receiver import Answer, Receiver


def invoice_order(receiver: Receiver, endpoint_ids: dict[str, str]) -> dict[str, list[str]]:
    """The invoice ids each endpoint received, in arrival order, first arrival of each id."""
    seen: dict[str, list[str]] = defaultdict(list)
    first: set[str] = set()
    for request in receiver.requests:
        if request.id in first:
            continue
        first.add(request.id)
        endpoint = endpoint_ids[request.id]
        seen[endpoint].append(request.json()["data"]["object"]["id"])
    return seen


def delivery_endpoints(db: Database, merchant_id: str) -> dict[str, str]:
    with db.read() as session:
        rows = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.endpoint_id).where(
                WebhookDelivery.merchant_id == merchant_id
            )
        ).all()
    return {delivery_id: endpoint_id for delivery_id, endpoint_id in rows}


def test_receiver_down_then_up_every_event_arrives_in_order(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher, db: Database
) -> None:
    endpoints = [create_endpoint(hook_api, receiver.url) for _ in range(3)]
    secrets = {e["id"]: e["secret"] for e in endpoints}
    receiver.stop()
    invoices = [hook_api.create_invoice(reference=f"o{i}")["id"] for i in range(12)]
    moment = clock.now()
    for minute in range(5):  # down for a while: each endpoint's head fails, the rest wait
        dispatcher.run_once(moment + timedelta(minutes=minute * 10))
    receiver.start()
    # It comes back answering 500 to a few requests it has already received: at-least-once.
    receiver.script(Answer(500), Answer(200), Answer(500))
    for hour in range(1, 30):
        drain(dispatcher, moment + timedelta(hours=hour))
    owners = delivery_endpoints(db, hook_api.merchant.id)
    assert len(owners) == 36
    assert set(receiver.ids()) == set(owners)  # none lost
    assert invoice_order(receiver, owners) == {e["id"]: invoices for e in endpoints}
    by_id = defaultdict(list)
    for request in receiver.requests:
        by_id[request.id].append(request)
        assert verify_any(secrets[owners[request.id]], request)
    duplicates = {i: r for i, r in by_id.items() if len(r) > 1}
    assert duplicates  # the 500s made some arrive twice...
    for copies in duplicates.values():  # ...each with the same id and the same body
        assert len({c.body for c in copies}) == 1
    with db.read() as session:
        pending = session.scalar(
            select(func.count()).where(
                WebhookDelivery.merchant_id == hook_api.merchant.id,
                WebhookDelivery.status != "succeeded",
            )
        )
    assert pending == 0


def verify_any(secret: str, request: object) -> bool:
    from tests.webhook.conftest import signed_by

    return signed_by(secret, request)  # type: ignore[arg-type]


def test_three_workers_never_send_a_delivery_twice(
    hook_api: Api, receiver: Receiver, settings: Settings, hook_settings: Settings
) -> None:
    endpoints = [create_endpoint(hook_api, receiver.url) for _ in range(4)]
    for i in range(15):
        hook_api.create_invoice(reference=f"c{i}")
    receiver.default = Answer(delay=0.002)
    errors: list[BaseException] = []
    sent_by: Counter[int] = Counter()
    start = threading.Barrier(3)

    def work(number: int) -> None:
        db = Database(settings.database_url, pool_size=4)
        # Small rounds, so the three workers take turns on the same queues.
        dispatcher = Dispatcher(db, hook_settings, endpoints_per_round=1, per_endpoint=2)
        try:
            start.wait()
            idle = 0
            while idle < 5:
                sent = dispatcher.run_once()
                sent_by[number] += sent
                idle = 0 if sent else idle + 1
                time.sleep(0.005)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            dispatcher.close()
            db.dispose()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sum(sent_by.values()) == 4 * 15
    assert len([n for n in sent_by.values() if n]) >= 2  # they really shared the work
    counts = Counter(receiver.ids())
    assert len(counts) == 4 * 15
    assert max(counts.values()) == 1, [i for i, n in counts.items() if n > 1]
    owners = {r.id: r for r in receiver.requests}
    for endpoint in endpoints:
        mine = [r for r in receiver.requests if r.id in owners and signed(endpoint, r)]
        references = [r.json()["data"]["object"]["reference"] for r in mine]
        assert references == [f"c{i}" for i in range(15)]


def signed(endpoint: dict[str, str], request: object) -> bool:
    from tests.webhook.conftest import signed_by

    return signed_by(endpoint["secret"], request)  # type: ignore[arg-type]


def start_worker(database_url: str, **env: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "QUITTANCE_DATABASE_URL": database_url,
        "QUITTANCE_ENV": "test",
        "QUITTANCE_LOG_LEVEL": "WARNING",
        "QUITTANCE_WORKER_INTERVAL": "0.1",
        "QUITTANCE_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from quittance.cli import main; main()", "worker"],
        env=environment,
    )


@pytest.mark.slow
def test_a_killed_worker_is_healed_by_the_next_one(
    hook_api: Api, receiver: Receiver, db: Database, database_url: str
) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    invoices = [hook_api.create_invoice(reference=f"k{i}")["id"] for i in range(5)]
    receiver.script(Answer(hang=True))  # the first request hangs: the worker is mid-dispatch
    env = {"QUITTANCE_WEBHOOK_TIMEOUT": "2", "QUITTANCE_WEBHOOK_LEASE": "3"}
    first = start_worker(database_url, **env)
    try:
        assert receiver.wait_for(1, timeout=30), "the worker never sent"
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    head, *rest = deliveries_of(db, endpoint["id"])
    assert head.status == "pending" and head.locked_until is not None
    assert [a.outcome for a in attempts_of(db, head.id)] == ["in_flight"]
    # The deliveries queued behind it were claimed in the same round: whether they were sent
    # is unknown once the worker is gone, so they too are sent again.
    assert all(d.locked_until is not None for d in rest)
    receiver.release()
    second = start_worker(database_url, **env)
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            if all(d.status == "succeeded" for d in deliveries_of(db, endpoint["id"])):
                break
            time.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(20)
        except subprocess.TimeoutExpired:
            second.kill()
    deliveries = deliveries_of(db, endpoint["id"])
    assert [d.status for d in deliveries] == ["succeeded"] * 5
    ids = receiver.ids()
    assert ids[0] == ids[1] == head.id  # the hung request, then the same one again
    assert sorted(set(ids)) == [d.id for d in deliveries]
    arrived = [r.json()["data"]["object"]["id"] for r in receiver.requests[1:]]
    assert arrived == invoices
    verify(endpoint["secret"], receiver.requests[-1])
    with db.read() as session:
        for delivery in deliveries:
            outcomes = list(
                session.scalars(
                    select(WebhookAttempt.outcome)
                    .where(WebhookAttempt.delivery_id == delivery.id)
                    .order_by(WebhookAttempt.number)
                )
            )
            assert outcomes == ["abandoned", "succeeded"]
