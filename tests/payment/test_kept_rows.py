"""On PostgreSQL a pay works from rows this process wrote itself, without reading them again,
as long as nobody wrote them since (their row versions): the attempt from the invoice its
create wrote (`invoice/kept.py`), the answer from the invoice and payment its attempt wrote.
Otherwise (and on SQLite) it reads them afresh. Either way the pay answers what the API then
shows, and a change made meanwhile is neither lost nor ignored."""

import threading
import time
from typing import Any

from sqlalchemy import text

from quittance.db.uow import Database
from tests.factories import Api
from tests.payment.helpers import (
    SUCCEEDS,
    card,
    invoice,
    paid,
    pay,
    payment,
    payments_of,
    problem,
    set_routes,
    state,
)


def test_the_pay_answers_the_rows_as_the_api_then_shows_them(papi: Api) -> None:
    created = papi.create_invoice(amount=2500, currency="EUR", metadata={"order": "1"})
    answer = paid(papi, created["id"], card(SUCCEEDS))
    assert (answer["status"], answer["invoice"]["status"]) == ("succeeded", "processed")
    shown = payment(papi, answer["id"])
    assert shown == answer  # the payment with its invoice, as stored
    assert invoice(papi, created["id"]) == answer["invoice"]


def test_rows_written_by_someone_else_during_the_provider_call_are_read_afresh(
    papi: Api, db: Database
) -> None:
    """The invoice changes while the provider answers: the answer does not write over it from
    what the attempt wrote, and carries the invoice as it now is."""
    set_routes(db, papi.merchant.id, "card", {"delay_ms": 600})
    created = papi.create_invoice(amount=2500, currency="EUR", metadata={"order": "1"})
    answers: list[dict[str, Any]] = []
    paying = threading.Thread(
        target=lambda: answers.append(paid(papi, created["id"], card(SUCCEEDS)))
    )
    paying.start()
    deadline = time.monotonic() + 10
    while not payments_of(db, created["id"]) and time.monotonic() < deadline:
        time.sleep(0.02)  # the attempt is committed: the provider is being called
    assert payments_of(db, created["id"]), "the attempt was not recorded"
    with db.write() as session:
        session.execute(
            text("UPDATE invoices SET metadata = :metadata WHERE id = :id"),
            {"metadata": '{"order": "2"}', "id": created["id"]},
        )
    paying.join(timeout=30)
    [answer] = answers
    assert (answer["status"], answer["invoice"]["status"]) == ("succeeded", "processed")
    assert answer["invoice"]["amount_paid"] == 2500
    assert answer["invoice"]["metadata"] == {"order": "2"}  # as it now is
    assert invoice(papi, created["id"]) == answer["invoice"]
    [row] = payments_of(db, created["id"])
    assert (row.status, row.amount_received) == ("succeeded", 2500)


def test_an_invoice_changed_between_its_create_and_its_pay_is_paid_as_it_now_is(
    papi: Api, db: Database
) -> None:
    created = papi.create_invoice(amount=2500, currency="EUR", metadata={"order": "1"})
    with db.write() as session:  # as another process would: this one's kept copy is stale
        session.execute(
            text(
                "UPDATE invoices SET metadata = :metadata, description = 'changed' WHERE id = :id"
            ),
            {"metadata": '{"order": "2"}', "id": created["id"]},
        )
    answer = paid(papi, created["id"], card(SUCCEEDS))
    assert (answer["status"], answer["invoice"]["status"]) == ("succeeded", "processed")
    assert answer["invoice"]["metadata"] == {"order": "2"}
    assert answer["invoice"]["description"] == "changed"
    assert invoice(papi, created["id"]) == answer["invoice"]
    assert payment(papi, answer["id"]) == answer


def test_an_invoice_cancelled_after_its_create_is_not_paid(papi: Api, db: Database) -> None:
    """The create's copy still says `created`: the pay must not believe it."""
    created = papi.create_invoice(amount=2500, currency="EUR")
    cancelled = papi.post(f"/v1/invoices/{created['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    before = state(db, papi.merchant.id)
    body = problem(pay(papi, created["id"], card(SUCCEEDS)), 409, "invoice_not_payable")
    assert body["invoice_status"] == "cancelled"
    assert state(db, papi.merchant.id) == before
    assert payments_of(db, created["id"]) == []
