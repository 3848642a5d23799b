"""Create payment methods by tokenising at the provider."""

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from quittance import clock
from quittance.auth.dependencies import Caller
from quittance.config import Settings
from quittance.db.rows import build
from quittance.domain.errors import NotFound, QuittanceError
from quittance.domain.ids import new_id
from quittance.models import PaymentMethod
from quittance.payment_method.schemas import PaymentMethodCreate
from quittance.providers.base import CardDetails
from quittance.providers.registry import ProviderNotAvailable, sandbox
from quittance.providers.sandbox import SandboxError


class CardRejected(QuittanceError):
    status = 422
    code = "card_rejected"
    title = "The card was not accepted"


class PaymentMethodNotFound(NotFound):
    code = "payment_method_not_found"


def create_payment_method(
    session: Session,
    caller: Caller,
    spec: PaymentMethodCreate,
    settings: Settings,
    *,
    customer_id: str | None = None,
) -> PaymentMethod:
    """Tokenise `spec` at the provider and store what may be kept (never the card number)."""
    method = new_payment_method(caller, spec, settings, customer_id=customer_id)
    session.add(method)
    return method


def new_payment_method(
    caller: Caller,
    spec: PaymentMethodCreate,
    settings: Settings,
    *,
    customer_id: str | None = None,
) -> PaymentMethod:
    """Tokenise `spec` at the provider and build its row, not yet in any session."""
    if caller.livemode:
        raise ProviderNotAvailable(
            "No live provider is configured to tokenise payment methods yet."
        )
    method = build(
        PaymentMethod,
        id=new_id("pm"),
        merchant_id=caller.merchant_id,
        livemode=caller.livemode,
        customer_id=customer_id,
        type=spec.type,
        provider="sandbox",
        provider_token=None,
        created_at=clock.now(),
        detached_at=None,
    )
    if spec.card is not None:
        card = spec.card
        try:
            tokenized = sandbox(settings).tokenize_card(
                CardDetails(card.number.replace(" ", ""), card.exp_month, card.exp_year, card.cvc)
            )
        except SandboxError as exc:
            raise CardRejected(exc.message, code=exc.code) from None
        method.provider_token = tokenized.token
        method.brand = tokenized.brand
        method.last4 = tokenized.last4
        method.exp_month = tokenized.exp_month
        method.exp_year = tokenized.exp_year
    return method


# Built once (paying with a saved method reads one per pay).
_GET = select(PaymentMethod).where(
    PaymentMethod.id == bindparam("method_id"),
    PaymentMethod.merchant_id == bindparam("merchant_id"),
    PaymentMethod.livemode == bindparam("livemode"),
    PaymentMethod.detached_at.is_(None),
)


def get_payment_method(session: Session, caller: Caller, method_id: str) -> PaymentMethod:
    params = {"method_id": method_id, "merchant_id": caller.merchant_id,
              "livemode": caller.livemode}  # fmt: skip
    method = session.scalars(_GET, params).first()
    if method is None:
        raise PaymentMethodNotFound(f"No payment method {method_id!r} exists.")
    return method
