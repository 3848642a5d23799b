"""Insert and read rows straight through the database driver: for the hot path, where
SQLAlchemy's execution path costs more than the statement itself.

For each mapped class and dialect the INSERT is built once, with the driver's own placeholders,
together with each column's bind processor (the same conversion SQLAlchemy applies: the
`TypeDecorator`s of `db.types`, JSON serialisation, booleans for SQLite). Rows then go to the
DBAPI cursor of the session's connection, inside the session's transaction, with no statement
compilation, no cache-key lookup and no result object. The object stays outside the session
(it is only read afterwards, for instance to render it).

`build` makes such an object without the instrumented constructor (whose attribute events cost
more than the INSERT). `select_rows` reads rows the same way, with each column's result
processor, into detached objects, as a query followed by `Session.expunge` would give: their
changes are written with `payment.writes.write_back`.
"""

import contextlib
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Dialect, Table, inspect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.base import manager_of_class

from quittance.db.base import Base


@dataclass(frozen=True, slots=True)
class _Plan:
    table: str
    sql: str
    # (attribute, scalar default, bind processor) per column, in the statement's order.
    columns: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]


_plans: dict[tuple[type[Base], str], _Plan] = {}
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
B = TypeVar("B", bound=Base)


@functools.cache
def column_keys(cls: type[Base]) -> frozenset[str]:
    """The attribute names of a mapped class's columns."""
    mapper: Mapper[Any] = inspect(cls)
    return frozenset(prop.key for prop in mapper.column_attrs)


def build(cls: type[B], **values: Any) -> B:
    """A new (transient) object of `cls` with `values`, as `cls(**values)` makes it, without
    the attribute events of the ORM's constructor (nothing tracks a row that is only inserted
    and read). Later assignments are tracked as usual."""
    unknown = values.keys() - column_keys(cls)
    if unknown:
        raise TypeError(f"{cls.__name__} has no column {sorted(unknown)[0]!r}")
    obj = manager_of_class(cls).new_instance()
    obj.__dict__.update(values)
    return obj


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
        raise _driver_error(connection, sql, rows, exc, dbapi_connection, cursor) from exc
    finally:
        with contextlib.suppress(connection.dialect.loaded_dbapi.Error):
            cursor.close()


def _driver_error(
    connection: Connection, sql: str, parameters: Any, exc: Any, dbapi_connection: Any,
    cursor: Any,
) -> StatementError:  # fmt: skip
    """What SQLAlchemy would raise (IntegrityError, OperationalError, ...) for a driver error;
    a connection the database has closed is dropped so the pool does not hand it out again."""
    disconnected = connection.dialect.is_disconnect(exc, dbapi_connection, cursor)
    if disconnected:
        connection.invalidate(exc)
    error: StatementError = DBAPIError.instance(
        sql, parameters, exc, connection.dialect.loaded_dbapi.Error,
        connection_invalidated=disconnected, dialect=connection.dialect,
    )  # fmt: skip
    return error


@dataclass(frozen=True, slots=True)
class _Select:
    sql: str
    # (attribute, result processor) per column, in the statement's order.
    columns: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    key_positions: tuple[int, ...]  # where the primary key's columns are in a row


_selects: dict[tuple[type[Base], tuple[str, ...], str | None, bool, str], _Select] = {}


def _select(
    cls: type[Base], where: tuple[str, ...], order_by: str | None, lock: bool, dialect: Dialect
) -> _Select:
    key = (cls, where, order_by, lock, dialect.name)
    plan = _selects.get(key)
    if plan is None:
        mapper: Mapper[Any] = inspect(cls)
        preparer = dialect.identifier_preparer
        mark = _PLACEHOLDERS[dialect.paramstyle]
        quoted = {p.key: preparer.quote(p.columns[0].name) for p in mapper.column_attrs}
        columns = tuple(
            (p.key, p.columns[0].type._cached_result_processor(dialect, None))
            for p in mapper.column_attrs
        )
        table = preparer.format_table(cast(Table, cls.__table__))
        conditions = " AND ".join(f"{quoted[attribute]} = {mark}" for attribute in where)
        sql = f"SELECT {', '.join(quoted.values())} FROM {table} WHERE {conditions}"
        if order_by is not None:
            sql += f" ORDER BY {quoted[order_by]}"
        if lock and dialect.name != "sqlite":  # SQLite's write transaction locks everything
            sql += " FOR UPDATE"
        primary = [mapper.get_property_by_column(column).key for column in mapper.primary_key]
        positions = tuple([key for key, _ in columns].index(name) for name in primary)
        plan = _selects[key] = _Select(sql, columns, positions)
    return plan


def select_rows(
    session: Session, cls: type[B], where: dict[str, Any], *, order_by: str | None = None,
    lock: bool = False,
) -> list[B]:  # fmt: skip
    """The rows of `cls` whose columns equal `where`, read through the driver in the session's
    transaction (`lock`: `FOR UPDATE` where the database has it), as detached objects."""
    connection = session.connection()
    plan = _select(cls, tuple(where), order_by, lock, connection.dialect)
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(plan.sql, tuple(where.values()))
        rows = cursor.fetchall()
    except connection.dialect.loaded_dbapi.Error as exc:
        raise _driver_error(connection, plan.sql, where, exc, dbapi_connection, cursor) from exc
    finally:
        with contextlib.suppress(connection.dialect.loaded_dbapi.Error):
            cursor.close()
    manager = manager_of_class(cls)
    identity = cls
    objects = []
    for row in rows:
        obj = manager.new_instance()
        values = obj.__dict__
        for (attribute, processor), value in zip(plan.columns, row, strict=True):
            values[attribute] = value if processor is None or value is None else processor(value)
        # Detached, as if loaded and expunged: its identity is known, it is in no session.
        instance_state(obj).key = (identity, tuple(row[i] for i in plan.key_positions), None)
        objects.append(obj)
    return objects


def attach_children(parents: Sequence[Base], attribute: str, children: Sequence[Base]) -> None:
    """Set a loaded collection on each parent (`select_rows`' objects), as a load would."""
    for parent in parents:
        set_committed_value(parent, attribute, list(children))
