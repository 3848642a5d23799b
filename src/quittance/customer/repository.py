"""Customer and saved payment method queries; every one is scoped to one merchant and mode."""

import re
from typing import TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from quittance.auth.dependencies import Caller
from quittance.models import Customer, PaymentMethod

Row = TypeVar("Row", Customer, PaymentMethod)
_CUSTOMER_ID = re.compile(r"^cus_[0-9A-Z]{26}$")


def is_customer_id(value: str) -> bool:
    """Tell whether `value` has the shape of a customer id (anything else cannot exist)."""
    return _CUSTOMER_ID.match(value) is not None


def customers(caller: Caller) -> Select[Customer]:
    return select(Customer).where(
        Customer.merchant_id == caller.merchant_id, Customer.livemode == caller.livemode
    )


def get(
    session: Session, caller: Caller, customer_id: str, *, lock: bool = False
) -> Customer | None:
    if not is_customer_id(customer_id):
        return None
    query = customers(caller).where(Customer.id == customer_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).first()


def filtered(caller: Caller, *, email: str | None = None) -> Select[Customer]:
    query = customers(caller)
    if email is not None:
        query = query.where(Customer.email == email)
    return query


def attached_methods(caller: Caller, customer_id: str) -> Select[PaymentMethod]:
    """The customer's payment methods that have not been detached."""
    return select(PaymentMethod).where(
        PaymentMethod.merchant_id == caller.merchant_id,
        PaymentMethod.livemode == caller.livemode,
        PaymentMethod.customer_id == customer_id,
        PaymentMethod.detached_at.is_(None),
    )


def attached_method(
    session: Session, caller: Caller, customer_id: str, method_id: str
) -> PaymentMethod | None:
    query = attached_methods(caller, customer_id).where(PaymentMethod.id == method_id)
    return session.scalars(query).first()
