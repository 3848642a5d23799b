"""Failures with a stable machine code and a sentence a person understands.

Each error names the HTTP status the API answers with; the domain never imports the web layer,
the web layer renders these as RFC 9457 problem documents.
"""

from typing import Any


class QuittanceError(Exception):
    """A failure the caller can act on; never a 500."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra


class ValidationFailed(QuittanceError):
    status = 422
    code = "validation_error"
    title = "The request is not valid"

    def __init__(self, message: str, *, errors: list[dict[str, str]], code: str | None = None):
        super().__init__(message, code=code)
        self.errors = errors


class NotFound(QuittanceError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(QuittanceError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Unauthorized(QuittanceError):
    status = 401
    code = "authentication_required"
    title = "Authentication required"


class InvalidTransition(Conflict):
    code = "invalid_status_transition"
    title = "This status change is not allowed"
