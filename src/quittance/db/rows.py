"""Insert rows straight through the database driver: for the hot path, where SQLAlchemy's
execution path costs more than the statement itself.

For each mapped class and dialect the INSERT is built once, with the driver's own placeholders,
together with each column's bind processor (the same conversion SQLAlchemy applies: the
`TypeDecorator`s of `db.types`, JSON serialisation, booleans for SQLite). Rows then go to the
DBAPI cursor of the session's connection, inside the session's transaction, with no statement
compilation, no cache-key lookup and no result object. The object stays outside the session
(it is only read afterwards, for instance to render it).
"""

import contextlib
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Dialect, Table, inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapper, Session

from quittance.db.base import Base


@dataclass(frozen=True, slots=True)
class _Plan:
    table: str
    sql: str
    # (attribute, scalar default, bind processor) per column, in the statement's order.
    columns: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]


_plans: dict[tuple[type[Base], str], _Plan] = {}
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def _plan(cls: type[Base], dialect: Dialect) -> _Plan:
    """The INSERT of `cls`'s table for `dialect`, built once."""
    key = (cls, dialect.name)
    plan = _plans.get(key)
    if plan is None:
        mapper: Mapper[Any] = inspect(cls)
        table = cast(Table, cls.__table__)
        preparer = dialect.identifier_preparer
        columns, names = [], []
        for prop in mapper.column_attrs:
            column = prop.columns[0]
            default = column.default.arg if column.default is not None else None
            processor = column.type._cached_bind_processor(dialect)
            columns.append((prop.key, None if callable(default) else default, processor))
            names.append(preparer.quote(column.name))
        mark = _PLACEHOLDERS[dialect.paramstyle]
        sql = (
            f"INSERT INTO {preparer.format_table(table)} ({', '.join(names)}) "
            f"VALUES ({', '.join([mark] * len(names))})"
        )
        plan = _plans[key] = _Plan(table.name, sql, tuple(columns))
    return plan


def values(obj: Base, plan: _Plan) -> tuple[Any, ...]:
    """The row of a transient ORM object as the driver takes it, defaults filled in."""
    state = obj.__dict__
    row = []
    for attribute, default, processor in plan.columns:
        value = state.get(attribute)
        if value is None:
            value = default
        # Every processor is given None too, as SQLAlchemy does (JSON stores it as null).
        row.append(value if processor is None else processor(value))
    return tuple(row)


# Key in `session.info` of the rows held back by `defer_inserts`, per plan.
_DEFERRED = "quittance_deferred_rows"


@functools.cache
def _table_order() -> dict[str, int]:
    return {table.name: n for n, table in enumerate(Base.metadata.sorted_tables)}


def defer_inserts(session: Session) -> None:
    """Hold back `insert_rows` in this session until `flush_deferred` sends them together.

    For a batch of units of work (`db/batch.py`): one `executemany` per table instead of one
    statement per row. Reads in the meantime do not see the held-back rows.
    """
    session.info[_DEFERRED] = {}


def flush_deferred(session: Session) -> None:
    """Send the held-back rows, parents before children (the tables' dependency order)."""
    deferred: dict[_Plan, list[tuple[Any, ...]]] | None = session.info.pop(_DEFERRED, None)
    if not deferred:
        return
    connection = session.connection()
    order = _table_order()
    for plan in sorted(deferred, key=lambda p: order[p.table]):
        _execute(connection, plan, deferred[plan])


def insert_rows(session: Session, objects: Sequence[Base]) -> None:
    """INSERT transient objects of one class now (or, deferred, at `flush_deferred`), in the
    session's transaction."""
    if not objects:
        return
    connection = session.connection()
    plan = _plan(type(objects[0]), connection.dialect)
    rows = [values(obj, plan) for obj in objects]
    deferred: dict[_Plan, list[tuple[Any, ...]]] | None = session.info.get(_DEFERRED)
    if deferred is not None:
        deferred.setdefault(plan, []).extend(rows)
        return
    _execute(connection, plan, rows)


def _execute(connection: Connection, plan: _Plan, rows: list[tuple[Any, ...]]) -> None:
    execute_driver(connection, plan.sql, rows)


def execute_driver(connection: Connection, sql: str, rows: list[tuple[Any, ...]]) -> int:
    """Run a prebuilt statement (the driver's placeholders) once per row on the DBAPI cursor
    of `connection`, inside its transaction; return the cursor's row count."""
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        if len(rows) == 1:
            cursor.execute(sql, rows[0])
        else:
            cursor.executemany(sql, rows)
        return int(cursor.rowcount)
    except connection.dialect.loaded_dbapi.Error as exc:
        # Raise what SQLAlchemy would (IntegrityError, OperationalError, ...), and drop a
        # connection the database has closed so the pool does not hand it out again.
        disconnected = connection.dialect.is_disconnect(exc, dbapi_connection, cursor)
        if disconnected:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            sql, rows, exc, connection.dialect.loaded_dbapi.Error,
            connection_invalidated=disconnected, dialect=connection.dialect,
        ) from exc  # fmt: skip
    finally:
        with contextlib.suppress(connection.dialect.loaded_dbapi.Error):
            cursor.close()
