"""The outbox's process-wide cache of enabled endpoints: no endpoint SELECT on the hot path,
and yet every change made through this process applies to the very next event.

Writes that bypass the ORM (Core `update`/`delete` here) stand for another process: this one
is not told of them, and sees them once the entry's ttl has run out.
"""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, event, func, select, update
from sqlalchemy.orm import Session

from quittance import clock
from quittance.db.cache import MISSING
from quittance.db.uow import Database
from quittance.domain.ids import new_id
from quittance.event import service as events
from quittance.models import Event, WebhookDelivery, WebhookEndpoint
from quittance.webhook import signing
from quittance.webhook.dispatcher import Dispatcher
from quittance.webhook.outbox import ENDPOINTS_KEY, endpoints_cache, new_delivery
from tests.conftest import LiveServer
from tests.factories import Api, MerchantFactory, snapshot
from tests.webhook.conftest import (
    attempts_of,
    create_endpoint,
    deliveries_of,
    disable_endpoints,
    drain,
)
from tests.webhook.conftest import delete as api_delete
from tests.webhook.receiver import Answer, Receiver

URL = "https://hooks.example/q"  # never sent to: these tests only look at what is queued


def cached(merchant_id: str, livemode: bool = False) -> Any:
    """What the process cache holds for the merchant and mode (`MISSING` when nothing)."""
    return endpoints_cache.get(merchant_id, livemode, ENDPOINTS_KEY)


def cached_ids(merchant_id: str, livemode: bool = False) -> list[str]:
    value = cached(merchant_id, livemode)
    assert value is not MISSING
    return [endpoint_id for endpoint_id, _patterns in value]


def queued_for(db: Database, event_id: str) -> set[str]:
    """The endpoints a delivery of the event was queued for."""
    with db.read() as session:
        return set(
            session.scalars(
                select(WebhookDelivery.endpoint_id).where(WebhookDelivery.event_id == event_id)
            )
        )


def created_event(db: Database, invoice_id: str) -> str:
    with db.read() as session:
        event_id = session.scalar(
            select(Event.id).where(Event.invoice_id == invoice_id, Event.type == "invoice.created")
        )
    assert event_id is not None
    return event_id


def queued_for_new_invoice(api: Api, db: Database) -> set[str]:
    """Create an invoice through the API (the group-committed hot path); where its
    `invoice.created` event was queued."""
    return queued_for(db, created_event(db, api.create_invoice()["id"]))


def new_endpoint(merchant_id: str, *, livemode: bool = False, events: list[str] | None = None,
                 enabled: bool = True) -> WebhookEndpoint:  # fmt: skip
    now = clock.now()
    return WebhookEndpoint(
        id=new_id("we"), merchant_id=merchant_id, livemode=livemode, url=URL, description=None,
        enabled_events=events or ["*"], enabled=enabled, secret=signing.generate_secret(),
        created_at=now, updated_at=now,
    )  # fmt: skip


def record(session: Any, merchant_id: str, livemode: bool = False) -> Event:
    return events.record(
        session, merchant_id=merchant_id, livemode=livemode, type="invoice.created", data={}
    )


def delivery_count(db: Database, merchant_id: str) -> int:
    with db.read() as session:
        return int(
            session.scalar(select(func.count()).where(WebhookDelivery.merchant_id == merchant_id))
            or 0
        )


