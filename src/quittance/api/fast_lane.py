"""Fast lanes: the everyday requests of the hottest routes, served without the framework.

FastAPI's per-request work (routing, dependency solving, the exception and exit-stack
middleware) costs more CPU than creating or paying an invoice itself. `RequestMiddleware`
offers a request to the lane registered for its method and path once it has checked the
body's size and type. A lane serves it only when the regular route would certainly accept it:

- a secret key: from the key cache, or read and cached as the route's dependency does it (an
  unknown, malformed or publishable key goes on);
- no `Idempotency-Key`, or a well-formed one (claimed, stored and replayed as on the route);
- a body the route's own model validates, read as the route reads it (the standard library's
  JSON, then the model), plus whatever the lane itself checks.

Anything else is passed on untouched to the FastAPI route, which answers it, errors included,
exactly as before. What a lane serves runs the route's own function with an
`IdempotentRequest` built as the route's dependency builds it; a business error is answered
with the same problem document as the route's exception handler gives it.
`QUITTANCE_FAST_LANE=false` turns every lane off.
"""

import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio.to_thread
from pydantic import BaseModel, ValidationError
from starlette.datastructures import URL, State
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from quittance.auth.dependencies import KeyCache, digest_or_none, known_caller
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.domain.errors import QuittanceError
from quittance.errors import error_body, problem_response
from quittance.idempotency.service import IdempotentRequest, fingerprint, validate_key

Model = TypeVar("Model", bound=BaseModel)


class FastLane:
    """The checks and the answer every lane shares; a lane implements `__call__`."""

    def __init__(self, state: State) -> None:
        self.db: Database = state.db
        self.settings: Settings = state.settings
        self.keys: KeyCache = state.key_cache

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], body: bytes
    ) -> bool:
        raise NotImplementedError

    async def request(
        self, scope: Scope, headers: dict[str, str], body: bytes
    ) -> IdempotentRequest | None:
        """The request as the route's `IdempotentDep` would make it, or None to pass it on."""
        try:
            key = validate_key(headers.get("idempotency-key"))
        except QuittanceError:
            return None
        digest = digest_or_none(headers.get("authorization"))
        if digest is None:
            return None
        caller = self.keys.get(digest)
        if caller is None:  # not cached (yet, or any more): read in a thread, as the route does
            caller = await anyio.to_thread.run_sync(known_caller, self.db, self.keys, digest)
        if caller is None or caller.publishable:
            return None
        # As the dependency reads it, for the fingerprint and the stored key; a request without
        # a key keeps neither, and is spared building the URL.
        path = URL(scope=scope).path if key is not None else scope["path"]
        method = scope["method"]
        return IdempotentRequest(
            db=self.db,
            caller=caller,
            key=key,
            method=method,
            path=path,
            fingerprint=fingerprint(method, path, body) if key is not None else "",
        )

    @staticmethod
    def body(model: type[Model], body: bytes) -> Model | None:
        """The body as the route's model validates it, or None (the route words the refusal)."""
        try:
            return model.model_validate(json.loads(body))
        except (ValueError, ValidationError, RecursionError):
            return None

    @staticmethod
    async def answer(
        scope: Scope, receive: Receive, send: Send, outcome: Callable[[], Awaitable[Response]]
    ) -> bool:
        """Send what `outcome` answers, or the problem document of its business error."""
        try:
            response = await outcome()
        except QuittanceError as exc:
            response = problem_response(exc.status, error_body(exc))
        await response(scope, receive, send)
        return True
