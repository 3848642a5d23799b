"""Cursor pagination over time-sortable ids: newest first, `limit + 1` to know if more follow."""

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from quittance.domain.errors import ValidationFailed

Row = TypeVar("Row")


def keyset_page(
    session: Session,
    query: Select[Row],
    id_column: InstrumentedAttribute[Any],
    *,
    limit: int,
    starting_after: str | None = None,
    ending_before: str | None = None,
) -> tuple[list[Row], bool]:
    """Return one page, newest first, and whether more rows follow in that direction."""
    if ending_before is not None:
        query = query.where(id_column > ending_before).order_by(id_column.asc())
        rows = list(session.scalars(query.limit(limit + 1)))
        return list(reversed(rows[:limit])), len(rows) > limit
    if starting_after is not None:
        query = query.where(id_column < starting_after)
    rows = list(session.scalars(query.order_by(id_column.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def one_cursor(starting_after: str | None, ending_before: str | None) -> None:
    """Refuse a page asked for with both cursors (`cursor_conflict`)."""
    if starting_after is not None and ending_before is not None:
        message = "Give starting_after or ending_before, not both."
        raise ValidationFailed(
            message,
            code="cursor_conflict",
            errors=[{"field": "ending_before", "code": "cursor_conflict", "message": message}],
        )
