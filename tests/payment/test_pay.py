"""POST /v1/invoices/{id}/pay: saved, inline and default methods; what may be paid (DESIGN §4)."""

from typing import Any

import pytest
from sqlalchemy import update

from quittance import clock
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.domain.ids import new_id
from quittance.domain.invoice import PAYABLE, Status
from quittance.models import Customer, Invoice
from quittance.payment_method.schemas import PaymentMethodCreate
from quittance.payment_method.service import create_payment_method
from quittance.providers.sandbox import SandboxGateway
from tests.factories import Api
from tests.payment.helpers import (
    BANK_TRANSFER,
    DECLINED,
    SUCCEEDS,
    caller,
    card,
    invoice,
    paid,
    pay,
    payments_of,
    problem,
    state,
)

PAYMENT_KEYS = {
    "id", "object", "livemode", "invoice", "attempt", "status", "method", "payment_method",
    "amount", "currency", "amount_received", "amount_authorized", "captured", "provider",
    "provider_reference", "routing", "error", "next_action", "created_at", "updated_at",
    "commission", "payer_currency", "payer_amount", "payer_received", "exchange_rate", "exchange",
}  # fmt: skip


def _customer(
    db: Database, settings: Settings, merchant_id: str, number: str | None = SUCCEEDS,
    *, default: bool = True,
) -> tuple[str, str | None]:  # fmt: skip
    """A customer (with a saved card, the default unless told otherwise) via the ORM."""
    now = clock.now()
    with db.write() as session:
        customer = Customer(
            id=new_id("cus"), merchant_id=merchant_id, livemode=False, email="ada@example.com",
            name="Ada", country="DE", default_payment_method_id=None, metadata_={},
            created_at=now, updated_at=now,
        )  # fmt: skip
        session.add(customer)
        session.flush()
        method_id = None
        if number is not None:
            spec = PaymentMethodCreate.model_validate(card(number))
            method = create_payment_method(
                session, caller(merchant_id), spec, settings, customer_id=customer.id
            )
            session.flush()
            method_id = method.id
            if default:
                customer.default_payment_method_id = method.id
    return customer.id, method_id


def _attach(db: Database, invoice_id: str, customer_id: str) -> None:
    with db.write() as session:
        session.execute(
            update(Invoice).where(Invoice.id == invoice_id).values(customer_id=customer_id)
        )


def _saved(db: Database, settings: Settings, merchant_id: str, method: dict[str, Any]) -> str:
    with db.write() as session:
        spec = PaymentMethodCreate.model_validate(method)
        saved = create_payment_method(session, caller(merchant_id), spec, settings)
        session.flush()
        return saved.id


def test_inline_card_pays_the_invoice(papi: Api, gateway: SandboxGateway, db: Database) -> None:
    created = papi.create_invoice(amount=1999, currency="EUR", reference="order-1")
    body = paid(papi, created["id"], card(SUCCEEDS))
    assert set(body) == PAYMENT_KEYS | {"invoice"}
    assert body["id"].startswith("pay_") and len(body["id"]) == 30
    assert body["livemode"] is False
    assert body["attempt"] == 1
    assert body["status"] == "succeeded"
    assert body["method"] == "card"
    assert body["payment_method"].startswith("pm_")
    assert (body["amount"], body["currency"]) == (1999, "EUR")
    assert (body["amount_received"], body["amount_authorized"], body["captured"]) == (
        1999, 0, True,
    )  # fmt: skip
    # No fee schedule, no other currency: the payer pays the amount due, nothing is converted.
    assert (body["commission"], body["payer_currency"], body["payer_amount"],
            body["payer_received"], body["exchange_rate"], body["exchange"]) == (
        0, "EUR", 1999, 1999, None, None,
    )  # fmt: skip
    assert body["provider"] == "sandbox"
    assert body["error"] is None and body["next_action"] is None
    assert [r["outcome"] for r in body["routing"]] == ["succeeded"]
    inv = body["invoice"]
    assert (inv["status"], inv["amount_paid"], inv["amount_due"], inv["overpaid"]) == (
        "processed", 1999, 0, False,
    )  # fmt: skip
    assert inv["last_payment_error"] is None
    assert inv == invoice(papi, created["id"])
    charge = gateway.charges(body["id"])
    assert charge is not None
    assert charge["reference"] == body["provider_reference"]
    assert (charge["amount"], charge["currency"], charge["amount_captured"]) == (1999, "EUR", 1999)
    assert charge["state"] == "succeeded"
    # The card number is nowhere in Quittance's database; the method keeps brand and last 4.
    (row,) = payments_of(db, created["id"])
    assert row.provider_reference == charge["reference"]
    assert row.status == "succeeded" and row.next_check_at is None
    retrieved = papi.get(f"/v1/payments/{body['id']}").json()
    assert retrieved == body
    listed = papi.get("/v1/payments", params={"invoice": created["id"]}).json()
    assert [p["id"] for p in listed["data"]] == [body["id"]]


