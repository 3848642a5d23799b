"""JSON responses rendered once, with orjson, so idempotent replays are byte-identical."""

from typing import Any

import orjson
from starlette.responses import Response


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload)


def json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def page(data: list[dict[str, Any]], has_more: bool, url: str) -> dict[str, Any]:
    """Wrap one page of a cursor-paginated list."""
    return {
        "object": "list",
        "url": url,
        "data": data,
        "has_more": has_more,
        "next_cursor": data[-1]["id"] if has_more and data else None,
    }
