"""The dispatcher against a real HTTP receiver on loopback; time is injected, not slept."""

import json
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from sqlalchemy import select

from quittance import clock
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.jobs.worker import Worker
from quittance.models import Event, WebhookDelivery, WebhookEndpoint
from quittance.webhook.dispatcher import MAX_RESPONSE_BODY, Dispatcher
from tests.factories import Api, snapshot
from tests.webhook.conftest import (
    attempts_of,
    create_endpoint,
    delete,
    deliveries_of,
    drain,
    signed_by,
    verify,
)
from tests.webhook.receiver import Answer, Receiver


def later(seconds: float) -> datetime:
    return clock.now() + timedelta(seconds=seconds)


def test_delivers_a_signed_event(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher, db: Database
) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    invoice = hook_api.create_invoice(reference="order-7")
    receiver.default = Answer(200, body=b"x" * (MAX_RESPONSE_BODY * 3))
    assert drain(dispatcher) == 1
    [request] = receiver.requests
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    payload = verify(endpoint["secret"], request)
    assert payload["type"] == "invoice.created"
    assert payload["data"]["object"]["id"] == invoice["id"]
    assert payload["data"]["object"]["reference"] == "order-7"
    event = hook_api.get(f"/v1/events/{payload['id']}").json()
    assert payload == event
    [delivery] = deliveries_of(db, endpoint["id"])
    assert request.id == delivery.id
    assert (delivery.status, delivery.attempt_count, delivery.last_status_code) == (
        "succeeded",
        1,
        200,
    )
    assert delivery.delivered_at is not None and delivery.locked_until is None
    log = hook_api.get(f"/v1/webhook_deliveries/{delivery.id}").json()
    assert log["status"] == "succeeded"
    [attempt] = log["attempts"]
    assert attempt["outcome"] == "succeeded"
    assert attempt["status_code"] == 200
    assert attempt["duration_ms"] >= 0
    assert attempt["response_body"] == "x" * MAX_RESPONSE_BODY
    assert drain(dispatcher) == 0  # nothing twice


def test_failures_are_retried_on_schedule_with_the_same_id(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher, db: Database
) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    hook_api.create_invoice()
    receiver.script(Answer(500, body=b"boom"), Answer(503))
    assert dispatcher.run_once() == 1
    [delivery] = deliveries_of(db, endpoint["id"])
    assert delivery.status == "pending"
    assert (delivery.last_status_code, delivery.last_error) == (500, "http_500")
    assert delivery.next_attempt_at is not None and delivery.last_attempt_at is not None
    wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert 5 * 0.85 - 0.01 <= wait <= 5 * 1.15 + 1  # plus the time the request took
    assert dispatcher.run_once() == 0  # not due yet
    assert dispatcher.run_once(later(6)) == 1
    [delivery] = deliveries_of(db, endpoint["id"])
    wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()  # type: ignore[operator]
    assert 300 * 0.85 <= wait <= 300 * 1.15
    assert dispatcher.run_once(later(400)) == 1
    ids = receiver.ids()
    assert len(ids) == 3 and len(set(ids)) == 1
    assert all(signed_by(endpoint["secret"], r) for r in receiver.requests)
    outcomes = [(a.number, a.outcome, a.status_code) for a in attempts_of(db, ids[0])]
    assert outcomes == [(1, "failed", 500), (2, "failed", 503), (3, "succeeded", 200)]
    assert attempts_of(db, ids[0])[0].response_body == "boom"
    assert hook_api.get(f"/v1/webhook_endpoints/{endpoint['id']}").json()["failing_since"] is None


def test_timeouts_and_refused_connections_are_retried(
    hook_api: Api, db: Database, hook_settings: Settings
) -> None:
    receiver = Receiver().start()
    endpoint = create_endpoint(hook_api, receiver.url)
    hook_api.create_invoice()
    fast = Dispatcher(db, hook_settings.model_copy(update={"webhook_timeout": 0.3}))
    try:
        receiver.script(Answer(delay=2))
        assert fast.run_once() == 1
        [delivery] = deliveries_of(db, endpoint["id"])
        assert (delivery.status, delivery.last_error, delivery.last_status_code) == (
            "pending",
            "timeout",
            None,
        )
        receiver.stop()
        assert fast.run_once(later(10)) == 1
        [delivery] = deliveries_of(db, endpoint["id"])
        assert delivery.status == "pending"
        assert delivery.last_error is not None
        assert delivery.last_error.startswith("connection_error")
        receiver.start()
        assert fast.run_once(later(1000)) == 1
        assert deliveries_of(db, endpoint["id"])[0].status == "succeeded"
        assert len(set(receiver.ids())) == 1
    finally:
        fast.close()
        receiver.release()
        receiver.stop()


