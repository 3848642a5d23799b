"""The fast lane of `POST /v1/invoices`: the everyday create, served without the framework.

Creating invoices is the product's hottest write, and FastAPI's per-request work (routing,
dependency solving, the exception and exit-stack middleware) costs more CPU than the create
itself. `RequestMiddleware` hands this lane the request once it has checked the body's size and
type. The lane serves it only when the regular route would certainly accept it:

- a secret key already in the key cache (a miss, a malformed or a publishable key goes on);
- no `Idempotency-Key`, or a well-formed one (claimed, stored and replayed as on the route);
- a JSON body that `InvoiceCreate` validates, without a saved customer's id (which needs a read).

Anything else is passed on untouched to the FastAPI route, which answers it, errors included,
exactly as before. What the lane serves runs the same `IdempotentRequest.run_grouped` with the
same handler as the route (`service.create_invoice`, group-committed); a business error is
answered with the same problem document as the route's handler gives it.
"""

import json
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import URL, State
from starlette.types import Receive, Scope, Send

from quittance.auth.dependencies import Caller, KeyCache, digest_or_none
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.domain.errors import QuittanceError
from quittance.errors import error_body, problem_response
from quittance.idempotency.service import Handler, IdempotentRequest, fingerprint, validate_key
from quittance.invoice import service
from quittance.invoice.schemas import InvoiceCreate


class CreateInvoiceLane:
    """Serve a plain create; return False to hand the request to the regular route."""

    def __init__(self, state: State) -> None:
        self.db: Database = state.db
        self.settings: Settings = state.settings
        self.keys: KeyCache = state.key_cache

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], body: bytes
    ) -> bool:
        try:
            key = validate_key(headers.get("idempotency-key"))
        except QuittanceError:
            return False
        digest = digest_or_none(headers.get("authorization"))
        caller = self.keys.get(digest) if digest is not None else None
        if caller is None or caller.publishable:
            return False
        data = _valid_body(body)
        if data is None or isinstance(data.customer, str):
            return False
        path = URL(scope=scope).path  # as the route's dependency reads it, for the fingerprint
        run = IdempotentRequest(
            db=self.db,
            caller=caller,
            key=key,
            method="POST",
            path=path,
            fingerprint=fingerprint("POST", path, body) if key is not None else "",
        )
        try:
            response = await run.run_grouped(_handler(caller, data, self.settings))
        except QuittanceError as exc:
            response = problem_response(exc.status, error_body(exc))
        await response(scope, receive, send)
        return True


def _valid_body(body: bytes) -> InvoiceCreate | None:
    # As the route reads it: the standard library's JSON, then the model (any refusal is the
    # route's to word).
    try:
        return InvoiceCreate.model_validate(json.loads(body))
    except (ValueError, ValidationError, RecursionError):
        return None


def _handler(caller: Caller, data: InvoiceCreate, settings: Settings) -> Handler:
    base_url = settings.public_base_url

    def handle(session: Session) -> tuple[int, dict[str, Any]]:
        # Safe to run again after a rollback: every run makes a new invoice with new ids.
        return 201, service.create_invoice(session, caller, data, base_url)

    return handle
