"""`/v1/customers` and their payment methods: create, retrieve, list, update; attach, list,
set default, detach."""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session
from starlette.responses import Response

from quittance.api.deps import DbDep, SettingsDep
from quittance.api.responses import dumps, json_response, page
from quittance.auth.dependencies import CallerDep
from quittance.customer import repository, service
from quittance.customer.schemas import (
    CustomerCreate,
    CustomerOut,
    CustomerPaymentMethodOut,
    CustomerUpdate,
    PaymentMethodAttach,
    render_customer,
    render_saved_method,
)
from quittance.db.pagination import keyset_page, one_cursor
from quittance.idempotency.dependencies import IdempotentDep
from quittance.models import Customer, PaymentMethod

router = APIRouter(prefix="/v1", tags=["customers"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    404: {"description": "`customer_not_found`, `payment_method_not_found`"},
    409: {"description": "`idempotency_key_in_use`"},
    422: {"description": "Validation failed; `errors` lists each field with its code "
                         "(`payment_method_not_attached`, `card_rejected`, "
                         "`provider_not_available`, …)"},
}  # fmt: skip

CustomerCursor = Annotated[str | None, Query(pattern=r"^cus_[0-9A-Z]{26}$")]
MethodCursor = Annotated[str | None, Query(pattern=r"^pm_[0-9A-Z]{26}$")]
Limit = Annotated[int, Query(ge=1, le=100)]


@router.post("/customers", status_code=201, response_model=CustomerOut, responses=_ERRORS)
def create_customer(body: CustomerCreate, run: IdempotentDep) -> Response:
    """Create a customer; attach payment methods to it afterwards."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        customer = service.create_customer(session, run.caller, body)
        return 201, render_customer(customer)

    return run.run(handle)


@router.get("/customers/{customer_id}", response_model=CustomerOut, responses=_ERRORS)
def retrieve_customer(customer_id: str, caller: CallerDep, db: DbDep) -> Response:
    """Retrieve a customer."""
    with db.read() as session:
        customer = service.get_customer(session, caller, customer_id)
    return json_response(200, dumps(render_customer(customer)))


@router.get("/customers", responses=_ERRORS)
def list_customers(
    caller: CallerDep,
    db: DbDep,
    email: Annotated[str | None, Query(max_length=320, description="Exact email")] = None,
    limit: Limit = 20,
    starting_after: CustomerCursor = None,
    ending_before: CustomerCursor = None,
) -> Response:
    """List customers, newest first, with cursor pagination."""
    one_cursor(starting_after, ending_before)
    with db.read() as session:
        rows, has_more = keyset_page(
            session,
            repository.filtered(caller, email=email),
            Customer.id,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
    data = [render_customer(customer) for customer in rows]
    body = page(data, has_more, "/v1/customers", backwards=ending_before is not None)
    return json_response(200, dumps(body))


@router.patch("/customers/{customer_id}", response_model=CustomerOut, responses=_ERRORS)
def update_customer(customer_id: str, body: CustomerUpdate, run: IdempotentDep) -> Response:
    """Change a customer's fields (`null` clears one) or its `default_payment_method`."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        customer = service.update_customer(session, run.caller, customer_id, body)
        return 200, render_customer(customer)

    return run.run(handle)


@router.post("/customers/{customer_id}/payment_methods", status_code=201,
             response_model=CustomerPaymentMethodOut, responses=_ERRORS)  # fmt: skip
def attach_payment_method(
    customer_id: str, body: PaymentMethodAttach, run: IdempotentDep, settings: SettingsDep
) -> Response:
    """Tokenise a payment method (a sandbox test card in test mode) and save it on the
    customer. Only the brand, last 4 digits, expiry and the provider's token are kept."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        method = service.attach_payment_method(session, run.caller, customer_id, body, settings)
        return 201, render_saved_method(method)

    return run.run(handle)


@router.get("/customers/{customer_id}/payment_methods", responses=_ERRORS)
def list_payment_methods(
    customer_id: str,
    caller: CallerDep,
    db: DbDep,
    limit: Limit = 20,
    starting_after: MethodCursor = None,
    ending_before: MethodCursor = None,
) -> Response:
    """List the customer's attached payment methods, newest first."""
    one_cursor(starting_after, ending_before)
    with db.read() as session:
        customer = service.get_customer(session, caller, customer_id)
        rows, has_more = keyset_page(
            session,
            repository.attached_methods(caller, customer.id),
            PaymentMethod.id,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
    data = [render_saved_method(method) for method in rows]
    url = f"/v1/customers/{customer.id}/payment_methods"
    return json_response(200, dumps(page(data, has_more, url,
                                         backwards=ending_before is not None)))  # fmt: skip


@router.post("/customers/{customer_id}/payment_methods/{method_id}/default",
             response_model=CustomerOut, responses=_ERRORS)  # fmt: skip
def set_default_payment_method(customer_id: str, method_id: str, run: IdempotentDep) -> Response:
    """Make an attached method the customer's default; answers with the customer."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        customer = service.set_default_payment_method(session, run.caller, customer_id,
                                                      method_id)  # fmt: skip
        return 200, render_customer(customer)

    return run.run(handle)


@router.delete("/customers/{customer_id}/payment_methods/{method_id}",
               response_model=CustomerPaymentMethodOut, responses=_ERRORS)  # fmt: skip
def detach_payment_method(customer_id: str, method_id: str, run: IdempotentDep) -> Response:
    """Detach a method: it can no longer pay, and if it was the default there is none."""

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        method = service.detach_payment_method(session, run.caller, customer_id, method_id)
        return 200, render_saved_method(method)

    return run.run(handle)
