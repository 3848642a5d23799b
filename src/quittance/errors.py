"""RFC 9457 problem documents: the one rendering of every error the API answers with."""

import logging
from collections.abc import Iterable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from quittance.api.context import current_request_id
from quittance.domain.errors import QuittanceError

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("quittance.errors")

# Pydantic error types, mapped to Quittance's stable field error codes.
_FIELD_CODES = {
    "missing": "field_required",
    "extra_forbidden": "unknown_field",
    "string_too_long": "too_long",
    "string_too_short": "too_short",
    "too_long": "too_many_items",
    "too_short": "too_few_items",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "literal_error": "invalid_value",
    "enum": "invalid_value",
    "string_pattern_mismatch": "invalid_format",
    "datetime_from_date_parsing": "invalid_datetime",
    "datetime_parsing": "invalid_datetime",
    "datetime_type": "invalid_datetime",
    "int_parsing": "invalid_type",
    "bool_parsing": "invalid_type",
    "value_error": "invalid_value",
}
# Other pydantic-core error types a request can trigger: reported as `invalid_value`.
_PYDANTIC_OTHER = frozenset(
    {"assertion_error", "finite_number", "multiple_of", "string_unicode", "url_parsing",
     "recursion_loop", "date_from_datetime_inexact", "datetime_future", "datetime_past",
     "timezone_aware", "timezone_naive", "decimal_max_digits", "decimal_max_places",
     "decimal_whole_digits", "union_tag_invalid", "union_tag_not_found", "missing_argument"}
)  # fmt: skip


def problem_body(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """Serialise a problem document (always with `code` and `request_id`)."""
    document: dict[str, Any] = {
        "type": f"urn:quittance:error:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": current_request_id(),
    }
    if errors is not None:
        document["errors"] = errors
    if extra:
        document.update({k: v for k, v in extra.items() if k not in document})
    return orjson.dumps(document)


def problem_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def error_body(exc: QuittanceError) -> bytes:
    errors = getattr(exc, "errors", None)
    return problem_body(
        exc.status, exc.code, exc.title, exc.message, errors=errors, extra=exc.extra
    )


def field_errors(raw: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """Turn pydantic's errors into `{field, code, message}` entries."""
    errors = []
    for error in raw:
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
        kind = str(error.get("type", "invalid_value"))
        if kind in _FIELD_CODES:
            code = _FIELD_CODES[kind]
        elif kind.endswith("_type") or "_parsing" in kind:
            code = "invalid_type"
        elif kind in _PYDANTIC_OTHER:
            code = "invalid_value"
        else:
            code = kind  # a Quittance code raised with PydanticCustomError
        message = str(error.get("msg", "Invalid value."))
        message = message.removeprefix("Value error, ")
        if code == "unknown_field":
            message = "This field is not part of the request."
        elif code == "field_required":
            message = "This field is required."
        errors.append({"field": ".".join(location) or "body", "code": code, "message": message})
    return errors


def _validation_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in raw):
        body = problem_body(
            400, "invalid_json", "Malformed JSON", "The request body is not valid JSON."
        )
        return problem_response(400, body)
    errors = field_errors(raw)
    first = errors[0]
    detail = f"{first['field']}: {first['message']}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    body = problem_body(422, first["code"], "The request is not valid", detail, errors=errors)
    return problem_response(422, body)


def _quittance_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, QuittanceError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return problem_response(exc.status, error_body(exc), headers)


_HTTP_CODES = {
    400: ("invalid_json", "Malformed request", "The request body could not be read as JSON."),
    404: ("not_found", "Not found", "No such endpoint."),
    405: ("method_not_allowed", "Method not allowed", "This endpoint does not accept the method."),
    413: ("body_too_large", "Body too large", "The request body is too large."),
    415: ("unsupported_media_type", "Unsupported media type", "Send JSON."),
}


def _http_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code, title, detail = _HTTP_CODES.get(
        exc.status_code, ("http_error", "Request failed", str(exc.detail))
    )
    body = problem_body(exc.status_code, code, title, detail)
    return problem_response(exc.status_code, body, dict(exc.headers or {}))


def _unexpected_handler(_request: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    body = problem_body(
        500, "internal_error", "Internal error",
        "Something went wrong on our side; nothing was changed. Quote the request_id.",
    )  # fmt: skip
    return problem_response(500, body)


def install_handlers(app: FastAPI) -> None:
    """Register the problem-document handlers on `app`."""
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(QuittanceError, _quittance_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
