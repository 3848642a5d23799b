"""Idempotency-Key on pay: a retry replays the same payment; no second attempt or charge."""

import threading

import httpx
import pytest

from quittance.db.uow import Database
from quittance.jobs.worker import wait_for
from tests.conftest import LiveServer
from tests.factories import Api, MerchantFactory
from tests.payment.helpers import (
    BANK_TRANSFER,
    DECLINED,
    SUCCEEDS,
    card,
    charge_count,
    events,
    invoice,
    pay,
    payments_of,
    problem,
    set_routes,
    state,
)


def test_same_key_replays_the_same_payment(papi: Api, db: Database, sandbox_path: str) -> None:
    created = papi.create_invoice(amount=1999)
    charges = charge_count(sandbox_path)
    headers = {"Idempotency-Key": "pay-once"}
    first = pay(papi, created["id"], card(SUCCEEDS), headers=headers)
    assert first.status_code == 200, first.text
    history = events(papi, created["id"])
    second = pay(papi, created["id"], card(SUCCEEDS), headers=headers)
    assert second.status_code == 200
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(payments_of(db, created["id"])) == 1
    assert charge_count(sandbox_path) == charges + 1
    assert events(papi, created["id"]) == history
    assert invoice(papi, created["id"])["amount_paid"] == 1999


def test_a_replayed_decline_is_not_a_second_attempt(papi: Api, db: Database) -> None:
    created = papi.create_invoice(attempts_limit=2)
    headers = {"Idempotency-Key": "pay-decline"}
    first = pay(papi, created["id"], card(DECLINED), headers=headers)
    assert first.status_code == 200 and first.json()["status"] == "failed"
    for _ in range(3):
        again = pay(papi, created["id"], card(DECLINED), headers=headers)
        assert again.content == first.content
    inv = invoice(papi, created["id"])
    assert (inv["status"], inv["attempts_count"]) == ("created", 1)
    assert len(payments_of(db, created["id"])) == 1


def test_same_key_with_a_different_method_is_422(
    papi: Api, db: Database, sandbox_path: str
) -> None:
    created = papi.create_invoice()
    headers = {"Idempotency-Key": "pay-diff"}
    assert pay(papi, created["id"], BANK_TRANSFER, headers=headers).status_code == 200
    before = state(db, papi.merchant.id)
    charges = charge_count(sandbox_path)
    problem(pay(papi, created["id"], card(SUCCEEDS), headers=headers), 422,
            "idempotency_key_reused")  # fmt: skip
    assert state(db, papi.merchant.id) == before
    assert charge_count(sandbox_path) == charges


def test_a_new_key_after_success_is_a_new_request_and_409(papi: Api, db: Database) -> None:
    created = papi.create_invoice()
    assert (
        pay(papi, created["id"], card(SUCCEEDS), headers={"Idempotency-Key": "a"}).json()["status"]
        == "succeeded"
    )
    second = pay(papi, created["id"], card(SUCCEEDS), headers={"Idempotency-Key": "b"})
    body = problem(second, 409, "invoice_not_payable")
    assert body["invoice_status"] == "processed"
    replay = pay(papi, created["id"], card(SUCCEEDS), headers={"Idempotency-Key": "b"})
    assert replay.content == second.content
    assert len(payments_of(db, created["id"])) == 1


@pytest.mark.slow
def test_same_key_while_the_first_is_in_flight_is_409(
    pay_server: LiveServer, merchants: MerchantFactory, db: Database, sandbox_path: str
) -> None:
    merchant = merchants.create()
    set_routes(db, merchant.id, "card", {"delay_ms": 1500})
    headers = {"Authorization": f"Bearer {merchant.test_key}", "Idempotency-Key": "in-flight"}
    body = {"payment_method": card(SUCCEEDS)}
    with httpx.Client(base_url=pay_server.url, timeout=60) as client:
        created = client.post(
            "/v1/invoices",
            json={"amount": 1000, "currency": "EUR"},
            headers={"Authorization": headers["Authorization"]},
        ).json()
        path = f"/v1/invoices/{created['id']}/pay"
        charges = charge_count(sandbox_path)
        result: dict[str, httpx.Response] = {}
        thread = threading.Thread(
            target=lambda: result.setdefault("first", client.post(path, json=body,
                                                                  headers=headers))
        )  # fmt: skip
        thread.start()
        assert wait_for(lambda: bool(payments_of(db, created["id"])), 10)
        busy = client.post(path, json=body, headers=headers)
        problem(busy, 409, "idempotency_key_in_use")
        thread.join(timeout=30)
        first = result["first"]
        assert first.status_code == 200 and first.json()["status"] == "succeeded"
        replay = client.post(path, json=body, headers=headers)
        assert replay.content == first.content
    assert len(payments_of(db, created["id"])) == 1
    assert charge_count(sandbox_path) == charges + 1
