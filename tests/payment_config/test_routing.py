"""Routing through the real pay endpoint: an error or timeout cascades, a decline ends it."""

from datetime import timedelta
from typing import Any

import pytest

from quittance import clock
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.jobs.worker import Worker
from quittance.models import Payment
from tests.factories import Api
from tests.payment_config.helpers import (
    DECLINED,
    SUCCEEDS,
    assert_refused,
    card,
    create_connection,
    default_connection,
    pay,
    set_method,
    stored,
)


def _route(payment: dict[str, Any]) -> list[dict[str, Any]]:
    """The payment's routing without the durations (which vary), which must be numbers."""
    entries = []
    for entry in payment["routing"]:
        duration = entry.pop("duration_ms")
        assert isinstance(duration, int | float) and duration >= 0
        entries.append(entry)
    return entries


def _paid(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_an_error_cascades_to_the_next_connection(api: Api) -> None:
    broken = create_connection(api, "Broken", options={"fail": "error"})
    sandbox = default_connection(api)
    set_method(api, "card", connections=[broken["id"], sandbox])
    invoice = api.create_invoice(amount=2500)
    payment = _paid(pay(api, invoice["id"], card(SUCCEEDS)))
    assert (payment["status"], payment["amount_received"], payment["error"]) == (
        "succeeded", 2500, None,
    )  # fmt: skip
    assert payment["provider"] == "sandbox"
    assert _route(payment) == [
        {"connection": broken["id"], "provider": "sandbox", "outcome": "error",
         "error": "provider_error"},
        {"connection": sandbox, "provider": "sandbox", "outcome": "succeeded"},
    ]  # fmt: skip
    assert payment["invoice"]["status"] == "processed"
    assert payment["invoice"]["amount_paid"] == 2500
    assert payment["invoice"]["last_payment_error"] is None
    fetched = api.get(f"/v1/payments/{payment['id']}").json()
    assert [e["connection"] for e in fetched["routing"]] == [broken["id"], sandbox]


def test_a_timeout_cascades_to_the_next_connection(api: Api) -> None:
    slow = create_connection(api, "Slow", options={"fail": "timeout"})
    healthy = create_connection(api, "Healthy")
    set_method(api, "card", connections=[slow["id"], healthy["id"]])
    invoice = api.create_invoice()
    payment = _paid(pay(api, invoice["id"], card(SUCCEEDS)))
    assert payment["status"] == "succeeded"
    assert _route(payment) == [
        {"connection": slow["id"], "provider": "sandbox", "outcome": "error",
         "error": "provider_timeout"},
        {"connection": healthy["id"], "provider": "sandbox", "outcome": "succeeded"},
    ]  # fmt: skip
    assert payment["invoice"]["status"] == "processed"


def test_a_decline_ends_the_attempt_at_the_first_connection(api: Api) -> None:
    first = create_connection(api, "First")
    second = create_connection(api, "Second")
    set_method(api, "card", connections=[first["id"], second["id"]])
    invoice = api.create_invoice()
    payment = _paid(pay(api, invoice["id"], card(DECLINED)))
    assert payment["status"] == "failed"
    assert payment["error"] == {"code": "card_declined", "message": "The card was declined."}
    assert _route(payment) == [
        {"connection": first["id"], "provider": "sandbox", "outcome": "declined"}
    ]
    assert payment["invoice"]["status"] == "created"
    assert payment["invoice"]["last_payment_error"]["code"] == "card_declined"


def test_when_every_connection_fails_the_attempt_fails_and_the_invoice_is_payable_again(
    api: Api,
) -> None:
    one = create_connection(api, "One", options={"fail": "error"})
    two = create_connection(api, "Two", options={"fail": "error"})
    set_method(api, "card", connections=[one["id"], two["id"]])
    invoice = api.create_invoice(amount=1200)
    payment = _paid(pay(api, invoice["id"], card(SUCCEEDS)))
    assert (payment["status"], payment["amount_received"]) == ("failed", 0)
    assert payment["error"]["code"] == "provider_error"
    assert _route(payment) == [
        {"connection": one["id"], "provider": "sandbox", "outcome": "error",
         "error": "provider_error"},
        {"connection": two["id"], "provider": "sandbox", "outcome": "error",
         "error": "provider_error"},
    ]  # fmt: skip
    after = payment["invoice"]
    assert (after["status"], after["amount_paid"], after["attempts_count"]) == ("created", 0, 1)
    assert after["last_payment_error"]["code"] == "provider_error"
    assert after["last_payment_error"]["message"] == payment["error"]["message"]
    # Payable again: with a healthy route the next attempt succeeds.
    set_method(api, "card", connections=[default_connection(api)])
    retry = _paid(pay(api, invoice["id"], card(SUCCEEDS)))
    assert (retry["status"], retry["attempt"]) == ("succeeded", 2)
    assert retry["invoice"]["status"] == "processed"
    assert retry["invoice"]["last_payment_error"] is None


@pytest.mark.parametrize(("first", "second"), [("error", "timeout"), ("timeout", "error")])
def test_a_timeout_leaves_the_outcome_open_until_the_provider_is_asked(
    api: Api, first: str, second: str, db: Database, config_settings: Settings
) -> None:
    """A timed-out call may have charged: the attempt is not failed until the provider says."""
    one = create_connection(api, "One", options={"fail": first})
    two = create_connection(api, "Two", options={"fail": second})
    set_method(api, "card", connections=[one["id"], two["id"]])
    invoice = api.create_invoice(amount=1200)
    payment = _paid(pay(api, invoice["id"], card(SUCCEEDS)))
    assert (payment["status"], payment["amount_received"]) == ("pending", 0)
    assert payment["invoice"]["status"] == "process_pending"
    assert [r["error"] for r in _route(payment)] == [f"provider_{first}", f"provider_{second}"]
    # Past the recovery delay the worker asks; the sandbox never saw the payment.
    past = clock.now() - timedelta(seconds=config_settings.payment_recovery_after + 1)
    with db.write() as session:
        row = session.get(Payment, payment["id"])
        assert row is not None
        row.created_at = past
        row.next_check_at = past
    Worker(db, config_settings).run_once()
    failed = api.get(f"/v1/payments/{payment['id']}").json()
    assert (failed["status"], failed["error"]["code"]) == ("failed", "attempt_interrupted")
    assert failed["invoice"]["status"] == "created"
    assert failed["invoice"]["amount_paid"] == 0


def test_a_disabled_connection_is_skipped(api: Api) -> None:
    paused = create_connection(api, "Paused", options={"fail": "error"}, enabled=False)
    healthy = create_connection(api, "Healthy")
    set_method(api, "card", connections=[paused["id"], healthy["id"]])
    payment = _paid(pay(api, api.create_invoice()["id"], card(SUCCEEDS)))
    assert _route(payment) == [
        {"connection": healthy["id"], "provider": "sandbox", "outcome": "succeeded"}
    ]


def test_the_order_of_the_route_is_the_order_of_the_tries(api: Api) -> None:
    a = create_connection(api, "A", options={"fail": "error"})
    b = create_connection(api, "B", options={"fail": "timeout"})
    c = create_connection(api, "C")
    set_method(api, "card", connections=[b["id"], a["id"], c["id"]])
    payment = _paid(pay(api, api.create_invoice()["id"], card(SUCCEEDS)))
    assert [(e["connection"], e["outcome"]) for e in payment["routing"]] == [
        (b["id"], "error"), (a["id"], "error"), (c["id"], "succeeded"),
    ]  # fmt: skip


def test_other_methods_cascade_too(api: Api) -> None:
    broken = create_connection(api, "Broken", options={"fail": "error"})
    set_method(api, "invoice", connections=[broken["id"], default_connection(api)])
    payment = _paid(pay(api, api.create_invoice()["id"], {"type": "invoice"}))
    assert (payment["status"], payment["captured"]) == ("authorized", False)
    assert [e["outcome"] for e in payment["routing"]] == ["error", "authorized"]


@pytest.mark.parametrize(
    ("config", "invoice"),
    [
        ({"enabled": False}, {}),
        ({"currencies": ["USD", "CHF"]}, {"currency": "EUR"}),
        ({"min_amount": 2000}, {"amount": 1999}),
        ({"max_amount": 1998}, {"amount": 1999}),
        ({"countries": ["FR", "AT"]}, {"customer": {"country": "DE"}}),
        ({"connections": []}, {}),
    ],
    ids=["disabled", "currency", "below-minimum", "above-maximum", "country", "no-route"],
)
def test_a_method_that_is_not_available_is_refused_and_nothing_changes(
    api: Api, db: Database, config: dict[str, Any], invoice: dict[str, Any]
) -> None:
    set_method(api, "card", **config)
    created = api.create_invoice(**invoice)
    before = stored(db, api.merchant.id)
    response = pay(api, created["id"], card(SUCCEEDS))
    body = assert_refused(response, 422, "payment_method_not_available")
    assert body["method"] == "card"
    assert stored(db, api.merchant.id) == before
    assert api.get(f"/v1/invoices/{created['id']}").json() == created


def test_every_connection_disabled_is_refused_and_nothing_changes(api: Api, db: Database) -> None:
    sandbox = default_connection(api)
    api.patch(f"/v1/settings/provider_connections/{sandbox}", json={"enabled": False})
    created = api.create_invoice()
    before = stored(db, api.merchant.id)
    body = assert_refused(pay(api, created["id"], card(SUCCEEDS)), 422,
                          "payment_method_not_available")  # fmt: skip
    assert "No enabled provider connection" in body["detail"]
    assert stored(db, api.merchant.id) == before


def test_limits_within_bounds_and_an_accepted_country_pay(api: Api) -> None:
    set_method(api, "card", min_amount=1999, max_amount=1999, countries=["DE"],
               currencies=["EUR"])  # fmt: skip
    created = api.create_invoice(amount=1999, customer={"country": "DE"})
    assert _paid(pay(api, created["id"], card(SUCCEEDS)))["status"] == "succeeded"
