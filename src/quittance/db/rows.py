"""Insert rows straight through Core: for the hot path, where the ORM's unit of work costs
more than the statement itself. The object stays outside the session (it is only read
afterwards, for instance to render it)."""

from typing import Any, cast

from sqlalchemy import Table, insert, inspect
from sqlalchemy.orm import Mapper, Session

from quittance.db.base import Base

_plans: dict[type[Base], list[tuple[str, str, Any]]] = {}


def _plan(cls: type[Base]) -> list[tuple[str, str, Any]]:
    """(attribute, column, scalar default) for each column of the mapped class."""
    plan = _plans.get(cls)
    if plan is None:
        mapper: Mapper[Any] = inspect(cls)
        plan = []
        for prop in mapper.column_attrs:
            column = prop.columns[0]
            default = column.default.arg if column.default is not None else None
            plan.append((prop.key, column.name, None if callable(default) else default))
        _plans[cls] = plan
    return plan


def values(obj: Base) -> dict[str, Any]:
    """The row of a transient ORM object, with the columns' scalar defaults filled in."""
    row = {}
    for attribute, column, default in _plan(type(obj)):
        value = obj.__dict__.get(attribute)
        row[column] = default if value is None else value
    return row


def insert_rows(session: Session, objects: list[Base]) -> None:
    """INSERT transient objects of one class now, in the session's transaction."""
    if objects:
        table = cast(Table, type(objects[0]).__table__)
        session.connection().execute(insert(table), [values(obj) for obj in objects])
