"""Recovery points for refunds: the worker finishes refunds whose answer was never recorded,
sending a refund the provider never saw under its own id, so nothing is paid out twice."""

import sqlite3
import time
from typing import Any

from sqlalchemy import select

from quittance.config import Settings
from quittance.db.uow import Database
from quittance.models import Invoice, Refund
from quittance.providers.sandbox import SandboxGateway
from quittance.refund import service
from quittance.refund.schemas import RefundCreate
from tests.factories import Api
from tests.payment.helpers import RECOVERY_AFTER, caller, invoice, kinds, run_worker
from tests.refund.helpers import (
    assert_verified,
    ledger,
    paid_invoice,
    refund_events,
    refunded,
    status_chain,
    two_payments,
)


def _start(db: Database, settings: Settings, merchant_id: str, invoice_id: str,
           **body: Any) -> list[service.RefundCall]:  # fmt: skip
    """Recovery point 1 only: the refunds are recorded and committed; then the process dies."""
    with db.write() as session:
        return service.start_refund(session, caller(merchant_id), invoice_id,
                                    RefundCreate.model_validate(body), settings)  # fmt: skip


def _rows(db: Database, invoice_id: str) -> tuple[list[Refund], Invoice]:
    with db.read() as session:
        refunds = list(session.scalars(
            select(Refund).where(Refund.invoice_id == invoice_id).order_by(Refund.id)
        ))  # fmt: skip
        inv = session.get(Invoice, invoice_id)
        assert inv is not None
        return refunds, inv


def sandbox_refunds(sandbox_path: str, refund_ids: list[str]) -> list[dict[str, Any]]:
    with sqlite3.connect(sandbox_path, timeout=30) as connection:
        connection.row_factory = sqlite3.Row
        marks = ",".join("?" * len(refund_ids))
        rows = connection.execute(
            f"SELECT * FROM refunds WHERE refund_id IN ({marks})", refund_ids
        ).fetchall()
        return [dict(row) for row in rows]


def test_a_refund_the_provider_never_saw_is_sent_by_the_worker(
    papi: Api, db: Database, pay_settings: Settings, sandbox_path: str
) -> None:
    inv = paid_invoice(papi, 5000)
    started = time.monotonic()
    (call,) = _start(db, pay_settings, papi.merchant.id, inv["id"], amount=1500)
    (row,), stored = _rows(db, inv["id"])
    assert (row.status, stored.status, stored.amount_refunded) == ("pending", "refunding", 0)
    assert row.next_check_at is not None and row.next_check_at > row.created_at
    # A worker round before the recovery delay leaves it alone: the call may be in flight.
    run_worker(db, pay_settings)
    if time.monotonic() - started < RECOVERY_AFTER:  # (a very slow machine proves nothing)
        assert _rows(db, inv["id"])[0][0].status == "pending"
        assert sandbox_refunds(sandbox_path, [call.refund_id]) == []
    run_worker(db, pay_settings, after=RECOVERY_AFTER + 0.1)
    document = papi.get(f"/v1/refunds/{call.refund_id}").json()
    assert (document["status"], document["amount"]) == ("succeeded", 1500)
    after = document["invoice"]
    assert (after["status"], after["amount_refunded"]) == ("partially_refunded", 1500)
    (sent,) = sandbox_refunds(sandbox_path, [call.refund_id])
    assert (sent["amount"], sent["state"]) == (1500, "succeeded")
    assert document["provider_reference"] == sent["reference"]
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["refund", "capture"]
    assert status_chain(papi, inv["id"])[-2:] == [
        ("processed", "refunding", "refund_start"),
        ("refunding", "partially_refunded", "refund_partial"),
    ]
    # The original request's call arrives late: the provider answers from its record.
    late = service.call_provider(call, pay_settings)
    with db.write() as session:
        service.record_results(session, [call], [late], pay_settings)
    assert len(sandbox_refunds(sandbox_path, [call.refund_id])) == 1
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["refund", "capture"]
    assert refund_events(papi, inv["id"]) == [
        ("refund.created", "pending", 1500), ("refund.succeeded", "succeeded", 1500),
    ]  # fmt: skip
    run_worker(db, pay_settings)
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["refund", "capture"]
    assert_verified(db, papi.merchant.id)


