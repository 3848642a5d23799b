"""JSON responses rendered once, with orjson, so idempotent replays are byte-identical."""

from typing import Any

import orjson
from starlette.responses import Response


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload)


def json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def page(
    data: list[dict[str, Any]], has_more: bool, url: str, *, backwards: bool = False
) -> dict[str, Any]:
    """Wrap one page of a cursor-paginated list.

    `next_cursor` continues in the direction of the page: pass it as `starting_after` (or, for
    a page asked for with `ending_before`, as `ending_before`).
    """
    next_cursor = None
    if has_more and data:
        next_cursor = data[0]["id"] if backwards else data[-1]["id"]
    return {"object": "list", "url": url, "data": data, "has_more": has_more,
            "next_cursor": next_cursor}  # fmt: skip
