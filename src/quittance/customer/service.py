"""Customer use cases: the customer itself and its saved payment methods.

Services take a session and never commit: the unit of work does. Every change writes an event
in the same unit of work (`customer.created`, `customer.updated`, `payment_method.attached`,
`payment_method.detached`).
"""

from typing import Any

from sqlalchemy.orm import Session

from quittance import clock
from quittance.auth.dependencies import Caller
from quittance.config import Settings
from quittance.customer import repository
from quittance.customer.schemas import (
    CustomerCreate,
    CustomerUpdate,
    PaymentMethodAttach,
    render_customer,
    render_saved_method,
)
from quittance.domain.errors import NotFound, ValidationFailed
from quittance.domain.ids import new_id
from quittance.event import service as events
from quittance.models import Customer, PaymentMethod
from quittance.payment_method.service import (
    CardRejected,
    PaymentMethodNotFound,
    create_payment_method,
)

# The card field a provider's refusal is about, for the per-field `errors`.
_REFUSED_FIELD = {"invalid_cvc": "card.cvc", "expired_card": "card.exp_year"}


class CustomerNotFound(NotFound):
    code = "customer_not_found"


def _record(session: Session, customer: Customer, type: str, data: dict[str, Any]) -> None:
    events.record(
        session,
        merchant_id=customer.merchant_id,
        livemode=customer.livemode,
        type=type,
        data=data,
    )


def create_customer(session: Session, caller: Caller, data: CustomerCreate) -> Customer:
    """Create a customer (without payment methods; attach them afterwards)."""
    now = clock.now()
    customer = Customer(
        id=new_id("cus"),
        merchant_id=caller.merchant_id,
        livemode=caller.livemode,
        email=data.email,
        name=data.name,
        country=data.country,
        default_payment_method_id=None,
        metadata_=data.metadata,
        created_at=now,
        updated_at=now,
    )
    session.add(customer)
    session.flush()
    _record(session, customer, "customer.created", {"object": render_customer(customer)})
    return customer


def get_customer(
    session: Session, caller: Caller, customer_id: str, *, lock: bool = False
) -> Customer:
    customer = repository.get(session, caller, customer_id, lock=lock)
    if customer is None:
        raise CustomerNotFound(f"No customer {customer_id!r} exists.")
    return customer


def customer_for_invoice(session: Session, caller: Caller, customer_id: str) -> Customer:
    """Find the customer an invoice body names, or refuse the body (422, field `customer`)."""
    customer = repository.get(session, caller, customer_id)
    if customer is None:
        shown = customer_id if len(customer_id) <= 40 else customer_id[:40] + "…"
        message = f"No customer {shown!r} exists; give a customer id (cus_…) or an object."
        raise ValidationFailed(
            message,
            code="customer_not_found",
            errors=[{"field": "customer", "code": "customer_not_found", "message": message}],
        )
    return customer


def update_customer(
    session: Session, caller: Caller, customer_id: str, data: CustomerUpdate
) -> Customer:
    """Change a customer's fields; the default method must be one of its attached methods."""
    customer = get_customer(session, caller, customer_id, lock=True)
    fields = data.model_fields_set
    if not fields:
        return customer
    if "default_payment_method" in fields and data.default_payment_method is not None:
        _attached_or_refuse(session, caller, customer, data.default_payment_method)
    for name in ("email", "name", "country"):
        if name in fields:
            setattr(customer, name, getattr(data, name))
    if "metadata" in fields:
        customer.metadata_ = data.metadata or {}
    if "default_payment_method" in fields:
        customer.default_payment_method_id = data.default_payment_method
    customer.updated_at = clock.now()
    _record(session, customer, "customer.updated",
            {"object": render_customer(customer), "changed": sorted(fields)})  # fmt: skip
    return customer


def _attached_or_refuse(
    session: Session, caller: Caller, customer: Customer, method_id: str
) -> PaymentMethod:
    method = repository.attached_method(session, caller, customer.id, method_id)
    if method is None:
        message = f"{method_id!r} is not a payment method attached to this customer."
        raise ValidationFailed(
            message,
            code="payment_method_not_attached",
            errors=[{"field": "default_payment_method", "code": "payment_method_not_attached",
                     "message": message}],
        )  # fmt: skip
    return method


def attach_payment_method(
    session: Session, caller: Caller, customer_id: str, data: PaymentMethodAttach,
    settings: Settings,
) -> PaymentMethod:  # fmt: skip
    """Tokenise a method at the provider and save it on the customer.

    It becomes the default with `default: true`, or when the customer has no default yet.
    """
    customer = get_customer(session, caller, customer_id, lock=True)
    try:
        method = create_payment_method(session, caller, data, settings, customer_id=customer.id)
    except CardRejected as exc:
        field = _REFUSED_FIELD.get(exc.code, "card.number")
        raise ValidationFailed(
            exc.message,
            code=exc.code,
            errors=[{"field": field, "code": exc.code, "message": exc.message}],
        ) from None
    session.flush()
    if data.default or customer.default_payment_method_id is None:
        customer.default_payment_method_id = method.id
        customer.updated_at = clock.now()
    document = {"object": render_saved_method(method), "customer": render_customer(customer)}
    _record(session, customer, "payment_method.attached", document)
    return method


def set_default_payment_method(
    session: Session, caller: Caller, customer_id: str, method_id: str
) -> Customer:
    """Make one of the customer's attached methods its default."""
    customer = get_customer(session, caller, customer_id, lock=True)
    method = repository.attached_method(session, caller, customer.id, method_id)
    if method is None:
        raise PaymentMethodNotFound(f"The customer has no payment method {method_id!r}.")
    if customer.default_payment_method_id != method.id:
        customer.default_payment_method_id = method.id
        customer.updated_at = clock.now()
        _record(session, customer, "customer.updated",
                {"object": render_customer(customer),
                 "changed": ["default_payment_method"]})  # fmt: skip
    return customer


def detach_payment_method(
    session: Session, caller: Caller, customer_id: str, method_id: str
) -> PaymentMethod:
    """Detach a method: it can no longer pay, and stops being the default."""
    customer = get_customer(session, caller, customer_id, lock=True)
    method = repository.attached_method(session, caller, customer.id, method_id)
    if method is None:
        raise PaymentMethodNotFound(f"The customer has no payment method {method_id!r}.")
    now = clock.now()
    method.detached_at = now
    if customer.default_payment_method_id == method.id:
        customer.default_payment_method_id = None
        customer.updated_at = now
    document = {"object": render_saved_method(method), "customer": render_customer(customer)}
    _record(session, customer, "payment_method.detached", document)
    return method
