"""ASGI middleware: request ids, body size limit, JSON content type, one access-log line."""

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quittance.api.context import set_request_id
from quittance.domain.ids import new_id
from quittance.errors import PROBLEM_MEDIA_TYPE, problem_body

log = logging.getLogger("quittance.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

# A fast lane serves some requests of one route without the framework (`api/fast_lane.py`): it
# is given the scope, the headers and the whole body, and returns False to pass the request on
# to the route. Lanes are registered by method and path; `{}` in a path stands for one segment.
FastLane = Callable[[Scope, Receive, Send, dict[str, str], bytes], Awaitable[bool]]


class RequestMiddleware:
    """Give each request an id, refuse oversized or non-JSON bodies, and log the outcome."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        fast_lanes: Mapping[tuple[str, str], FastLane] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._exact: dict[tuple[str, str], FastLane] = {}
        self._patterns: list[tuple[str, str, str, FastLane]] = []
        for (method, path), lane in (fast_lanes or {}).items():
            if "{}" in path:
                prefix, _, suffix = path.partition("{}")
                self._patterns.append((method, prefix, suffix, lane))
            else:
                self._exact[(method, path)] = lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = _headers(scope)
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else new_id("req")
        set_request_id(request_id)
        id_header = (b"x-request-id", request_id.encode())
        status_seen = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status_seen
            if message["type"] == "http.response.start":
                status_seen = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        try:
            if "\x00" in scope["path"] or b"%00" in scope["query_string"].lower():
                await _send_problem(
                    send_with_id, 400, "invalid_characters", "Invalid characters",
                    "The URL contains a NUL character, which is not allowed.",
                )  # fmt: skip
                return
            if scope["method"] in _BODY_METHODS and scope["path"].startswith("/v1/"):
                refusal, body, receive = await self._read_body(headers, receive)
                if refusal is not None:
                    await _send_problem(send_with_id, *refusal)
                    return
                lane = self._lane(scope["method"], scope["path"])
                if lane is not None and await lane(scope, receive, send_with_id, headers, body):
                    return
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status_seen,
                extra={
                    "request_id": request_id,
                    "status": status_seen,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )

    def _lane(self, method: str, path: str) -> FastLane | None:
        lane = self._exact.get((method, path))
        if lane is not None:
            return lane
        for lane_method, prefix, suffix, pattern_lane in self._patterns:
            if (
                method == lane_method
                and path.startswith(prefix)
                and path.endswith(suffix)
                and "/" not in path[len(prefix) : len(path) - len(suffix)]
                and len(path) > len(prefix) + len(suffix)
            ):
                return pattern_lane
        return None

    async def _read_body(
        self, headers: dict[str, str], receive: Receive
    ) -> tuple[tuple[int, str, str, str] | None, bytes, Receive]:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return _too_large(self.max_body_bytes), b"", receive
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return _too_large(self.max_body_bytes), b"", receive
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body.strip() and not _is_json(headers.get("content-type", "")):
            return (
                415, "unsupported_media_type", "Unsupported media type",
                "Send the request body as JSON with Content-Type: application/json.",
            ), body, receive  # fmt: skip
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return None, body, replay


def _headers(scope: Scope) -> dict[str, str]:
    # The first of repeated headers wins, as in Starlette's `request.headers.get`.
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _too_large(limit: int) -> tuple[int, str, str, str]:
    return (413, "body_too_large", "Body too large",
            f"The request body is larger than the limit of {limit} bytes.")  # fmt: skip


async def _send_problem(send: Any, status: int, code: str, title: str, detail: str) -> None:
    body = problem_body(status, code, title, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
