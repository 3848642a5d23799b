"""Deliveries of an authorisation that carries commission on top (`include_commission`)."""

from decimal import Decimal

from quittance import clock
from quittance.db.uow import Database
from quittance.models import FeeSchedule
from quittance.providers.sandbox import SandboxGateway
from tests.factories import Api
from tests.fulfilment.helpers import (
    assert_verified,
    authorised,
    cancelled,
    delivered,
    ledger,
)
from tests.payment.helpers import payment


def commission_on_top(api: Api, db: Database, percent: str = "3") -> None:
    """The invoice method costs `percent` %, paid by the payer on top."""
    response = api.patch("/v1/settings/payment_options", json={"include_commission": True})
    assert response.status_code == 200, response.text
    now = clock.now()
    with db.write() as session:
        session.add(
            FeeSchedule(merchant_id=api.merchant.id, livemode=False, method="invoice",
                        currency="EUR", percent=Decimal(percent), fixed=0, minimum=None,
                        maximum=None, created_at=now, updated_at=now)
        )  # fmt: skip


def test_the_commission_on_top_is_captured_with_the_last_delivery(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    commission_on_top(papi, db)
    inv = authorised(papi, amount=1000)
    charge = gateway.charges(inv["payment"])
    assert charge is not None and charge["amount"] == 1030  # the provider holds 1000 + 3 %
    first = delivered(papi, inv["id"], {"amount": 400})
    after = first["invoice"]
    # What is paid is what was delivered; the commission waits for the last delivery.
    assert (after["amount_paid"], after["commission"], after["amount_authorized"]) == (
        400, 0, 600,
    )  # fmt: skip
    charge = gateway.charges(inv["payment"])
    assert charge is not None and charge["amount_captured"] == 400
    rest = delivered(papi, inv["id"])
    final = rest["invoice"]
    assert (final["amount_paid"], final["commission"], final["amount_due"]) == (1000, 30, 0)
    charge = gateway.charges(inv["payment"])
    assert charge is not None and (charge["state"], charge["amount_captured"]) == (
        "succeeded", 1030,
    )  # fmt: skip
    done = payment(papi, inv["payment"])
    assert (done["status"], done["amount_received"]) == ("succeeded", 1000)
    last, _ = ledger(papi, inv["id"])
    assert sum(e["amount"] for e in last["entries"]) == 0
    by_account = {e["account"]: e["amount"] for e in last["entries"]}
    assert by_account["provider_clearing:sandbox"] == 630
    assert_verified(db, papi.merchant.id)


def test_cancelling_the_rest_releases_the_commission_on_top(
    papi: Api, db: Database, gateway: SandboxGateway
) -> None:
    commission_on_top(papi, db)
    inv = authorised(papi, amount=1000)
    delivered(papi, inv["id"], {"amount": 400})
    rest = cancelled(papi, inv["id"])
    assert rest["amount"] == 600
    final = rest["invoice"]
    assert (final["amount"], final["amount_paid"], final["amount_due"]) == (400, 400, 0)
    assert (final["commission"], final["amount_authorized"]) == (0, 0)
    charge = gateway.charges(inv["payment"])
    assert charge is not None
    assert (charge["amount_captured"], charge["amount_cancelled"]) == (400, 630)
    assert payment(papi, inv["payment"])["status"] == "succeeded"
    assert_verified(db, papi.merchant.id)
