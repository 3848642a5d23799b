"""Concurrent deliveries and cancellations of one authorised invoice against a real server:
exactly one wins, the others are refused, and the provider captures or releases once."""

import threading

import httpx
import pytest

from quittance.db.uow import Database
from quittance.providers.sandbox import SandboxGateway
from tests.conftest import LiveServer
from tests.factories import Api
from tests.fulfilment.helpers import TOTAL, assert_verified, authorised, ledger

N = 8
REFUSALS = {"fulfilment_pending", "invoice_not_deliverable", "invoice_not_cancellable"}


@pytest.mark.slow
def test_one_of_many_concurrent_deliveries_and_cancellations_wins(
    papi: Api, db: Database, gateway: SandboxGateway, pay_server: LiveServer
) -> None:
    inv = authorised(papi)
    paths = [f"/v1/invoices/{inv['id']}/{'deliveries' if n % 2 else 'cancellations'}"
             for n in range(N)]  # fmt: skip
    barrier = threading.Barrier(N)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def send(path: str) -> None:
        with httpx.Client(base_url=pay_server.url, timeout=60) as client:
            barrier.wait()
            response = client.post(
                path, headers={"Authorization": f"Bearer {papi.merchant.test_key}"}
            )
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=send, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(responses) == N
    won = [r for r in responses if r.status_code == 201]
    assert len(won) == 1, [r.text for r in responses]
    assert won[0].json()["status"] == "succeeded"
    refused = [r.json()["code"] for r in responses if r.status_code != 201]
    assert all(r.status_code == 409 for r in responses if r.status_code != 201)
    assert set(refused) <= REFUSALS, refused
    charge = gateway.charges(inv["payment"])
    assert charge is not None
    assert charge["amount_captured"] + charge["amount_cancelled"] == TOTAL
    delivery = won[0].json()["object"] == "delivery"
    assert len(ledger(papi, inv["id"])) == (1 if delivery else 0)
    assert_verified(db, papi.merchant.id)