def test_an_answer_lost_after_the_provider_call_is_recorded_by_the_worker(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway, sandbox_path: str
) -> None:
    inv = paid_invoice(papi, 5000)
    (call,) = _start(db, pay_settings, papi.merchant.id, inv["id"])
    result = service.call_provider(call, pay_settings)  # then the process dies
    run_worker(db, pay_settings, after=RECOVERY_AFTER + 0.1)
    document = papi.get(f"/v1/refunds/{call.refund_id}").json()
    assert (document["status"], document["provider_reference"]) == ("succeeded", result.reference)
    assert document["invoice"]["status"] == "refunded"
    assert len(sandbox_refunds(sandbox_path, [call.refund_id])) == 1
    charge = gateway.charges(call.payment_id)
    assert charge is not None and charge["amount_refunded"] == 5000
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["refund", "capture"]
    assert_verified(db, papi.merchant.id)


def test_a_split_refund_interrupted_is_finished_part_by_part(
    papi: Api, db: Database, pay_settings: Settings, sandbox_path: str
) -> None:
    inv = two_payments(papi, transfer=1901)  # the transfer's part stays pending at the sandbox
    calls = _start(db, pay_settings, papi.merchant.id, inv["id"])
    assert [c.amount for c in calls] == [3099, 1901]
    service.call_provider(calls[0], pay_settings)  # one call got through, then the crash
    run_worker(db, pay_settings, after=RECOVERY_AFTER + 0.1)
    (card_refund, bank_refund), stored = _rows(db, inv["id"])
    assert {card_refund.id, bank_refund.id} == {c.refund_id for c in calls}
    assert (card_refund.status, bank_refund.status) == ("succeeded", "pending")
    assert (stored.status, stored.amount_refunded) == ("refund_pending", 3099)
    assert len(sandbox_refunds(sandbox_path, [c.refund_id for c in calls])) == 2
    # The worker keeps asking about the pending one until the provider settles it.
    run_worker(db, pay_settings, after=0.4)
    assert _rows(db, inv["id"])[0][1].status == "pending"  # the transfer's part
    response = papi.post(f"/v1/test_helpers/refunds/{bank_refund.id}/settle")
    assert response.status_code == 200, response.text
    after = invoice(papi, inv["id"])
    assert (after["status"], after["amount_refunded"]) == ("refunded", 5000)
    assert status_chain(papi, inv["id"])[-3:] == [
        ("processed", "refunding", "refund_start"),
        ("refunding", "refund_pending", "refund_pending"),
        ("refund_pending", "refunded", "refund_succeeded"),
    ]
    assert [t["kind"] for t in ledger(papi, inv["id"])].count("refund") == 2
    assert_verified(db, papi.merchant.id)


def test_the_worker_settles_a_pending_refund_the_provider_paid_out(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway
) -> None:
    inv = paid_invoice(papi, 5000)
    pending = refunded(papi, inv["id"], amount=2001)
    assert pending["status"] == "pending"
    run_worker(db, pay_settings, after=0.4)
    assert papi.get(f"/v1/refunds/{pending['id']}").json()["status"] == "pending"
    gateway.resolve_refund(pending["id"], succeed=True)  # the provider pays out on its own
    assert run_worker(db, pay_settings, after=0.4)["settle_refunds"] >= 1
    document = papi.get(f"/v1/refunds/{pending['id']}").json()
    assert document["status"] == "succeeded"
    assert document["invoice"]["status"] == "partially_refunded"
    history = kinds([e for e in papi.get(f"/v1/invoices/{inv['id']}/events").json()["data"]])
    assert history.count("refund.succeeded") == 1
    assert_verified(db, papi.merchant.id)