@pytest.mark.parametrize("header", ["seconds", "date"])
def test_retry_after_is_honoured(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher, db: Database, header: str
) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    hook_api.create_invoice()
    value = "600" if header == "seconds" else format_datetime(later(600), usegmt=True)
    receiver.script(Answer(429, headers={"Retry-After": value}))
    dispatcher.run_once()
    [delivery] = deliveries_of(db, endpoint["id"])
    assert delivery.next_attempt_at is not None
    assert 590 <= (delivery.next_attempt_at - clock.now()).total_seconds() <= 601
    assert dispatcher.run_once(later(60)) == 0
    assert dispatcher.run_once(later(601)) == 1


def test_gone_disables_the_endpoint_and_tells_the_merchant(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher, db: Database
) -> None:
    watcher = Receiver().start()
    try:
        gone = create_endpoint(hook_api, receiver.url)
        notices = create_endpoint(hook_api, watcher.url, enabled_events=["webhook_endpoint.*"])
        hook_api.create_invoice()
        hook_api.create_invoice()
        receiver.default = Answer(410)
        drain(dispatcher)
        assert len(receiver.requests) == 1  # the second waits; the endpoint is gone
        state = hook_api.get(f"/v1/webhook_endpoints/{gone['id']}").json()
        assert (state["status"], state["disabled_reason"]) == ("disabled", "gone")
        first, second = deliveries_of(db, gone["id"])
        assert (first.status, first.last_status_code) == ("failed", 410)
        assert (second.status, second.attempt_count) == ("pending", 0)
        events = hook_api.get("/v1/events", params={"type": "webhook_endpoint.disabled"}).json()
        [event] = events["data"]
        assert event["data"]["reason"] == "gone"
        assert event["data"]["object"]["id"] == gone["id"]
        [notice] = watcher.requests
        assert verify(notices["secret"], notice)["id"] == event["id"]
        assert drain(dispatcher, later(3600)) == 0
    finally:
        watcher.stop()


def test_an_endpoint_failing_for_too_long_is_disabled(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher, db: Database
) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    hook_api.create_invoice()
    receiver.default = Answer(500)
    dispatcher.run_once()
    failing_since = hook_api.get(f"/v1/webhook_endpoints/{endpoint['id']}").json()
    assert failing_since["failing_since"] is not None
    dispatcher.run_once(later(4 * 86400))
    assert hook_api.get(f"/v1/webhook_endpoints/{endpoint['id']}").json()["status"] == "enabled"
    dispatcher.run_once(later(5 * 86400 + 60))
    state = hook_api.get(f"/v1/webhook_endpoints/{endpoint['id']}").json()
    assert (state["status"], state["disabled_reason"]) == ("disabled", "failing")
    events = hook_api.get("/v1/events", params={"type": "webhook_endpoint.disabled"}).json()
    assert [e["data"]["reason"] for e in events["data"]] == ["failing"]
    # Enabling it again resumes the queue where it stopped.
    hook_api.patch(f"/v1/webhook_endpoints/{endpoint['id']}", json={"enabled": True})
    receiver.default = Answer(200)
    assert drain(dispatcher, later(6 * 86400)) == 1
    assert deliveries_of(db, endpoint["id"])[0].status == "succeeded"


def test_a_delivery_is_given_up_after_the_last_retry(
    hook_api: Api, receiver: Receiver, db: Database, hook_settings: Settings
) -> None:
    settings = hook_settings.model_copy(update={"webhook_disable_after": timedelta(days=30)})
    dispatcher = Dispatcher(db, settings, rng=random.Random(7))
    try:
        endpoint = create_endpoint(hook_api, receiver.url)
        hook_api.create_invoice()
        receiver.default = Answer(502)
        moment = clock.now()
        for _ in range(10):
            assert dispatcher.run_once(moment) == 1
            [delivery] = deliveries_of(db, endpoint["id"])
            moment = (delivery.next_attempt_at or moment) + timedelta(seconds=1)
        assert (delivery.status, delivery.attempt_count) == ("failed", 10)
        assert delivery.next_attempt_at is None
        assert dispatcher.run_once(moment + timedelta(days=5)) == 0
        assert len(receiver.requests) == 10
    finally:
        dispatcher.close()


def test_deliveries_to_one_endpoint_go_in_order(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher, db: Database
) -> None:
    create_endpoint(hook_api, receiver.url)
    invoices = [hook_api.create_invoice(reference=f"r{i}")["id"] for i in range(5)]
    receiver.script(Answer(500))
    assert dispatcher.run_once() == 1  # the head fails; the rest wait behind it
    assert dispatcher.run_once() == 0
    assert drain(dispatcher, later(10)) == 5
    sent = [r.json()["data"]["object"]["id"] for r in receiver.requests]
    assert sent == [invoices[0], *invoices]


