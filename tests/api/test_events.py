"""Events: one per status change, written with the change, listed per invoice and overall."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from quittance.db.uow import Database
from tests.api.helpers import EVENT_ID, assert_problem, ts, unchanged
from tests.factories import Api

EVENT_KEYS = {
    "id", "object", "type", "livemode", "created_at", "invoice_id", "previous_status", "status",
    "trigger", "data",
}  # fmt: skip


def _events(api: Api, invoice_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/invoices/{invoice_id}/events")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    assert body["url"] == f"/v1/invoices/{invoice_id}/events"
    assert body["has_more"] is False
    data: list[dict[str, Any]] = body["data"]
    return data


def _transitions(client: TestClient) -> dict[tuple[str | None, str, str], str]:
    table = client.get("/v1/invoice_statuses").json()
    return {(t["from"], t["to"], t["trigger"]): t["event"] for t in table["transitions"]}


def _assert_status_events(
    client: TestClient, events: list[dict[str, Any]], invoice: dict[str, Any]
) -> None:
    """Each event is one row of the transition table, and they chain from creation."""
    table = _transitions(client)
    previous: str | None = None
    for event in events:
        assert set(event) == EVENT_KEYS
        assert EVENT_ID.match(event["id"])
        assert event["object"] == "event"
        assert event["invoice_id"] == invoice["id"]
        assert event["livemode"] is invoice["livemode"]
        key = (event["previous_status"], event["status"], event["trigger"])
        assert key in table, key
        assert table[key] == event["type"]
        assert event["previous_status"] == previous
        previous = event["status"]
        assert event["data"]["object"]["id"] == invoice["id"]
        assert event["data"]["object"]["status"] == event["status"]
        assert ts(event["created_at"]) >= ts(invoice["created_at"])
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)


def test_created_invoice_has_one_event(api: Api, client: TestClient) -> None:
    invoice = api.create_invoice()
    events = _events(api, invoice["id"])
    assert [(e["type"], e["previous_status"], e["status"], e["trigger"]) for e in events] == [
        ("invoice.created", None, "created", "create"),
    ]
    assert events[0]["data"] == {"object": invoice}
    _assert_status_events(client, events, invoice)


def test_draft_finalize_cancel_history(api: Api, client: TestClient) -> None:
    invoice = api.create_invoice(status="draft")
    finalized = api.post(f"/v1/invoices/{invoice['id']}/finalize").json()
    cancelled = api.post(f"/v1/invoices/{invoice['id']}/cancel").json()
    events = _events(api, invoice["id"])
    assert [(e["type"], e["previous_status"], e["status"], e["trigger"]) for e in events] == [
        ("invoice.created", None, "draft", "create_draft"),
        ("invoice.finalized", "draft", "created", "finalize"),
        ("invoice.cancelled", "created", "cancelled", "cancel"),
    ]
    assert events[1]["data"]["object"] == finalized
    assert events[2]["data"]["object"] == cancelled
    _assert_status_events(client, events, invoice)


def test_expire_history(api: Api, client: TestClient) -> None:
    invoice = api.create_invoice()
    expired = api.post(f"/v1/test_helpers/invoices/{invoice['id']}/expire").json()
    events = _events(api, invoice["id"])
    assert [(e["type"], e["previous_status"], e["status"], e["trigger"]) for e in events] == [
        ("invoice.created", None, "created", "create"),
        ("invoice.expired", "created", "expired", "expire"),
    ]
    assert events[1]["data"]["object"] == expired
    _assert_status_events(client, events, invoice)


@pytest.mark.parametrize("how", ["post", "patch"])
def test_cancel_draft_history(api: Api, client: TestClient, how: str) -> None:
    invoice = api.create_invoice(status="draft")
    if how == "post":
        api.post(f"/v1/invoices/{invoice['id']}/cancel")
    else:
        api.patch(f"/v1/invoices/{invoice['id']}", json={"status": "cancelled"})
    events = _events(api, invoice["id"])
    assert [(e["type"], e["previous_status"], e["status"], e["trigger"]) for e in events] == [
        ("invoice.created", None, "draft", "create_draft"),
        ("invoice.cancelled", "draft", "cancelled", "cancel"),
    ]
    _assert_status_events(client, events, invoice)


def test_editing_a_draft_changes_no_status(api: Api, client: TestClient) -> None:
    invoice = api.create_invoice(status="draft")
    patched = api.patch(f"/v1/invoices/{invoice['id']}", json={"reference": "edited"}).json()
    api.post(f"/v1/invoices/{invoice['id']}/finalize")
    events = _events(api, invoice["id"])
    changes = [e for e in events if e["status"] is not None]
    assert [(e["type"], e["previous_status"], e["status"], e["trigger"]) for e in changes] == [
        ("invoice.created", None, "draft", "create_draft"),
        ("invoice.finalized", "draft", "created", "finalize"),
    ]
    _assert_status_events(client, changes, invoice)
    edits = [e for e in events if e["status"] is None]
    for edit in edits:  # an edit, if recorded, is not a status change
        assert edit["type"] == "invoice.updated"
        assert (edit["previous_status"], edit["trigger"]) == (None, None)
        assert edit["data"]["object"] == patched


def test_failed_requests_write_no_event(api: Api) -> None:
    invoice = api.create_invoice()
    api.post(f"/v1/invoices/{invoice['id']}/finalize")  # 409: not a draft
    api.patch(f"/v1/invoices/{invoice['id']}", json={"reference": "x"})  # 409
    api.patch(f"/v1/invoices/{invoice['id']}", json={"status": "created"})  # 422
    api.post(f"/v1/invoices/{invoice['id']}/cancel")
    api.post(f"/v1/invoices/{invoice['id']}/cancel")  # 409: already cancelled
    api.post(f"/v1/test_helpers/invoices/{invoice['id']}/expire")  # 409: not expirable
    events = _events(api, invoice["id"])
    assert [e["type"] for e in events] == ["invoice.created", "invoice.cancelled"]


def test_events_list_and_retrieve(api: Api) -> None:
    first = api.create_invoice()
    second = api.create_invoice(status="draft")
    api.post(f"/v1/invoices/{second['id']}/finalize")
    api.post(f"/v1/invoices/{first['id']}/cancel")

    response = api.get("/v1/events")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert body["url"] == "/v1/events"
    assert body["has_more"] is False
    assert body["next_cursor"] is None
    listed = body["data"]
    # Newest first.
    assert [(e["type"], e["invoice_id"]) for e in listed] == [
        ("invoice.cancelled", first["id"]),
        ("invoice.finalized", second["id"]),
        ("invoice.created", second["id"]),
        ("invoice.created", first["id"]),
    ]
    assert [e["id"] for e in listed] == sorted((e["id"] for e in listed), reverse=True)

    for event in listed:
        one = api.get(f"/v1/events/{event['id']}")
        assert one.status_code == 200
        assert one.json() == event

    per_invoice = _events(api, first["id"])
    assert per_invoice == [listed[3], listed[0]]


def test_events_filters_and_pagination(api: Api) -> None:
    invoices = [api.create_invoice() for _ in range(3)]
    for invoice in invoices:
        api.post(f"/v1/invoices/{invoice['id']}/cancel")

    cancelled = api.get("/v1/events", params={"type": "invoice.cancelled"}).json()["data"]
    assert [e["invoice_id"] for e in cancelled] == [i["id"] for i in reversed(invoices)]

    one = api.get("/v1/events", params={"invoice_id": invoices[1]["id"]}).json()["data"]
    assert [e["type"] for e in one] == ["invoice.cancelled", "invoice.created"]

    everything = api.get("/v1/events").json()["data"]
    assert len(everything) == 6
    page = api.get("/v1/events", params={"limit": 4}).json()
    assert page["data"] == everything[:4]
    assert page["has_more"] is True
    assert page["next_cursor"] == everything[3]["id"]
    rest = api.get("/v1/events", params={"limit": 4, "starting_after": page["next_cursor"]}).json()
    assert rest["data"] == everything[4:]
    assert rest["has_more"] is False


def test_invoice_events_paginate_oldest_first(api: Api) -> None:
    invoice = api.create_invoice(status="draft")
    api.post(f"/v1/invoices/{invoice['id']}/finalize")
    api.post(f"/v1/invoices/{invoice['id']}/cancel")
    page = api.get(f"/v1/invoices/{invoice['id']}/events", params={"limit": 2}).json()
    assert [e["type"] for e in page["data"]] == ["invoice.created", "invoice.finalized"]
    assert page["has_more"] is True
    assert page["next_cursor"] == page["data"][1]["id"]
    rest = api.get(
        f"/v1/invoices/{invoice['id']}/events",
        params={"limit": 2, "starting_after": page["next_cursor"]},
    ).json()
    assert [e["type"] for e in rest["data"]] == ["invoice.cancelled"]
    assert rest["has_more"] is False


def test_unknown_event_and_invoice(api: Api, db: Database) -> None:
    api.create_invoice()
    with unchanged(db, api.merchant.id):
        response = api.get("/v1/events/evt_01JD3Z7Q8W0000000000000000")
        assert_problem(response, 404, "event_not_found")
        response = api.get("/v1/invoices/inv_01JD3Z7Q8W0000000000000000/events")
        assert_problem(response, 404, "invoice_not_found")
        response = api.get("/v1/events", params={"starting_after": "nope"})
        assert_problem(response, 422, "invalid_format", field="starting_after")