@pytest.fixture
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements run through SQLAlchemy while the test runs."""
    seen: list[str] = []

    def capture(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(db.engine, "before_cursor_execute", capture)
    yield seen
    event.remove(db.engine, "before_cursor_execute", capture)


@pytest.fixture
def other_api(hook_api: Api, merchants: MerchantFactory, db: Database) -> Iterator[Api]:
    """A second merchant on the same app; its endpoints are disabled afterwards."""
    api = Api(hook_api.client, merchants.create())
    yield api
    disable_endpoints(db, api.merchant.id)


# -- the hot path reads no endpoint rows --------------------------------------------------------


def test_a_warm_cache_runs_no_endpoint_select(
    hook_api: Api, db: Database, statements: list[str]
) -> None:
    endpoint = create_endpoint(hook_api, URL)
    statements.clear()
    assert queued_for_new_invoice(hook_api, db) == {endpoint["id"]}
    assert [s for s in statements if "webhook_endpoints" in s] != []  # read once, and cached
    assert cached_ids(hook_api.merchant.id) == [endpoint["id"]]
    statements.clear()
    invoice = hook_api.create_invoice()
    cancel = hook_api.post(f"/v1/invoices/{invoice['id']}/cancel")
    assert cancel.status_code == 200, cancel.text
    assert [s for s in statements if "webhook_endpoints" in s] == []
    assert [d.event_type for d in deliveries_of(db, endpoint["id"])][-2:] == [
        "invoice.created",
        "invoice.cancelled",
    ]


# -- 1. a change made through this process applies to the very next event -------------------


def test_a_new_endpoint_gets_the_next_event(hook_api: Api, db: Database) -> None:
    assert queued_for_new_invoice(hook_api, db) == set()
    assert cached(hook_api.merchant.id) == ()  # "no endpoints" is cached too
    endpoint = create_endpoint(hook_api, URL)
    assert queued_for_new_invoice(hook_api, db) == {endpoint["id"]}


@pytest.mark.parametrize(
    ("change", "queued"),
    [
        ({"enabled": False}, False),
        ({"enabled_events": ["refund.*"]}, False),
        ({"url": "https://hooks.example/elsewhere"}, True),
        ({"description": "orders"}, True),
    ],
    ids=["paused", "other_events", "url", "description"],
)
def test_an_endpoint_changed_applies_to_the_next_event(
    hook_api: Api, db: Database, change: dict[str, Any], queued: bool
) -> None:
    endpoint = create_endpoint(hook_api, URL)
    assert queued_for_new_invoice(hook_api, db) == {endpoint["id"]}
    assert cached_ids(hook_api.merchant.id) == [endpoint["id"]]
    response = hook_api.patch(f"/v1/webhook_endpoints/{endpoint['id']}", json=change)
    assert response.status_code == 200, response.text
    assert cached(hook_api.merchant.id) is MISSING  # forgotten on commit
    assert queued_for_new_invoice(hook_api, db) == ({endpoint["id"]} if queued else set())


def test_an_endpoint_resumed_gets_the_next_event(hook_api: Api, db: Database) -> None:
    endpoint = create_endpoint(hook_api, URL)
    hook_api.patch(f"/v1/webhook_endpoints/{endpoint['id']}", json={"enabled": False})
    assert queued_for_new_invoice(hook_api, db) == set()
    assert cached(hook_api.merchant.id) == ()
    resumed = hook_api.patch(f"/v1/webhook_endpoints/{endpoint['id']}", json={"enabled": True})
    assert resumed.status_code == 200, resumed.text
    assert queued_for_new_invoice(hook_api, db) == {endpoint["id"]}


def test_a_rotated_endpoint_still_gets_the_next_event(hook_api: Api, db: Database) -> None:
    endpoint = create_endpoint(hook_api, URL)
    assert queued_for_new_invoice(hook_api, db) == {endpoint["id"]}
    rotated = hook_api.post(f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret")
    assert rotated.status_code == 200, rotated.text
    assert queued_for_new_invoice(hook_api, db) == {endpoint["id"]}


def test_a_deleted_endpoint_gets_nothing_and_breaks_nothing(hook_api: Api, db: Database) -> None:
    kept = create_endpoint(hook_api, URL)
    gone = create_endpoint(hook_api, URL)
    assert queued_for_new_invoice(hook_api, db) == {kept["id"], gone["id"]}
    response = api_delete(hook_api, f"/v1/webhook_endpoints/{gone['id']}")
    assert response.status_code == 200, response.text
    # Deleted through this process: forgotten at once, so nothing is queued for it.
    assert queued_for_new_invoice(hook_api, db) == {kept["id"]}
    assert deliveries_of(db, gone["id"]) == []


def test_an_endpoint_the_dispatcher_disables_gets_no_next_event(
    hook_api: Api, receiver: Receiver, dispatcher: Dispatcher, db: Database
) -> None:
    gone = create_endpoint(hook_api, receiver.url)
    other = create_endpoint(hook_api, URL, enabled_events=["invoice.paid"])
    assert queued_for_new_invoice(hook_api, db) == {gone["id"]}
    assert sorted(cached_ids(hook_api.merchant.id)) == sorted([gone["id"], other["id"]])
    receiver.default = Answer(410)
    drain(dispatcher)
    state = hook_api.get(f"/v1/webhook_endpoints/{gone['id']}").json()
    assert (state["status"], state["disabled_reason"]) == ("disabled", "gone")
    assert cached(hook_api.merchant.id) is MISSING
    assert queued_for_new_invoice(hook_api, db) == set()
    assert cached_ids(hook_api.merchant.id) == [other["id"]]


# -- 2. a transaction sees its own endpoint changes, and never caches them -------------------


def test_a_transaction_sees_its_own_unflushed_endpoint_changes(hook_api: Api, db: Database) -> None:
    merchant_id = hook_api.merchant.id
    first = create_endpoint(hook_api, URL)
    assert queued_for_new_invoice(hook_api, db) == {first["id"]}  # cached
    with db.write() as session, session.no_autoflush:
        before = record(session, merchant_id)
        added = new_endpoint(merchant_id)
        session.add(added)  # not flushed
        with_added = record(session, merchant_id)
        endpoint = session.get(WebhookEndpoint, first["id"])
        assert endpoint is not None
        endpoint.enabled = False  # not flushed
        without_first = record(session, merchant_id)
        assert cached(merchant_id) is MISSING  # nothing this transaction read is cached
        # Another thread caches the committed rows meanwhile: not this transaction's view.
        with Session() as elsewhere:
            committed = ((first["id"], ("*",)),)
            generation = endpoints_cache.generation
            endpoints_cache.put(elsewhere, merchant_id, False, ENDPOINTS_KEY, committed, generation)
        assert cached(merchant_id) == committed
        again = record(session, merchant_id)
    assert queued_for(db, before.id) == {first["id"]}
    assert queued_for(db, with_added.id) == {first["id"], added.id}
    assert queued_for(db, without_first.id) == {added.id}
    assert queued_for(db, again.id) == {added.id}
    assert queued_for_new_invoice(hook_api, db) == {added.id}


def test_a_rolled_back_endpoint_change_is_neither_cached_nor_applied(
    hook_api: Api, db: Database
) -> None:
    merchant_id = hook_api.merchant.id
    first = create_endpoint(hook_api, URL)
    assert queued_for_new_invoice(hook_api, db) == {first["id"]}
    before = (snapshot(db, merchant_id), delivery_count(db, merchant_id))
    with pytest.raises(RuntimeError), db.write() as session:
        added = new_endpoint(merchant_id)
        session.add(added)
        endpoint = session.get(WebhookEndpoint, first["id"])
        assert endpoint is not None
        endpoint.enabled = False
        event_id = record(session, merchant_id).id
        session.flush()
        assert set(
            session.scalars(
                select(WebhookDelivery.endpoint_id).where(WebhookDelivery.event_id == event_id)
            )
        ) == {added.id}
        assert cached(merchant_id) is MISSING
        raise RuntimeError("the change failed after its event was written")
    assert (snapshot(db, merchant_id), delivery_count(db, merchant_id)) == before
    assert cached(merchant_id) is MISSING
    assert queued_for_new_invoice(hook_api, db) == {first["id"]}
    assert cached_ids(merchant_id) == [first["id"]]


def test_a_transaction_that_wrote_an_endpoint_cannot_fill_the_cache(
    hook_api: Api, db: Database
) -> None:
    merchant_id = hook_api.merchant.id
    first = create_endpoint(hook_api, URL)
    with db.write() as session:
        endpoint = session.get(WebhookEndpoint, first["id"])
        assert endpoint is not None
        endpoint.enabled = False
        session.flush()
        # MerchantCache.put refuses a transaction that wrote a watched row.
        endpoints_cache.put(
            session, merchant_id, False, ENDPOINTS_KEY, (), endpoints_cache.generation
        )
        assert cached(merchant_id) is MISSING
        record(session, merchant_id)
        assert cached(merchant_id) is MISSING
    with db.write() as session:  # and one that wrote none can
        endpoints_cache.put(
            session, merchant_id, False, ENDPOINTS_KEY, (), endpoints_cache.generation
        )
    assert cached(merchant_id) == ()


# -- 4. other processes: within the ttl ------------------------------------------------------


def test_a_change_this_process_is_not_told_of_applies_once_the_ttl_runs_out(
    hook_api: Api,
    receiver: Receiver,
    dispatcher: Dispatcher,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ttl = 1.0
    monkeypatch.setattr(endpoints_cache, "ttl", ttl)
    endpoint = create_endpoint(hook_api, receiver.url)
    reading = time.monotonic()
    assert queued_for_new_invoice(hook_api, db) == {endpoint["id"]}  # cached for `ttl`
    cached_at = time.monotonic()
    with db.write() as session:  # as another process would: no mapper event here
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint["id"])
            .values(enabled=False, disabled_reason="manual")
        )
    stale = queued_for_new_invoice(hook_api, db)
    if time.monotonic() < reading + ttl:  # surely read before the entry ran out
        assert stale == {endpoint["id"]}  # queued for the paused endpoint, as documented
    # The dispatcher sends nothing to a disabled endpoint: the delivery waits in its queue.
    drain(dispatcher)
    assert receiver.requests == []
    assert {d.status for d in deliveries_of(db, endpoint["id"])} == {"pending"}
    time.sleep(max(0.0, cached_at + ttl + 0.1 - time.monotonic()))
    assert queued_for_new_invoice(hook_api, db) == set()


def delete_elsewhere(db: Database, endpoint_id: str) -> None:
    """Delete an endpoint as another process would (what `DELETE` does, with no mapper event
    here, so this process's cache keeps naming it)."""
    now = clock.now()
    with db.write() as session:
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(enabled=False, deleted_at=now, updated_at=now)
        )