def test_redirects_are_not_followed(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher, db: Database
) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    hook_api.create_invoice()
    receiver.script(Answer(302, headers={"Location": f"http://127.0.0.1:{receiver.port}/other"}))
    dispatcher.run_once()
    assert [r.path for r in receiver.requests] == ["/hook"]
    [delivery] = deliveries_of(db, endpoint["id"])
    assert (delivery.status, delivery.last_status_code, delivery.last_error) == (
        "pending",
        302,
        "redirect_not_followed",
    )


def test_ssrf_guard_is_checked_again_when_sending(
    hook_api: Api, receiver: Receiver, db: Database, hook_settings: Settings
) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    hook_api.create_invoice()
    strict = Dispatcher(db, hook_settings.model_copy(update={"webhook_allowed_hosts": []}))
    try:
        assert strict.run_once() == 1
    finally:
        strict.close()
    assert receiver.requests == []
    [delivery] = deliveries_of(db, endpoint["id"])
    assert delivery.status == "pending"
    assert delivery.last_error is not None and delivery.last_error.startswith("url_refused")


def test_large_payloads_are_sent_without_data(
    hook_api: Api, receiver: Receiver, db: Database, hook_settings: Settings
) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    invoice = hook_api.create_invoice(description="d" * 900, reference="small")
    small = Dispatcher(db, hook_settings.model_copy(update={"webhook_max_payload_bytes": 1024}))
    try:
        assert small.run_once() == 1
    finally:
        small.close()
    payload = verify(endpoint["secret"], receiver.requests[0])
    assert payload["data"] is None and payload["data_omitted"] is True
    assert payload["invoice_id"] == invoice["id"]
    assert len(receiver.requests[0].body) <= 1024


def test_redeliver_sends_again_with_the_same_id(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher, db: Database
) -> None:
    create_endpoint(hook_api, receiver.url)
    hook_api.create_invoice()
    drain(dispatcher)
    delivery_id = receiver.ids()[0]
    listed = hook_api.get("/v1/webhook_deliveries", params={"status": "succeeded"}).json()
    assert [d["id"] for d in listed["data"]] == [delivery_id]
    response = hook_api.post(f"/v1/webhook_deliveries/{delivery_id}/redeliver")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    assert drain(dispatcher) == 1
    assert receiver.ids() == [delivery_id, delivery_id]
    assert receiver.requests[0].body == receiver.requests[1].body
    log = hook_api.get(f"/v1/webhook_deliveries/{delivery_id}").json()
    assert [a["number"] for a in log["attempts"]] == [1, 2]
    assert log["status"] == "succeeded"


def test_delivery_list_filters(hook_api: Api, receiver: Receiver, dispatcher: Dispatcher) -> None:
    one = create_endpoint(hook_api, receiver.url)
    two = create_endpoint(hook_api, receiver.url, enabled_events=["invoice.cancelled"])
    invoice = hook_api.create_invoice()
    hook_api.post(f"/v1/invoices/{invoice['id']}/cancel")
    every = hook_api.get("/v1/webhook_deliveries").json()["data"]
    assert len(every) == 3
    assert [d["endpoint_id"] for d in every].count(one["id"]) == 2
    of_two = hook_api.get("/v1/webhook_deliveries", params={"endpoint_id": two["id"]}).json()
    assert [d["event_type"] for d in of_two["data"]] == ["invoice.cancelled"]
    event_id = of_two["data"][0]["event_id"]
    of_event = hook_api.get("/v1/webhook_deliveries", params={"event_id": event_id}).json()
    assert {d["endpoint_id"] for d in of_event["data"]} == {one["id"], two["id"]}
    page = hook_api.get("/v1/webhook_deliveries", params={"limit": 2}).json()
    assert page["has_more"] is True
    rest = hook_api.get(
        "/v1/webhook_deliveries", params={"starting_after": page["next_cursor"]}
    ).json()
    assert len(rest["data"]) == 1
    assert hook_api.as_live().get("/v1/webhook_deliveries").json()["data"] == []


