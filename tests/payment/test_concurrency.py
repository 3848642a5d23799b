"""Twenty concurrent pay requests for one invoice against a real server: exactly one succeeds,
the others get 409 invoice_not_payable, and nothing is paid that was not captured."""

import sqlite3
import threading
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from quittance.db.uow import Database
from quittance.models import Invoice
from quittance.providers.sandbox import SandboxGateway
from tests.conftest import LiveServer
from tests.factories import Api, MerchantFactory
from tests.payment.helpers import (
    BANK_TRANSFER,
    SUCCEEDS,
    card,
    charge_count,
    events,
    kinds,
    payments_of,
    set_routes,
)

N = 20


def _race(server: LiveServer, key: str, invoice_id: str, methods: list[Any]) -> list[
    httpx.Response
]:  # fmt: skip
    barrier = threading.Barrier(len(methods))
    responses: list[httpx.Response] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def send(method: Any) -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                barrier.wait()
                response = client.post(
                    f"/v1/invoices/{invoice_id}/pay", json={"payment_method": method},
                    headers={"Authorization": f"Bearer {key}"},
                )  # fmt: skip
            with lock:
                responses.append(response)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=send, args=(m,)) for m in methods]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(responses) == len(methods)
    return responses


def _captured(sandbox_path: str, invoice_payments: list[str]) -> int:
    if not invoice_payments:
        return 0
    with sqlite3.connect(sandbox_path, timeout=30) as connection:
        marks = ",".join("?" * len(invoice_payments))
        row = connection.execute(
            f"SELECT coalesce(sum(amount_captured), 0) FROM charges WHERE payment_id IN ({marks})",
            invoice_payments,
        ).fetchone()
        return int(row[0])


class Watch:
    """Samples the invoice during the race: amount_paid must never exceed what was captured."""

    def __init__(self, db: Database, sandbox_path: str, invoice_id: str) -> None:
        self.db, self.path, self.invoice_id = db, sandbox_path, invoice_id
        self.stop = threading.Event()
        self.samples: list[tuple[int, int]] = []
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.stop.is_set():
            with self.db.read() as session:
                paid = session.scalar(
                    select(Invoice.amount_paid).where(Invoice.id == self.invoice_id)
                )
            ids = [p.id for p in payments_of(self.db, self.invoice_id)]
            self.samples.append((int(paid or 0), _captured(self.path, ids)))
            time.sleep(0.01)

    def __enter__(self) -> "Watch":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["card", "slow-card", "mixed"])
def test_twenty_concurrent_pays_one_succeeds(
    pay_server: LiveServer, merchants: MerchantFactory, db: Database, sandbox_path: str,
    gateway: SandboxGateway, method: str,
) -> None:  # fmt: skip
    merchant = merchants.create()
    if method == "slow-card":  # every other request arrives while the provider is busy
        set_routes(db, merchant.id, "card", {"delay_ms": 300})
    http = httpx.Client(base_url=pay_server.url, timeout=60)
    api = Api(http, merchant)  # type: ignore[arg-type]
    created = api.create_invoice(amount=5000, currency="EUR")
    methods = (
        [card(SUCCEEDS) if i % 2 else BANK_TRANSFER for i in range(N)]
        if method == "mixed"
        else [card(SUCCEEDS)] * N
    )
    charges = charge_count(sandbox_path)
    with Watch(db, sandbox_path, created["id"]) as watch:
        responses = _race(pay_server, merchant.test_key, created["id"], methods)
    assert watch.samples
    assert all(paid <= captured for paid, captured in watch.samples), watch.samples

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * (N - 1), [r.text for r in responses if r.status_code >= 500]
    (winner,) = [r.json() for r in responses if r.status_code == 200]
    for loser in (r for r in responses if r.status_code == 409):
        body = loser.json()
        assert body["code"] == "invoice_not_payable", body
        assert body["invoice_status"] in ("processing", "process_pending", "processed"), body
    (row,) = payments_of(db, created["id"])
    assert row.id == winner["id"]
    assert charge_count(sandbox_path) == charges + 1
    charge = gateway.charges(row.id)
    assert charge is not None
    final = api.get(f"/v1/invoices/{created['id']}").json()
    assert final["amount_paid"] <= charge["amount_captured"]
    assert final["amount_paid"] == charge["amount_captured"]
    if winner["method"] == "card":
        assert (winner["status"], final["status"], final["amount_paid"]) == (
            "succeeded", "processed", 5000,
        )  # fmt: skip
    else:
        assert (winner["status"], final["status"], final["amount_paid"]) == (
            "pending", "process_pending", 0,
        )  # fmt: skip
    history = kinds(events(api, created["id"]))
    assert history.count("invoice.processing") == 1
    assert history.count("payment.created") == 1
    http.close()
