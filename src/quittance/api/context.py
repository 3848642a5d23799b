"""Per-request context (the request id), set by the middleware and read by logs and errors."""

from contextvars import ContextVar

_request_id: ContextVar[str] = ContextVar("quittance_request_id", default="")


def current_request_id() -> str:
    return _request_id.get()


def set_request_id(value: str) -> None:
    _request_id.set(value)