def test_saved_method_pays(
    papi: Api, pay_settings: Settings, db: Database, gateway: SandboxGateway
) -> None:
    method_id = _saved(db, pay_settings, papi.merchant.id, card(SUCCEEDS))
    created = papi.create_invoice(amount=2500)
    body = paid(papi, created["id"], method_id)
    assert (body["status"], body["payment_method"], body["amount_received"]) == (
        "succeeded", method_id, 2500,
    )  # fmt: skip
    assert body["invoice"]["status"] == "processed"
    assert body["invoice"]["amount_paid"] == 2500
    charge = gateway.charges(body["id"])
    assert charge is not None and charge["amount_captured"] == 2500


@pytest.mark.parametrize("no_body", [True, False], ids=["no-body", "empty-object"])
def test_default_method_of_the_customer_pays(
    papi: Api, pay_settings: Settings, db: Database, gateway: SandboxGateway, no_body: bool
) -> None:
    customer_id, method_id = _customer(db, pay_settings, papi.merchant.id)
    created = papi.create_invoice(amount=4321)
    _attach(db, created["id"], customer_id)
    if no_body:
        response = papi.post(f"/v1/invoices/{created['id']}/pay")
    else:
        response = papi.post(f"/v1/invoices/{created['id']}/pay", json={})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["payment_method"], body["amount_received"]) == (
        "succeeded", method_id, 4321,
    )  # fmt: skip
    assert (body["invoice"]["status"], body["invoice"]["amount_paid"]) == ("processed", 4321)
    (row,) = payments_of(db, created["id"])
    assert row.customer_id == customer_id
    charge = gateway.charges(body["id"])
    assert charge is not None and charge["amount_captured"] == 4321


def test_default_method_that_declines_fails_the_attempt(
    papi: Api, pay_settings: Settings, db: Database
) -> None:
    customer_id, method_id = _customer(db, pay_settings, papi.merchant.id, DECLINED)
    created = papi.create_invoice()
    _attach(db, created["id"], customer_id)
    body = paid(papi, created["id"])
    assert (body["status"], body["payment_method"]) == ("failed", method_id)
    assert body["error"]["code"] == "card_declined"
    assert body["invoice"]["status"] == "created"


def test_without_a_method_and_without_a_customer_is_422(papi: Api, db: Database) -> None:
    created = papi.create_invoice()
    before = state(db, papi.merchant.id)
    path = f"/v1/invoices/{created['id']}/pay"
    for body in (None, {}, {"payment_method": None}):
        problem(papi.post(path, json=body), 422, "payment_method_required")
    assert state(db, papi.merchant.id) == before


def test_customer_without_a_default_method_is_422(
    papi: Api, pay_settings: Settings, db: Database
) -> None:
    customer_id, _ = _customer(db, pay_settings, papi.merchant.id, SUCCEEDS, default=False)
    bare_customer, _ = _customer(db, pay_settings, papi.merchant.id, None)
    for cid in (customer_id, bare_customer):
        created = papi.create_invoice()
        _attach(db, created["id"], cid)
        before = state(db, papi.merchant.id)
        problem(pay(papi, created["id"]), 422, "payment_method_required")
        assert state(db, papi.merchant.id) == before