def test_a_cached_endpoint_deleted_elsewhere_fails_no_write_and_gets_nothing(
    hook_api: Api,
    receiver: Receiver,
    dispatcher: Dispatcher,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(endpoints_cache, "ttl", 600.0)  # stale for the whole test
    merchant_id = hook_api.merchant.id
    kept = create_endpoint(hook_api, receiver.url)
    gone = create_endpoint(hook_api, receiver.url)
    assert queued_for_new_invoice(hook_api, db) == {kept["id"], gone["id"]}
    delete_elsewhere(db, gone["id"])
    assert deliveries_of(db, gone["id"]) == []
    assert sorted(cached_ids(merchant_id)) == sorted([kept["id"], gone["id"]])  # stale
    # The next writes succeed: an event recorded in a unit of work, an invoice created (the
    # group-committed hot path) and cancelled through the API. Each queues, from the stale
    # list, a delivery for the deleted endpoint too: its row is still there for the key.
    with db.write() as session:
        recorded = record(session, merchant_id)
    assert queued_for(db, recorded.id) == {kept["id"], gone["id"]}
    invoice = hook_api.create_invoice()
    assert queued_for(db, created_event(db, invoice["id"])) == {kept["id"], gone["id"]}
    cancelled = hook_api.post(f"/v1/invoices/{invoice['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    stale = deliveries_of(db, gone["id"])
    assert [d.event_type for d in stale] == [
        "invoice.created",
        "invoice.created",
        "invoice.cancelled",
    ]
    assert sorted(cached_ids(merchant_id)) == sorted([kept["id"], gone["id"]])  # still stale
    # The API shows none of them: the endpoint and its log are gone.
    listed = hook_api.get("/v1/webhook_deliveries", params={"endpoint_id": gone["id"]})
    assert listed.status_code == 200 and listed.json()["data"] == []
    assert {d["endpoint_id"] for d in hook_api.get("/v1/webhook_deliveries").json()["data"]} == {
        kept["id"]
    }
    for delivery in stale:
        shown = hook_api.get(f"/v1/webhook_deliveries/{delivery.id}")
        assert shown.status_code == 404
        assert shown.json()["code"] == "webhook_delivery_not_found"
        redelivered = hook_api.post(f"/v1/webhook_deliveries/{delivery.id}/redeliver")
        assert redelivered.status_code == 404
    # The dispatcher sends the kept endpoint's deliveries, never the deleted one's, and
    # purges those.
    sent = drain(dispatcher)
    kept_deliveries = deliveries_of(db, kept["id"])
    assert sent == len(kept_deliveries) == 4
    assert sorted(receiver.ids()) == sorted(d.id for d in kept_deliveries)
    assert {d.status for d in kept_deliveries} == {"succeeded"}
    assert deliveries_of(db, gone["id"]) == []
    assert all(attempts_of(db, d.id) == [] for d in stale)


def test_the_purge_leaves_live_endpoints_deliveries_alone(
    hook_api: Api, dispatcher: Dispatcher, db: Database
) -> None:
    paused = create_endpoint(hook_api, URL)
    gone = create_endpoint(hook_api, URL)
    with db.write() as session:
        event = record(session, hook_api.merchant.id)
    assert queued_for(db, event.id) == {paused["id"], gone["id"]}
    hook_api.patch(f"/v1/webhook_endpoints/{paused['id']}", json={"enabled": False})
    delete_elsewhere(db, gone["id"])
    with db.write() as session:  # as a stale process would, after the delete
        session.add(new_delivery(event, gone["id"]))
    assert len(deliveries_of(db, gone["id"])) == 1
    assert dispatcher.purge_deleted() == 1
    assert deliveries_of(db, gone["id"]) == []
    [waiting] = deliveries_of(db, paused["id"])  # a paused endpoint keeps its queue
    assert waiting.status == "pending"
    assert dispatcher.purge_deleted() == 0


@pytest.mark.slow
def test_another_process_sees_a_new_endpoint_within_the_ttl(
    hook_api: Api, live_server: LiveServer, db: Database
) -> None:
    headers = {"Authorization": f"Bearer {hook_api.merchant.test_key}"}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=30) as other:

        def create_there() -> set[str]:
            response = other.post("/v1/invoices", json={"amount": 500, "currency": "EUR"})
            assert response.status_code == 201, response.text
            return queued_for(db, created_event(db, response.json()["id"]))

        assert create_there() == set()  # the other process caches "no endpoints"
        cached_there = time.monotonic()
        endpoint = create_endpoint(hook_api, URL)  # in this process
        assert queued_for_new_invoice(hook_api, db) == {endpoint["id"]}  # here: at once
        time.sleep(max(0.0, cached_there + endpoints_cache.ttl + 0.3 - time.monotonic()))
        assert create_there() == {endpoint["id"]}  # there: once the ttl has run out


# -- 5. tenants and modes ---------------------------------------------------------------------


def test_cached_endpoints_never_serve_another_merchant_or_mode(
    hook_api: Api, other_api: Api, db: Database
) -> None:
    merchant_id = hook_api.merchant.id
    test_endpoint = create_endpoint(hook_api, URL)
    assert queued_for_new_invoice(hook_api, db) == {test_endpoint["id"]}
    assert cached_ids(merchant_id) == [test_endpoint["id"]]
    # Another merchant and the live mode have no endpoint, with this one's cached.
    assert queued_for_new_invoice(other_api, db) == set()
    assert queued_for_new_invoice(hook_api.as_live(), db) == set()
    assert cached(other_api.merchant.id) == ()
    assert cached(merchant_id, livemode=True) == ()
    # Theirs, added now, go to them alone; this merchant's test mode keeps its entry.
    other_endpoint = create_endpoint(other_api, URL)
    live_endpoint = create_endpoint(hook_api.as_live(), URL)
    assert cached_ids(merchant_id) == [test_endpoint["id"]]
    assert queued_for_new_invoice(other_api, db) == {other_endpoint["id"]}
    assert queued_for_new_invoice(hook_api.as_live(), db) == {live_endpoint["id"]}
    assert queued_for_new_invoice(hook_api, db) == {test_endpoint["id"]}
