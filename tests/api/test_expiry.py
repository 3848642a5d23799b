"""Expiry after the lifetime: the test helper, expiry on read, and the worker."""

from datetime import timedelta
from typing import Any

from quittance import clock
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.jobs.worker import Worker
from quittance.models import Invoice
from tests.api.helpers import assert_problem, ids, ts, unchanged
from tests.factories import Api, snapshot


def _history(api: Api, invoice_id: str) -> list[tuple[str, str | None, str | None, str | None]]:
    events = api.get(f"/v1/invoices/{invoice_id}/events").json()["data"]
    return [(e["type"], e["previous_status"], e["status"], e["trigger"]) for e in events]


CREATED_THEN_EXPIRED = [
    ("invoice.created", None, "created", "create"),
    ("invoice.expired", "created", "expired", "expire"),
]


def _overdue(db: Database, invoice_id: str, ago: timedelta = timedelta(seconds=1)) -> None:
    """Move an invoice's expiry into the past, directly in the database."""
    with db.write() as session:
        invoice = session.get(Invoice, invoice_id)
        assert invoice is not None
        invoice.expires_at = clock.now() - ago


def test_expire_helper(api: Api) -> None:
    invoice = api.create_invoice()
    before = clock.now()
    response = api.post(f"/v1/test_helpers/invoices/{invoice['id']}/expire")
    after = clock.now()
    assert response.status_code == 200, response.text
    expired = response.json()
    assert expired["status"] == "expired"
    assert before <= ts(expired["expires_at"]) <= after
    assert ts(expired["updated_at"]) >= ts(expired["expires_at"])
    unchanged_fields = {
        k: v for k, v in expired.items() if k not in ("status", "expires_at", "updated_at")
    }
    assert unchanged_fields == {
        k: v for k, v in invoice.items() if k not in ("status", "expires_at", "updated_at")
    }
    assert api.get(f"/v1/invoices/{invoice['id']}").json() == expired
    assert _history(api, invoice["id"]) == CREATED_THEN_EXPIRED


def test_expire_helper_refuses_what_cannot_expire(api: Api, db: Database) -> None:
    expired = api.create_invoice()
    api.post(f"/v1/test_helpers/invoices/{expired['id']}/expire")
    draft = api.create_invoice(status="draft")
    cancelled = api.create_invoice()
    api.post(f"/v1/invoices/{cancelled['id']}/cancel")
    for invoice, status in ((expired, "expired"), (draft, "draft"), (cancelled, "cancelled")):
        with unchanged(db, api.merchant.id):
            response = api.post(f"/v1/test_helpers/invoices/{invoice['id']}/expire")
        problem = assert_problem(response, 409, "invoice_not_expirable")
        assert problem["invoice_status"] == status
    with unchanged(db, api.merchant.id):
        response = api.post("/v1/test_helpers/invoices/inv_01JD3Z7Q8W0000000000000000/expire")
    assert_problem(response, 404, "invoice_not_found")


def test_expire_helper_does_not_exist_in_live_mode(api: Api, db: Database) -> None:
    live_api = api.as_live()
    live = live_api.create_invoice()
    with unchanged(db, api.merchant.id):
        response = live_api.post(f"/v1/test_helpers/invoices/{live['id']}/expire")
        assert_problem(response, 404, "not_found")
        response = live_api.post(
            f"/v1/test_helpers/invoices/{live['id']}/expire", headers={"Idempotency-Key": "k1"}
        )
        assert_problem(response, 404, "not_found")
    assert live_api.get(f"/v1/invoices/{live['id']}").json() == live


