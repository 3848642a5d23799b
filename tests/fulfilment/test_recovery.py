"""Interrupted releases and captures: nothing is lost, nothing is counted twice.

Every capture and release carries the delivery's or cancellation's id as its operation id, so
the worker can ask the provider what became of it, and send it again under the same id when the
provider never saw it.
"""

import time
from collections.abc import Callable
from typing import Any

import pytest

from quittance.config import Settings
from quittance.db.uow import Database
from quittance.fulfilment import service
from quittance.fulfilment.schemas import CancellationCreate, DeliveryCreate
from quittance.fulfilment.tasks import recover_pending
from quittance.providers.base import PaymentResult, ProviderError
from quittance.providers.sandbox import SandboxGateway
from tests.factories import Api
from tests.fulfilment.helpers import (
    TOTAL,
    assert_verified,
    authorised,
    cancel,
    cancelled,
    deliver,
    delivered,
    full_state,
    kinds_after_payment,
    ledger,
    quantities,
    sandbox_operations,
    take,
)
from tests.payment.helpers import RECOVERY_AFTER, caller, invoice, payment, problem, run_worker

Call = Callable[[SandboxGateway, str, int, str], PaymentResult]


def timing_out(original: Call, *, reached: bool) -> Call:
    """A provider call whose answer is lost; `reached`: the provider did act on it first."""

    def call(self: SandboxGateway, payment_id: str, amount: int, operation_id: str
             ) -> PaymentResult:  # fmt: skip
        if reached:
            original(self, payment_id, amount, operation_id)
        raise ProviderError("The sandbox did not answer in time.", code="provider_timeout")

    return call


def recover(db: Database, settings: Settings) -> int:
    time.sleep(RECOVERY_AFTER + 0.1)
    return recover_pending(db, settings)


