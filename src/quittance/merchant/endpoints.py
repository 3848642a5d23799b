"""`/v1/settings/payment_options`: the merchant's payment options (DESIGN §8)."""

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from quittance.api.deps import DbDep
from quittance.api.responses import dumps, json_response
from quittance.auth.dependencies import CallerDep
from quittance.idempotency.dependencies import IdempotentDep
from quittance.merchant import service
from quittance.merchant.schemas import PaymentOptionsOut, PaymentOptionsUpdate, render_options

router = APIRouter(prefix="/v1/settings", tags=["settings"])


@router.get("/payment_options", response_model=PaymentOptionsOut)
def get_payment_options(caller: CallerDep, db: DbDep) -> Response:
    """Read the payment options that new invoices take their defaults from.

    Test and live mode each have their own set; the key used chooses which."""
    with db.read() as session:
        options = service.get_payment_options(session, caller.merchant_id, caller.livemode)
        return json_response(200, dumps(render_options(options)))


@router.patch("/payment_options", response_model=PaymentOptionsOut)
def update_payment_options(body: PaymentOptionsUpdate, run: IdempotentDep) -> Response:
    """Change payment options; invoices already created keep their lifetime and attempts."""

    def handle(session: Any) -> tuple[int, dict[str, Any]]:
        caller = run.caller
        options = service.update_payment_options(session, caller.merchant_id, caller.livemode, body)
        return 200, render_options(options)

    return run.run(handle)