def test_overdue_invoice_expires_when_read(api: Api, db: Database) -> None:
    invoice = api.create_invoice()
    still_due = api.create_invoice()
    _overdue(db, invoice["id"])
    _overdue(db, still_due["id"], ago=-timedelta(minutes=5))  # five minutes left

    fetched = api.get(f"/v1/invoices/{invoice['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["status"] == "expired"
    assert _history(api, invoice["id"]) == CREATED_THEN_EXPIRED
    # Reading again neither changes it nor writes a second event.
    assert api.get(f"/v1/invoices/{invoice['id']}").json() == fetched.json()
    assert _history(api, invoice["id"]) == CREATED_THEN_EXPIRED
    (event,) = api.get("/v1/events", params={"type": "invoice.expired"}).json()["data"]
    assert event["invoice_id"] == invoice["id"]
    assert event["data"]["object"]["status"] == "expired"

    assert api.get(f"/v1/invoices/{still_due['id']}").json()["status"] == "created"
    assert ids(api.get("/v1/invoices", params={"status": "created"})) == [still_due["id"]]
    assert ids(api.get("/v1/invoices", params={"status": "expired"})) == [invoice["id"]]


def test_overdue_invoice_never_listed_as_payable(api: Api, db: Database) -> None:
    first = api.create_invoice()
    second = api.create_invoice()
    third = api.create_invoice()
    _overdue(db, first["id"])
    _overdue(db, third["id"], ago=timedelta(days=3))

    # The first read after the lifetime passed is a filtered list: it already shows the truth.
    assert ids(api.get("/v1/invoices", params={"status": "created"})) == [second["id"]]
    listed = {i["id"]: i["status"] for i in api.get("/v1/invoices").json()["data"]}
    assert listed == {first["id"]: "expired", second["id"]: "created", third["id"]: "expired"}
    for invoice in (first, third):
        assert _history(api, invoice["id"]) == CREATED_THEN_EXPIRED
    assert _history(api, second["id"]) == CREATED_THEN_EXPIRED[:1]


def test_overdue_invoice_cannot_be_cancelled(api: Api, db: Database) -> None:
    invoice = api.create_invoice()
    _overdue(db, invoice["id"])
    response = api.post(f"/v1/invoices/{invoice['id']}/cancel")
    assert assert_problem(response, 409, "invoice_not_cancellable")["invoice_status"] == "expired"
    response = api.patch(f"/v1/invoices/{invoice['id']}", json={"status": "cancelled"})
    assert assert_problem(response, 409, "invoice_not_cancellable")["invoice_status"] == "expired"
    assert api.get(f"/v1/invoices/{invoice['id']}").json()["status"] == "expired"
    assert _history(api, invoice["id"]) == CREATED_THEN_EXPIRED


def test_worker_expires_overdue_invoices(api: Api, db: Database, settings: Settings) -> None:
    overdue = [api.create_invoice(), api.as_live().create_invoice()]
    due_later = api.create_invoice()
    draft = api.create_invoice(status="draft")
    cancelled = api.create_invoice()
    api.post(f"/v1/invoices/{cancelled['id']}/cancel")
    for invoice in overdue:
        _overdue(db, invoice["id"])
    _overdue(db, cancelled["id"])  # not expirable: stays cancelled
    before = snapshot(db, api.merchant.id)

    done = Worker(db, settings).run_once()
    assert done["expire_invoices"] >= 2

    after = snapshot(db, api.merchant.id)
    status_before = {row["id"]: row["status"] for row in before["invoices"]}
    status_after = {row["id"]: row["status"] for row in after["invoices"]}
    assert status_after == {
        **status_before,
        overdue[0]["id"]: "expired",
        overdue[1]["id"]: "expired",
    }
    assert status_after[due_later["id"]] == "created"
    assert status_after[draft["id"]] == "draft"
    assert status_after[cancelled["id"]] == "cancelled"
    assert after["events"] == before["events"] + 2
    assert _history(api, overdue[0]["id"]) == CREATED_THEN_EXPIRED
    live_events = api.as_live().get(f"/v1/invoices/{overdue[1]['id']}/events").json()["data"]
    assert [e["type"] for e in live_events] == ["invoice.created", "invoice.expired"]

    # Nothing is left to do: a second round expires nothing and writes nothing.
    again = Worker(db, settings).run_once()
    assert again["expire_invoices"] == 0
    assert snapshot(db, api.merchant.id) == after


def test_expired_invoice_keeps_amounts(api: Api) -> None:
    invoice = api.create_invoice(amount=4200, currency="JPY")
    expired: dict[str, Any] = api.post(f"/v1/test_helpers/invoices/{invoice['id']}/expire").json()
    assert (expired["amount"], expired["amount_due"], expired["amount_paid"]) == (4200, 4200, 0)
    assert expired["paid_late"] is False
