"""The outbox: events and their deliveries are committed with the change, or not at all."""

import pytest
from sqlalchemy import func, select

from quittance.db.uow import Database
from quittance.domain.ids import new_ordered_id
from quittance.event import service as events
from quittance.models import Event, WebhookDelivery
from quittance.webhook.outbox import matches
from tests.factories import Api, snapshot
from tests.webhook.conftest import create_endpoint, deliveries_of
from tests.webhook.receiver import Receiver


def delivery_count(db: Database, merchant_id: str) -> int:
    with db.read() as session:
        return int(
            session.scalar(select(func.count()).where(WebhookDelivery.merchant_id == merchant_id))
            or 0
        )


def test_matches() -> None:
    assert matches(["*"], "invoice.created")
    assert matches(["invoice.*"], "invoice.created")
    assert matches(["invoice.created"], "invoice.created")
    assert not matches(["invoice.paid"], "invoice.created")
    assert not matches(["invoice.*"], "invoices.created")
    assert not matches(["refund.*"], "invoice.created")


def test_delivery_ids_keep_the_order_they_were_made_in() -> None:
    ids = [new_ordered_id("whd") for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("whd_") and len(i) == 30 for i in ids)


def test_each_event_is_queued_for_each_matching_endpoint(
    hook_api: Api, receiver: Receiver, db: Database
) -> None:
    every = create_endpoint(hook_api, receiver.url)
    invoices = create_endpoint(hook_api, receiver.url, enabled_events=["invoice.*"])
    cancelled = create_endpoint(hook_api, receiver.url, enabled_events=["invoice.cancelled"])
    paused = create_endpoint(hook_api, receiver.url)
    hook_api.patch(f"/v1/webhook_endpoints/{paused['id']}", json={"enabled": False})
    live = create_endpoint(hook_api.as_live(), receiver.url)
    invoice = hook_api.create_invoice()
    cancel = hook_api.post(f"/v1/invoices/{invoice['id']}/cancel")
    assert cancel.status_code == 200
    with db.read() as session:
        event_ids = list(
            session.scalars(
                select(Event.id).where(Event.invoice_id == invoice["id"]).order_by(Event.id)
            )
        )
    assert len(event_ids) == 2
    assert [d.event_type for d in deliveries_of(db, every["id"])] == [
        "invoice.created",
        "invoice.cancelled",
    ]
    assert [d.event_id for d in deliveries_of(db, invoices["id"])] == event_ids
    assert [d.event_type for d in deliveries_of(db, cancelled["id"])] == ["invoice.cancelled"]
    assert deliveries_of(db, paused["id"]) == []
    assert deliveries_of(db, live["id"]) == []
    for delivery in deliveries_of(db, every["id"]):
        assert delivery.status == "pending"
        assert delivery.merchant_id == hook_api.merchant.id
        assert delivery.livemode is False
        assert delivery.attempt_count == 0


def test_a_failing_change_writes_neither_event_nor_delivery(
    hook_api: Api, receiver: Receiver, db: Database
) -> None:
    create_endpoint(hook_api, receiver.url)
    invoice = hook_api.create_invoice()
    hook_api.post(f"/v1/invoices/{invoice['id']}/cancel")
    before = (snapshot(db, hook_api.merchant.id), delivery_count(db, hook_api.merchant.id))
    refused = hook_api.post(f"/v1/invoices/{invoice['id']}/cancel")
    assert refused.status_code == 409
    invalid = hook_api.post("/v1/invoices", json={"amount": -5, "currency": "EUR"})
    assert invalid.status_code == 422
    after = (snapshot(db, hook_api.merchant.id), delivery_count(db, hook_api.merchant.id))
    assert after == before


def test_an_event_rolled_back_takes_its_deliveries_with_it(
    hook_api: Api, receiver: Receiver, db: Database
) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    with pytest.raises(RuntimeError), db.write() as session:
        events.record(
            session,
            merchant_id=hook_api.merchant.id,
            livemode=False,
            type="invoice.created",
            data={},
        )
        session.flush()
        assert (
            session.scalar(
                select(func.count()).where(WebhookDelivery.endpoint_id == endpoint["id"])
            )
            == 1
        )
        raise RuntimeError("the change failed after the event was written")
    assert deliveries_of(db, endpoint["id"]) == []
    with db.read() as session:
        assert (
            session.scalar(select(func.count()).where(Event.merchant_id == hook_api.merchant.id))
            == 0
        )


def test_outbox_works_without_autoflush(hook_api: Api, receiver: Receiver, db: Database) -> None:
    endpoint = create_endpoint(hook_api, receiver.url)
    with db.write() as session, session.no_autoflush:
        for _ in range(3):
            events.record(
                session,
                merchant_id=hook_api.merchant.id,
                livemode=False,
                type="invoice.created",
                data={},
            )
    assert len(deliveries_of(db, endpoint["id"])) == 3
