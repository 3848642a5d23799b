"""Attempts, the attempts limit, and routing over provider connections (DESIGN §4, PayCore)."""

from quittance.db.uow import Database
from quittance.providers.sandbox import SandboxGateway
from tests.factories import Api
from tests.payment.helpers import (
    BANK_TRANSFER,
    DECLINED,
    INSUFFICIENT,
    PROVIDER_ERROR,
    SUCCEEDS,
    card,
    invoice,
    paid,
    pay,
    payments_of,
    problem,
    set_routes,
    state,
)


def test_failed_attempts_leave_the_invoice_payable_until_the_limit(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    created = papi.create_invoice(amount=1500, attempts_limit=3)
    first = paid(papi, created["id"], card(DECLINED))
    inv = first["invoice"]
    assert (first["attempt"], first["status"], inv["status"], inv["attempts_count"]) == (
        1, "failed", "created", 1,
    )  # fmt: skip
    assert inv["last_payment_error"] == {
        "code": "card_declined", "message": "The card was declined.", "payment": first["id"],
    }  # fmt: skip
    second = paid(papi, created["id"], card(INSUFFICIENT))
    inv = second["invoice"]
    assert (second["attempt"], inv["status"], inv["attempts_count"]) == (2, "created", 2)
    assert inv["last_payment_error"] == {
        "code": "insufficient_funds", "message": "The card has insufficient funds.",
        "payment": second["id"],
    }  # fmt: skip
    third = paid(papi, created["id"], card(DECLINED))
    inv = third["invoice"]
    assert (third["attempt"], third["status"]) == (3, "failed")
    assert (inv["status"], inv["attempts_count"], inv["amount_paid"]) == ("process_failed", 3, 0)
    assert inv["last_payment_error"]["code"] == "card_declined"
    assert inv["last_payment_error"]["payment"] == third["id"]
    # process_failed is final: no fourth attempt is recorded.
    before = state(db, papi.merchant.id)
    body = problem(pay(papi, created["id"], card(SUCCEEDS)), 409, "invoice_not_payable")
    assert body["invoice_status"] == "process_failed"
    assert state(db, papi.merchant.id) == before
    assert [p.attempt for p in payments_of(db, created["id"])] == [1, 2, 3]
    for row in payments_of(db, created["id"]):
        charge = gateway.charges(row.id)
        assert charge is not None and charge["amount_captured"] == 0


def test_default_attempts_limit_is_five(papi: Api) -> None:
    created = papi.create_invoice()
    assert created["attempts_limit"] == 5
    for attempt in range(1, 6):
        body = paid(papi, created["id"], card(DECLINED))
        assert body["attempt"] == attempt
        expected = "process_failed" if attempt == 5 else "created"
        assert body["invoice"]["status"] == expected
        assert body["invoice"]["attempts_count"] == attempt


def test_a_success_after_failures_clears_the_error(papi: Api, gateway: SandboxGateway) -> None:
    created = papi.create_invoice(amount=1500, attempts_limit=3)
    paid(papi, created["id"], card(DECLINED))
    paid(papi, created["id"], card(PROVIDER_ERROR))
    body = paid(papi, created["id"], card(SUCCEEDS))
    inv = body["invoice"]
    assert (body["attempt"], body["status"], body["amount_received"]) == (3, "succeeded", 1500)
    assert (inv["status"], inv["amount_paid"], inv["attempts_count"]) == ("processed", 1500, 2)
    assert inv["last_payment_error"] is None
    assert invoice(papi, created["id"]) == inv


def test_limit_of_one(papi: Api) -> None:
    created = papi.create_invoice(attempts_limit=1)
    body = paid(papi, created["id"], card(PROVIDER_ERROR))
    assert body["invoice"]["status"] == "process_failed"
    assert body["invoice"]["last_payment_error"]["code"] == "provider_error"


def test_failure_after_a_partial_transfer_returns_to_partially_processed(
    papi: Api, gateway: SandboxGateway
) -> None:
    created = papi.create_invoice(amount=10000, attempts_limit=5)
    transfer = paid(papi, created["id"], BANK_TRANSFER)
    response = papi.post(
        "/v1/test_helpers/bank_transfers", json={"payment": transfer["id"], "amount": 4000}
    )
    assert response.json()["invoice"]["status"] == "partially_processed"
    failed = paid(papi, created["id"], card(DECLINED))
    inv = failed["invoice"]
    assert failed["amount"] == 6000
    assert (inv["status"], inv["amount_paid"], inv["attempts_count"]) == (
        "partially_processed", 4000, 1,
    )  # fmt: skip
    assert inv["last_payment_error"]["code"] == "card_declined"
    done = paid(papi, created["id"], card(SUCCEEDS))
    assert (done["invoice"]["status"], done["invoice"]["amount_paid"]) == ("processed", 10000)


def test_error_and_timeout_cascade_to_the_next_connection(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    ids = set_routes(db, papi.merchant.id, "card", {"fail": "error"}, {"fail": "timeout"}, {})
    created = papi.create_invoice(amount=777)
    body = paid(papi, created["id"], card(SUCCEEDS))
    assert (body["status"], body["attempt"], body["amount_received"]) == ("succeeded", 1, 777)
    routing = [(r["connection"], r["outcome"], r.get("error")) for r in body["routing"]]
    assert routing == [
        (ids[0], "error", "provider_error"),
        (ids[1], "error", "provider_timeout"),
        (ids[2], "succeeded", None),
    ]
    assert all(r["provider"] == "sandbox" for r in body["routing"])
    assert all(isinstance(r["duration_ms"], int | float) for r in body["routing"])
    (row,) = payments_of(db, created["id"])
    assert row.connection_id == ids[2]
    inv = body["invoice"]
    assert (inv["status"], inv["amount_paid"], inv["attempts_count"]) == ("processed", 777, 0)
    charge = gateway.charges(body["id"])
    assert charge is not None and charge["amount_captured"] == 777


def test_a_decline_ends_the_attempt(papi: Api, db: Database) -> None:
    ids = set_routes(db, papi.merchant.id, "card", {}, {})
    created = papi.create_invoice()
    body = paid(papi, created["id"], card(DECLINED))
    assert [(r["connection"], r["outcome"]) for r in body["routing"]] == [(ids[0], "declined")]
    assert body["invoice"]["attempts_count"] == 1


def test_every_connection_failing_is_one_failed_attempt(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    # (Errors the provider answered; a timeout's outcome is unknown: see test_recovery.)
    ids = set_routes(db, papi.merchant.id, "card", {"fail": "error"}, {"fail": "error"})
    created = papi.create_invoice(attempts_limit=2)
    body = paid(papi, created["id"], card(SUCCEEDS))
    assert body["status"] == "failed"
    assert [(r["connection"], r["error"]) for r in body["routing"]] == [
        (ids[0], "provider_error"), (ids[1], "provider_error"),
    ]  # fmt: skip
    assert body["error"] == {
        "code": "provider_error", "message": "The sandbox connection is configured to fail.",
    }  # fmt: skip
    inv = body["invoice"]
    assert (inv["status"], inv["attempts_count"], inv["amount_paid"]) == ("created", 1, 0)
    assert inv["last_payment_error"]["code"] == "provider_error"
    assert gateway.charges(body["id"]) is None


def test_provider_error_card_tries_every_connection(papi: Api, db: Database) -> None:
    ids = set_routes(db, papi.merchant.id, "card", {}, {})
    created = papi.create_invoice()
    body = paid(papi, created["id"], card(PROVIDER_ERROR))
    assert [r["connection"] for r in body["routing"]] == ids
    assert body["status"] == "failed"


def test_disabled_method_or_no_connection_is_422_before_an_attempt(papi: Api, db: Database) -> None:
    from quittance.models import MethodConfig

    set_routes(db, papi.merchant.id, "card")  # no connection at all
    created = papi.create_invoice()
    before = state(db, papi.merchant.id)
    problem(pay(papi, created["id"], card(SUCCEEDS)), 422, "payment_method_not_available")
    assert state(db, papi.merchant.id) == before
    with db.write() as session:
        config = session.get(MethodConfig, (papi.merchant.id, False, "bank_transfer"))
        assert config is not None
        config.enabled = False
    problem(pay(papi, created["id"], BANK_TRANSFER), 422, "payment_method_not_available")
    assert state(db, papi.merchant.id) == before


def test_amount_limits_of_a_method(papi: Api, db: Database) -> None:
    from quittance.models import MethodConfig

    set_routes(db, papi.merchant.id, "card", {})
    with db.write() as session:
        config = session.get(MethodConfig, (papi.merchant.id, False, "card"))
        assert config is not None
        config.max_amount = 1000
        config.currencies = ["EUR"]
    big = papi.create_invoice(amount=1001)
    yen = papi.create_invoice(amount=500, currency="JPY")
    before = state(db, papi.merchant.id)
    problem(pay(papi, big["id"], card(SUCCEEDS)), 422, "payment_method_not_available")
    problem(pay(papi, yen["id"], card(SUCCEEDS)), 422, "payment_method_not_available")
    assert state(db, papi.merchant.id) == before
    small = papi.create_invoice(amount=1000)
    assert paid(papi, small["id"], card(SUCCEEDS))["status"] == "succeeded"