def test_saved_method_of_another_customer_is_refused(
    papi: Api, pay_settings: Settings, db: Database
) -> None:
    owner, _ = _customer(db, pay_settings, papi.merchant.id, None)
    _, method_id = _customer(db, pay_settings, papi.merchant.id, SUCCEEDS)
    created = papi.create_invoice()
    _attach(db, created["id"], owner)
    before = state(db, papi.merchant.id)
    problem(pay(papi, created["id"], method_id), 422, "payment_method_customer_mismatch")
    assert state(db, papi.merchant.id) == before


def test_unknown_or_foreign_saved_method_is_404(
    papi: Api, pay_settings: Settings, db: Database, merchants: Any
) -> None:
    other = merchants.create()
    foreign = _saved(db, pay_settings, other.id, card(SUCCEEDS))
    created = papi.create_invoice()
    before = state(db, papi.merchant.id)
    for method_id in (foreign, "pm_01JD3Z7Q8W0000000000000000"):
        problem(pay(papi, created["id"], method_id), 404, "payment_method_not_found")
    assert state(db, papi.merchant.id) == before


def test_unknown_invoice_is_404(papi: Api, db: Database, gateway: SandboxGateway) -> None:
    before = state(db, papi.merchant.id)
    problem(pay(papi, "inv_01JD3Z7Q8W0000000000000000", card(SUCCEEDS)), 404, "invoice_not_found")
    assert state(db, papi.merchant.id) == before


def test_another_merchants_invoice_is_404(papi: Api, merchants: Any, db: Database) -> None:
    other = Api(papi.client, merchants.create())
    created = other.create_invoice()
    before = state(db, other.merchant.id)
    problem(pay(papi, created["id"], card(SUCCEEDS)), 404, "invoice_not_found")
    problem(pay(papi.as_live(), created["id"], card(SUCCEEDS)), 404, "invoice_not_found")
    assert state(db, other.merchant.id) == before


