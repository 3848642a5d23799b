from typing import Annotated

from fastapi import Depends, Header, Request

from quittance.auth.dependencies import CallerDep
from quittance.idempotency.service import IdempotentRequest, fingerprint, validate_key


async def _idempotent_request(
    request: Request,
    caller: CallerDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            description="Any unique string (a UUID, say) to make retries safe for 72 hours; "
            "1 to 255 printable ASCII characters.",
        ),
    ] = None,
) -> IdempotentRequest:
    key = validate_key(idempotency_key)
    body = await request.body() if key is not None else b""
    path = request.url.path
    return IdempotentRequest(
        db=request.app.state.db,
        caller=caller,
        key=key,
        method=request.method,
        path=path,
        fingerprint=fingerprint(request.method, path, body) if key is not None else "",
    )


IdempotentDep = Annotated[IdempotentRequest, Depends(_idempotent_request)]