def test_test_event_reaches_only_its_endpoint(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    create_endpoint(hook_api, receiver.url)
    hook_api.post(f"/v1/webhook_endpoints/{endpoint['id']}/test")
    drain(dispatcher)
    [request] = receiver.requests
    payload = verify(endpoint["secret"], request)
    assert payload["type"] == "webhook_endpoint.test"
    assert payload["data"]["object"]["id"] == endpoint["id"]
    assert "secret" not in payload["data"]["object"]


def test_rotation_signs_with_both_secrets_during_the_overlap(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    path = f"/v1/webhook_endpoints/{endpoint['id']}"
    new = hook_api.post(f"{path}/rotate_secret", json={"overlap_seconds": 3600}).json()["secret"]
    hook_api.create_invoice()
    drain(dispatcher)
    request = receiver.requests[-1]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    verify(endpoint["secret"], request)
    verify(new, request)
    hook_api.create_invoice()
    drain(dispatcher, later(3601))
    after = receiver.requests[-1]
    assert signed_by(new, after) and not signed_by(endpoint["secret"], after)
    assert len(after.headers["webhook-signature"].split(" ")) == 1


def test_a_lost_worker_lease_runs_out_and_the_delivery_is_sent_again(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher, db: Database
) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    hook_api.create_invoice()
    [[job]] = dispatcher.claim(clock.now())  # a worker claims it, then dies before sending
    assert dispatcher.run_once() == 0  # leased: nobody else takes it
    lease = hook_settings_lease(dispatcher)
    assert dispatcher.run_once(later(lease + 1)) == 1
    [delivery] = deliveries_of(db, endpoint["id"])
    assert delivery.status == "succeeded"
    assert receiver.ids() == [job.delivery_id]
    outcomes = [(a.number, a.outcome, a.error) for a in attempts_of(db, delivery.id)]
    assert outcomes == [(1, "abandoned", "worker_lost"), (2, "succeeded", None)]
    # The dead worker wakes up and reports late: its attempt is logged, the state is not undone.
    from quittance.webhook.dispatcher import Result

    now = clock.now()
    dispatcher.record([Result(job, now, now, 5, 500, "http_500")], [])
    [delivery] = deliveries_of(db, endpoint["id"])
    assert delivery.status == "succeeded"
    assert attempts_of(db, delivery.id)[0].outcome == "failed"


def test_an_endpoint_deleted_while_its_delivery_is_in_flight_records_nothing_on_it(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher, db: Database
) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    hook_api.create_invoice()
    [[job]] = dispatcher.claim(clock.now())
    deleted = delete(hook_api, f"/v1/webhook_endpoints/{endpoint['id']}")
    assert deleted.status_code == 200, deleted.text
    receiver.default = Answer(410)  # would disable it, with a `webhook_endpoint.disabled` event
    now = clock.now()
    result = dispatcher.send(job, lambda: now)
    assert result.status_code == 410
    before = (stored_endpoint(db, endpoint["id"]), snapshot(db, hook_api.merchant.id))
    dispatcher.record([result], [])
    assert (stored_endpoint(db, endpoint["id"]), snapshot(db, hook_api.merchant.id)) == before
    assert deliveries_of(db, endpoint["id"]) == []
    assert attempts_of(db, job.delivery_id) == []


def stored_endpoint(db: Database, endpoint_id: str) -> dict[str, Any]:
    with db.read() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        return {c.key: getattr(row, c.key) for c in WebhookEndpoint.__mapper__.column_attrs}


def hook_settings_lease(dispatcher: Dispatcher) -> float:
    return dispatcher.settings.webhook_lease.total_seconds()


def test_worker_run_once_dispatches(
    hook_api: Api, receiver: Receiver, db: Database, hook_settings: Settings
) -> None:
    create_endpoint(hook_api, receiver.url)
    hook_api.create_invoice()
    worker = Worker(db, hook_settings)
    done = worker.run_once()
    assert done["dispatch_webhooks"] >= 1
    assert len(receiver.requests) == 1
    assert worker.dispatcher is not None
    worker.dispatcher.close()


def test_event_body_is_the_event(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher, db: Database
) -> None:
    create_endpoint(hook_api, receiver.url)
    hook_api.create_invoice()
    drain(dispatcher)
    body = json.loads(receiver.requests[0].body)
    with db.read() as session:
        event = session.scalars(select(Event).where(Event.id == body["id"])).one()
        delivery = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.event_id == event.id)
        ).one()
    assert body["created_at"] == clock.isoformat(event.created_at)
    assert delivery.created_at == event.created_at
    assert datetime.fromtimestamp(int(receiver.requests[0].headers["webhook-timestamp"]), UTC)


def test_worker_loop_polls_webhooks_between_its_rounds(
    hook_api: Api, receiver: Receiver, db: Database, hook_settings: Settings
) -> None:
    settings = hook_settings.model_copy(
        update={"worker_interval": 30.0, "webhook_poll_interval": 0.05}
    )
    worker = Worker(db, settings)
    thread = worker.start_thread()
    try:
        create_endpoint(hook_api, receiver.url)
        hook_api.create_invoice()
        assert receiver.wait_for(1, timeout=5)  # well before the 30 s round
        hook_api.create_invoice()
        assert receiver.wait_for(2, timeout=5)
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert worker.dispatcher is None  # closed on the way out