def test_invalid_bodies_are_422_and_change_nothing(papi: Api, db: Database) -> None:
    created = papi.create_invoice()
    before = state(db, papi.merchant.id)
    path = f"/v1/invoices/{created['id']}/pay"
    bad = [
        {"payment_method": {"type": "card"}},  # card details missing
        {"payment_method": {"type": "paypal"}},
        {"payment_method": 42},
        {"payment_method": card(SUCCEEDS), "amount": 5},  # unknown field
        {"payment_method": {**BANK_TRANSFER, "card": card(SUCCEEDS)["card"]}},
    ]
    for body in bad:
        response = papi.post(path, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    # Cards the sandbox does not take are refused before any attempt is recorded.
    for number in ("4242424242424241", "4111111111111111"):
        response = papi.post(path, json={"payment_method": card(number)})
        assert response.status_code == 422, response.text
        assert response.json()["code"] in ("invalid_card_number", "card_not_supported_in_sandbox")
    expired = card(SUCCEEDS)
    expired["card"]["exp_year"] = 2020
    problem(papi.post(path, json={"payment_method": expired}), 422, "expired_card")
    assert state(db, papi.merchant.id) == before
    assert invoice(papi, created["id"])["status"] == "created"


def _invoice_in(papi: Api, db: Database, status: Status) -> str:
    created = papi.create_invoice()
    with db.write() as session:
        session.execute(
            update(Invoice).where(Invoice.id == created["id"]).values(status=status.value)
        )
    return str(created["id"])


@pytest.mark.parametrize("status", sorted(set(Status) - PAYABLE))
def test_only_payable_statuses_may_be_paid(
    papi: Api, db: Database, sandbox_path: str, status: Status
) -> None:
    invoice_id = _invoice_in(papi, db, status)
    before = state(db, papi.merchant.id)
    for method in (card(SUCCEEDS), BANK_TRANSFER, None):
        body = problem(pay(papi, invoice_id, method), 409, "invoice_not_payable")
        assert body["invoice_status"] == status.value
        assert status.value in body["detail"]
    assert state(db, papi.merchant.id) == before


def test_not_payable_after_real_flows(papi: Api, db: Database) -> None:
    """Draft, cancelled, expired and processed invoices, reached through the API, are refused."""
    draft = papi.create_invoice(status="draft")
    cancelled = papi.create_invoice()
    assert papi.post(f"/v1/invoices/{cancelled['id']}/cancel").status_code == 200
    expired = papi.create_invoice()
    assert papi.post(f"/v1/test_helpers/invoices/{expired['id']}/expire").status_code == 200
    processed = papi.create_invoice()
    paid(papi, processed["id"], card(SUCCEEDS))
    cases = [
        (draft, "draft"), (cancelled, "cancelled"), (expired, "expired"),
        (processed, "processed"),
    ]  # fmt: skip
    before = state(db, papi.merchant.id)
    for created, status in cases:
        body = problem(pay(papi, created["id"], card(SUCCEEDS)), 409, "invoice_not_payable")
        assert body["invoice_status"] == status
    assert state(db, papi.merchant.id) == before


def test_lapsed_lifetime_is_not_payable(papi: Api, db: Database) -> None:
    created = papi.create_invoice()
    with db.write() as session:
        session.execute(
            update(Invoice)
            .where(Invoice.id == created["id"])
            .values(expires_at=clock.now().replace(year=2020))
        )
    body = problem(pay(papi, created["id"], card(SUCCEEDS)), 409, "invoice_not_payable")
    assert body["invoice_status"] == "expired"
    assert payments_of(db, created["id"]) == []


def test_live_mode_cannot_use_the_sandbox(papi: Api, db: Database) -> None:
    live = papi.as_live()
    created = live.create_invoice()
    before = state(db, papi.merchant.id)
    response = pay(live, created["id"], card(SUCCEEDS))
    assert response.status_code == 422, response.text
    assert response.json()["code"] in ("provider_not_available", "payment_method_not_available")
    assert state(db, papi.merchant.id) == before


def test_detached_saved_method_is_404(papi: Api, pay_settings: Settings, db: Database) -> None:
    from quittance.models import PaymentMethod

    method_id = _saved(db, pay_settings, papi.merchant.id, card(SUCCEEDS))
    with db.write() as session:
        session.execute(
            update(PaymentMethod)
            .where(PaymentMethod.id == method_id)
            .values(detached_at=clock.now())
        )
    created = papi.create_invoice()
    before = state(db, papi.merchant.id)
    problem(pay(papi, created["id"], method_id), 404, "payment_method_not_found")
    assert state(db, papi.merchant.id) == before


def test_list_payments(papi: Api, merchants: Any) -> None:
    created = papi.create_invoice()
    failed = paid(papi, created["id"], card(DECLINED))
    succeeded = paid(papi, created["id"], card(SUCCEEDS))
    other = papi.create_invoice()
    pending = paid(papi, other["id"], BANK_TRANSFER)

    def ids(**params: Any) -> list[str]:
        response = papi.get("/v1/payments", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "list"
        return [p["id"] for p in body["data"]]

    assert ids() == [pending["id"], succeeded["id"], failed["id"]]
    assert ids(invoice=created["id"]) == [succeeded["id"], failed["id"]]
    assert ids(status="failed") == [failed["id"]]
    assert ids(limit=1) == [pending["id"]]
    assert ids(starting_after=pending["id"]) == [succeeded["id"], failed["id"]]
    first = papi.get("/v1/payments", params={"limit": 2}).json()
    assert first["has_more"] is True
    # Other merchants and the live mode see none of them.
    assert Api(papi.client, merchants.create()).get("/v1/payments").json()["data"] == []
    assert papi.as_live().get("/v1/payments").json()["data"] == []
    listed = papi.get("/v1/payments", params={"invoice": created["id"]}).json()["data"]
    assert listed[0]["status"] == "succeeded" and "invoice" in listed[0]
