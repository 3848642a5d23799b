"""Interrupted releases and captures: nothing is lost, nothing is counted twice."""

import time
from collections.abc import Callable
from typing import Any

import pytest

from quittance.config import Settings
from quittance.db.uow import Database
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
    take,
)
from tests.payment.helpers import RECOVERY_AFTER, invoice, payment, problem

Call = Callable[[SandboxGateway, str, int], PaymentResult]


def timing_out(original: Call, *, reached: bool) -> Call:
    """A provider call whose answer is lost; `reached`: the provider did act on it first."""

    def call(self: SandboxGateway, payment_id: str, amount: int) -> PaymentResult:
        if reached:
            original(self, payment_id, amount)
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
    rest = delivered(papi, inv["id"])
    assert (rest["status"], rest["invoice"]["amount_paid"]) == ("succeeded", TOTAL)
    assert_verified(db, papi.merchant.id)


def test_a_capture_that_never_reached_the_provider_fails(
    papi: Api, db: Database, pay_settings: Settings, gateway: SandboxGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    inv = authorised(papi)
    with monkeypatch.context() as patch:
        patch.setattr(SandboxGateway, "capture",
                      timing_out(SandboxGateway.capture, reached=False))  # fmt: skip
        document = delivered(papi, inv["id"])
    assert document["status"] == "pending"
    assert recover(db, pay_settings) == 1
    failed = papi.get(f"/v1/invoices/{inv['id']}/deliveries").json()["data"][0]
    assert (failed["status"], failed["error"]["code"]) == ("failed", "capture_not_confirmed")
    now = invoice(papi, inv["id"])
    assert (now["amount_paid"], now["amount_authorized"]) == (0, TOTAL)
    assert ledger(papi, inv["id"]) == []
    charge = gateway.charges(inv["payment"])
    assert charge is not None and charge["amount_captured"] == 0
    again = delivered(papi, inv["id"])
    assert (again["status"], again["invoice"]["amount_paid"]) == ("succeeded", TOTAL)
    assert_verified(db, papi.merchant.id)


@pytest.mark.parametrize(("reached", "status", "invoice_status"), [
    (True, "succeeded", "cancelled"), (False, "failed", "processed"),
])  # fmt: skip
def test_a_full_release_whose_answer_was_lost(
    papi: Api, db: Database, pay_settings: Settings, monkeypatch: pytest.MonkeyPatch,
    reached: bool, status: str, invoice_status: str,
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
    assert settled["status"] == status
    now = invoice(papi, inv["id"])
    assert now["status"] == invoice_status
    assert now["amount_authorized"] == (0 if reached else TOTAL)
    if not reached:
        assert settled["error"]["code"] == "release_not_confirmed"
        assert delivered(papi, inv["id"])["status"] == "succeeded"
    assert_verified(db, papi.merchant.id)


def test_a_partial_release_whose_answer_was_lost_stays_pending(
    papi: Api, db: Database, pay_settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    inv = authorised(papi)
    with monkeypatch.context() as patch:
        patch.setattr(SandboxGateway, "cancel",
                      timing_out(SandboxGateway.cancel, reached=True))  # fmt: skip
        document = cancelled(papi, inv["id"], {"amount": 100})
    assert document["status"] == "pending"
    before = full_state(db, papi.merchant.id)
    # The provider's status cannot tell a partial release: it is left for an operator.
    assert recover(db, pay_settings) == 0
    after = full_state(db, papi.merchant.id)
    assert [r["status"] for r in after["Cancellation"]] == ["pending"]
    assert {k: v for k, v in after.items() if k != "Cancellation"} == {
        k: v for k, v in before.items() if k != "Cancellation"
    }
    problem(cancel(papi, inv["id"]), 409, "fulfilment_pending")


def test_a_refused_release_changes_nothing_but_the_cancellation(
    papi: Api, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = authorised(papi)

    def refuse(self: SandboxGateway, payment_id: str, amount: int) -> Any:
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