def test_a_capture_whose_answer_was_lost_is_recovered(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    inv = authorised(papi)
    with monkeypatch.context() as patch:
        patch.setattr(SandboxGateway, "capture",
                      timing_out(SandboxGateway.capture, reached=True))  # fmt: skip
        document = delivered(papi, inv["id"], {"line_items": take(inv, 2)})
    assert (document["status"], document["amount"]) == ("pending", 2380)
    after = document["invoice"]
    assert (after["amount_paid"], after["amount_authorized"]) == (0, TOTAL)
    assert quantities(after) == [(0, 0, 0), (0, 0, 0), (0, 0, 0)]
    assert ledger(papi, inv["id"]) == []
    charge = gateway.charges(inv["payment"])
    assert charge is not None and charge["amount_captured"] == 2380  # the provider did capture
    # While the answer is unknown, nothing else may be delivered or cancelled.
    before = full_state(db, papi.merchant.id)
    body = problem(deliver(papi, inv["id"]), 409, "fulfilment_pending")
    assert body["delivery"] == document["id"]
    problem(cancel(papi, inv["id"]), 409, "fulfilment_pending")
    # Too early for the worker: the call may still be under way.
    assert recover_pending(db, pay_settings) == 0
    assert full_state(db, papi.merchant.id) == before

    assert recover(db, pay_settings) == 1
    settled = papi.get(f"/v1/invoices/{inv['id']}/deliveries").json()["data"][0]
    assert (settled["id"], settled["status"]) == (document["id"], "succeeded")
    now = invoice(papi, inv["id"])
    assert (now["amount_paid"], now["amount_authorized"]) == (2380, TOTAL - 2380)
    assert quantities(now) == [(0, 2, 0), (0, 0, 0), (0, 0, 0)]
    assert payment(papi, inv["payment"])["amount_received"] == 2380
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["capture"]
    assert kinds_after_payment(papi, inv["id"]) == [
        "delivery.created", "delivery.pending", "invoice.payment_received", "payment.updated",
        "delivery.succeeded",
    ]  # fmt: skip
    assert recover(db, pay_settings) == 0  # settled once
    charge = gateway.charges(inv["payment"])
    assert charge is not None and charge["amount_captured"] == 2380  # not captured again
    assert sandbox_operations(gateway, inv["payment"]) == [(document["id"], "capture", 2380)]
    rest = delivered(papi, inv["id"])
    assert (rest["status"], rest["invoice"]["amount_paid"]) == ("succeeded", TOTAL)
    assert_verified(db, papi.merchant.id)


def start(db: Database, api: Api, settings: Settings, kind: str, invoice_id: str,
          body: Any = None) -> service.ProviderCall:  # fmt: skip
    """Step 1 of a cancellation or delivery, as its request runs it (committed)."""
    with db.write() as session:
        if kind == "delivery":
            body = DeliveryCreate.model_validate(body) if body is not None else None
            return service.start_delivery(session, caller(api.merchant.id), invoice_id, body,
                                          settings)  # fmt: skip
        body = CancellationCreate.model_validate(body) if body is not None else None
        _, call = service.start_cancellation(session, caller(api.merchant.id), invoice_id, body,
                                             settings)  # fmt: skip
        assert call is not None
        return call


def settle_with_worker(db: Database, settings: Settings) -> None:
    """Run the whole worker once the operation is old enough; it settles exactly one."""
    assert run_worker(db, settings, after=RECOVERY_AFTER + 0.1)["settle_fulfilment"] == 1


@pytest.mark.parametrize("reached", [True, False], ids=["answer-lost", "never-sent"])
def test_a_delivery_interrupted_by_a_crash_captures_once(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway, reached: bool,
) -> None:  # fmt: skip
    inv = authorised(papi)
    call = start(db, papi, pay_settings, "delivery", inv["id"], {"line_items": take(inv, 1, 1)})
    assert call.row_id.startswith("dlv_") and call.amount == 1190 + 357
    if reached:
        # The provider captures; the process dies before the answer is recorded.
        assert service.call_provider(call, pay_settings).status == service.SUCCEEDED
    expected = [(call.row_id, "capture", 1547)] if reached else []
    assert sandbox_operations(gateway, inv["payment"]) == expected
    assert invoice(papi, inv["id"])["amount_paid"] == 0
    problem(deliver(papi, inv["id"]), 409, "fulfilment_pending")

    settle_with_worker(db, pay_settings)
    rows = papi.get(f"/v1/invoices/{inv['id']}/deliveries").json()["data"]
    assert [(r["id"], r["status"]) for r in rows] == [(call.row_id, "succeeded")]
    now = invoice(papi, inv["id"])
    assert (now["amount_paid"], now["amount_authorized"]) == (1547, TOTAL - 1547)
    assert quantities(now) == [(0, 1, 0), (0, 1, 0), (0, 0, 0)]
    assert payment(papi, inv["payment"])["amount_received"] == 1547
    charge = gateway.charges(inv["payment"])
    assert charge is not None and charge["amount_captured"] == 1547  # captured once
    assert sandbox_operations(gateway, inv["payment"]) == [(call.row_id, "capture", 1547)]
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["capture"]  # posted once
    kinds = kinds_after_payment(papi, inv["id"])
    assert kinds == ["delivery.created", "invoice.payment_received", "payment.updated",
                     "delivery.succeeded"]  # fmt: skip
    assert_verified(db, papi.merchant.id)
    # The original call arriving late is answered from the sandbox's record: nothing moves.
    service.call_provider(call, pay_settings)
    assert recover(db, pay_settings) == 0
    charge = gateway.charges(inv["payment"])
    assert charge is not None and charge["amount_captured"] == 1547
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["capture"]
    rest = delivered(papi, inv["id"])
    assert (rest["status"], rest["invoice"]["amount_paid"]) == ("succeeded", TOTAL)
    assert_verified(db, papi.merchant.id)


@pytest.mark.parametrize("reached", [True, False], ids=["answer-lost", "never-sent"])
def test_a_partial_cancellation_interrupted_by_a_crash_releases_once(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway, reached: bool,
) -> None:  # fmt: skip
    inv = authorised(papi)
    call = start(db, papi, pay_settings, "cancellation", inv["id"], {"line_items": take(inv, 0, 1)})
    assert call.row_id.startswith("can_") and call.amount == 357
    if reached:
        assert service.call_provider(call, pay_settings).status == service.SUCCEEDED
    problem(cancel(papi, inv["id"]), 409, "fulfilment_pending")

    settle_with_worker(db, pay_settings)
    rows = papi.get(f"/v1/invoices/{inv['id']}/cancellations").json()["data"]
    assert [(r["id"], r["status"]) for r in rows] == [(call.row_id, "succeeded")]
    now = invoice(papi, inv["id"])
    assert (now["status"], now["amount"], now["amount_cancelled"]) == (
        "processed", TOTAL - 357, 357,
    )  # fmt: skip
    assert now["amount_authorized"] == TOTAL - 357
    assert quantities(now) == [(0, 0, 0), (1, 0, 0), (0, 0, 0)]
    assert payment(papi, inv["payment"])["amount_authorized"] == TOTAL - 357
    charge = gateway.charges(inv["payment"])
    assert charge is not None
    assert (charge["state"], charge["amount_cancelled"], charge["amount_captured"]) == (
        "authorized", 357, 0,
    )  # fmt: skip
    assert sandbox_operations(gateway, inv["payment"]) == [(call.row_id, "cancel", 357)]
    assert ledger(papi, inv["id"]) == []  # releasing moves no money
    assert kinds_after_payment(papi, inv["id"]) == [
        "cancellation.created", "invoice.partially_cancelled", "payment.updated",
        "cancellation.succeeded",
    ]  # fmt: skip
    assert_verified(db, papi.merchant.id)
    assert recover(db, pay_settings) == 0
    # The rest is delivered in full: the books balance with the released part left out.
    rest = delivered(papi, inv["id"])
    assert (rest["status"], rest["invoice"]["amount_paid"]) == ("succeeded", TOTAL - 357)
    charge = gateway.charges(inv["payment"])
    assert charge is not None
    assert (charge["amount_captured"], charge["amount_cancelled"]) == (TOTAL - 357, 357)
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["capture"]
    assert_verified(db, papi.merchant.id)


@pytest.mark.parametrize("reached", [True, False], ids=["answer-lost", "never-sent"])
def test_a_full_release_whose_answer_was_lost(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway,
    monkeypatch: pytest.MonkeyPatch, reached: bool,
) -> None:  # fmt: skip
    inv = authorised(papi)
    with monkeypatch.context() as patch:
        patch.setattr(SandboxGateway, "cancel",
                      timing_out(SandboxGateway.cancel, reached=reached))  # fmt: skip
        document = cancelled(papi, inv["id"])
    assert document["status"] == "pending"
    assert (document["invoice"]["status"], document["invoice"]["amount_authorized"]) == (
        "processed", TOTAL,
    )  # fmt: skip
    problem(deliver(papi, inv["id"]), 409, "fulfilment_pending")
    assert recover(db, pay_settings) == 1
    settled = papi.get(f"/v1/invoices/{inv['id']}/cancellations").json()["data"][0]
    assert settled["status"] == "succeeded"
    now = invoice(papi, inv["id"])
    assert (now["status"], now["amount_authorized"]) == ("cancelled", 0)
    assert payment(papi, inv["payment"])["status"] == "cancelled"
    assert sandbox_operations(gateway, inv["payment"]) == [(document["id"], "cancel", TOTAL)]
    assert ledger(papi, inv["id"]) == []
    assert_verified(db, papi.merchant.id)


def test_a_partial_release_whose_answer_was_lost_is_recovered(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    inv = authorised(papi)
    with monkeypatch.context() as patch:
        patch.setattr(SandboxGateway, "cancel",
                      timing_out(SandboxGateway.cancel, reached=True))  # fmt: skip
        document = cancelled(papi, inv["id"], {"amount": 100})
    assert document["status"] == "pending"
    problem(cancel(papi, inv["id"]), 409, "fulfilment_pending")
    assert recover(db, pay_settings) == 1
    now = invoice(papi, inv["id"])
    assert (now["status"], now["amount"], now["amount_cancelled"]) == ("processed", TOTAL - 100,
                                                                        100)  # fmt: skip
    assert sandbox_operations(gateway, inv["payment"]) == [(document["id"], "cancel", 100)]
    charge = gateway.charges(inv["payment"])
    assert charge is not None and charge["amount_cancelled"] == 100
    assert_verified(db, papi.merchant.id)


def test_a_resent_call_without_an_answer_stays_pending_until_one_comes(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    inv = authorised(papi)
    call = start(db, papi, pay_settings, "delivery", inv["id"])
    with monkeypatch.context() as patch:
        patch.setattr(SandboxGateway, "capture",
                      timing_out(SandboxGateway.capture, reached=False))  # fmt: skip
        before = full_state(db, papi.merchant.id)
        assert recover(db, pay_settings) == 0
        after = full_state(db, papi.merchant.id)
    # Only the check time moved: nothing else was recorded, nothing was captured.
    [row] = after["Delivery"]
    assert row["status"] == "pending" and row["updated_at"] > before["Delivery"][0]["updated_at"]
    assert {k: v for k, v in after.items() if k != "Delivery"} == {
        k: v for k, v in before.items() if k != "Delivery"
    }
    assert sandbox_operations(gateway, inv["payment"]) == []
    assert recover_pending(db, pay_settings) == 0  # not due again yet
    assert recover(db, pay_settings) == 1
    now = invoice(papi, inv["id"])
    assert (now["amount_paid"], now["amount_authorized"]) == (TOTAL, 0)
    assert sandbox_operations(gateway, inv["payment"]) == [(call.row_id, "capture", TOTAL)]
    assert [t["kind"] for t in ledger(papi, inv["id"])] == ["capture"]
    assert_verified(db, papi.merchant.id)


def test_a_resent_call_the_provider_refuses_fails_and_moves_nothing(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    inv = authorised(papi)
    call = start(db, papi, pay_settings, "delivery", inv["id"], {"amount": 1000})

    def refuse(self: SandboxGateway, payment_id: str, amount: int, operation_id: str) -> Any:
        raise ProviderError("The capture was refused.", code="invalid_request")

    with monkeypatch.context() as patch:
        patch.setattr(SandboxGateway, "capture", refuse)
        assert recover(db, pay_settings) == 1
    rows = papi.get(f"/v1/invoices/{inv['id']}/deliveries").json()["data"]
    assert [(r["id"], r["status"], r["error"]["code"]) for r in rows] == [
        (call.row_id, "failed", "invalid_request"),
    ]  # fmt: skip
    now = invoice(papi, inv["id"])
    assert (now["amount_paid"], now["amount_authorized"]) == (0, TOTAL)
    assert sandbox_operations(gateway, inv["payment"]) == []
    assert ledger(papi, inv["id"]) == []
    assert delivered(papi, inv["id"])["status"] == "succeeded"
    assert_verified(db, papi.merchant.id)


def test_a_refused_release_changes_nothing_but_the_cancellation(
    papi: Api, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = authorised(papi)

    def refuse(self: SandboxGateway, payment_id: str, amount: int, operation_id: str) -> Any:
        raise ProviderError("Nothing authorised to release.", code="invalid_request")

    with monkeypatch.context() as patch:
        patch.setattr(SandboxGateway, "cancel", refuse)
        document = cancelled(papi, inv["id"], {"line_items": take(inv, 1)})
    assert (document["status"], document["error"]["code"]) == ("failed", "invalid_request")
    after = document["invoice"]
    assert (after["status"], after["amount"], after["amount_cancelled"]) == ("processed", TOTAL, 0)
    assert quantities(after) == [(0, 0, 0), (0, 0, 0), (0, 0, 0)]
    assert payment(papi, inv["payment"])["amount_authorized"] == TOTAL
    assert kinds_after_payment(papi, inv["id"]) == ["cancellation.created", "cancellation.failed"]
    assert cancelled(papi, inv["id"], {"line_items": take(inv, 1)})["status"] == "succeeded"
    assert_verified(db, papi.merchant.id)
