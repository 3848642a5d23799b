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
processor, into detached objects, as a query followed by `Session.expunge` would give (and
`select_family` a row with its collection, in one statement). Their changes are written back
with one UPDATE each (`write_back`): a flush of the ORM's unit of work costs several times the
UPDATE it emits.
"""

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Dialect, Table, inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.base import manager_of_class
from sqlalchemy.orm.exc import StaleDataError

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
        execute_driver(connection, plan.sql, deferred[plan])


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
    execute_driver(connection, plan.sql, rows)


@contextlib.contextmanager
def _driver_cursor(connection: Connection, sql: str, parameters: Any) -> Iterator[Any]:
    """A DBAPI cursor of `connection` (inside its transaction), closed afterwards. A driver
    error is raised as SQLAlchemy would raise it (IntegrityError, OperationalError, ...), and a
    connection the database has closed is dropped so the pool does not hand it out again."""
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        yield cursor
    except connection.dialect.loaded_dbapi.Error as exc:
        disconnected = connection.dialect.is_disconnect(exc, dbapi_connection, cursor)
        if disconnected:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            sql, parameters, exc, connection.dialect.loaded_dbapi.Error,
            connection_invalidated=disconnected, dialect=connection.dialect,
        ) from exc  # fmt: skip
    finally:
        with contextlib.suppress(connection.dialect.loaded_dbapi.Error):
            cursor.close()


def execute_driver(connection: Connection, sql: str, rows: list[tuple[Any, ...]]) -> int:
    """Run a prebuilt statement (the driver's placeholders) once per row on the DBAPI cursor
    of `connection`, inside its transaction; return the cursor's row count."""
    with _driver_cursor(connection, sql, rows) as cursor:
        if len(rows) == 1:
            cursor.execute(sql, rows[0])
        else:
            cursor.executemany(sql, rows)
        return int(cursor.rowcount)


@dataclass(frozen=True, slots=True)
class _Shape:
    """How a mapped class's rows are read: its table, columns, result processors and key."""

    table: str
    names: tuple[str, ...]  # quoted, qualified with the table
    # (attribute, result processor) per column, in the statement's order.
    columns: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    key_positions: tuple[int, ...]  # where the primary key's columns are in a row
    binds: Mapping[str, Callable[[Any], Any] | None]  # bind processor per attribute

    def name(self, attribute: str) -> str:
        return self.names[[key for key, _ in self.columns].index(attribute)]

    def parameters(self, where: dict[str, Any]) -> tuple[Any, ...]:
        """`where`'s values as the driver takes them (as SQLAlchemy would bind them)."""
        binds = self.binds
        return tuple(
            value if (bind := binds[attribute]) is None else bind(value)
            for attribute, value in where.items()
        )


@functools.cache
def _shape(cls: type[Base], dialect: Dialect) -> _Shape:
    mapper: Mapper[Any] = inspect(cls)
    preparer = dialect.identifier_preparer
    table = preparer.format_table(cast(Table, cls.__table__))
    props = list(mapper.column_attrs)
    names = tuple(f"{table}.{preparer.quote(p.columns[0].name)}" for p in props)
    columns = tuple((p.key, p.columns[0].type._cached_result_processor(dialect, None))
                    for p in props)  # fmt: skip
    primary = [mapper.get_property_by_column(column).key for column in mapper.primary_key]
    positions = tuple([key for key, _ in columns].index(name) for name in primary)
    binds = {p.key: p.columns[0].type._cached_bind_processor(dialect) for p in props}
    return _Shape(table, names, columns, positions, binds)


def _objects(cls: type[B], shape: _Shape, rows: Sequence[Sequence[Any]], start: int) -> list[B]:
    """Detached objects of `cls` from the columns of `rows` that begin at `start`."""
    manager = manager_of_class(cls)
    end = start + len(shape.columns)
    objects = []
    for row in rows:
        obj = manager.new_instance()
        values = obj.__dict__
        for (attribute, processor), value in zip(shape.columns, row[start:end], strict=True):
            values[attribute] = value if processor is None or value is None else processor(value)
        # Detached, as if loaded and expunged: its identity is known, it is in no session.
        key = tuple(row[start + i] for i in shape.key_positions)
        instance_state(obj).key = (cls, key, None)
        objects.append(obj)
    return objects


def _fetch(session: Session, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
    with _driver_cursor(session.connection(), sql, parameters) as cursor:
        cursor.execute(sql, parameters)
        return list(cursor.fetchall())


def _conditions(shape: _Shape, where: tuple[str, ...], dialect: Dialect) -> str:
    mark = _PLACEHOLDERS[dialect.paramstyle]
    return " AND ".join(f"{shape.name(attribute)} = {mark}" for attribute in where)


@functools.cache
def _select_sql(
    cls: type[Base], where: tuple[str, ...], order_by: str | None, lock: bool, dialect: Dialect
) -> str:
    shape = _shape(cls, dialect)
    sql = f"SELECT {', '.join(shape.names)} FROM {shape.table} WHERE "
    sql += _conditions(shape, where, dialect)
    if order_by is not None:
        sql += f" ORDER BY {shape.name(order_by)}"
    if lock and dialect.name != "sqlite":  # SQLite's write transaction locks everything
        sql += " FOR UPDATE"
    return sql


def select_rows(
    session: Session, cls: type[B], where: dict[str, Any], *, order_by: str | None = None,
    lock: bool = False,
) -> list[B]:  # fmt: skip
    """The rows of `cls` whose columns equal `where`, read through the driver in the session's
    transaction (`lock`: `FOR UPDATE` where the database has it), as detached objects."""
    dialect = session.connection().dialect
    shape = _shape(cls, dialect)
    sql = _select_sql(cls, tuple(where), order_by, lock, dialect)
    return _objects(cls, shape, _fetch(session, sql, shape.parameters(where)), 0)


@functools.cache
def _family_sql(
    cls: type[Base], where: tuple[str, ...], attribute: str, link: tuple[tuple[str, str], ...],
    order_by: str, lock: bool, dialect: Dialect,
) -> str:  # fmt: skip
    child_cls: type[Base] = inspect(cls).relationships[attribute].mapper.class_
    shape, child = _shape(cls, dialect), _shape(child_cls, dialect)
    on = " AND ".join(f"{child.name(c)} = {shape.name(p)}" for c, p in link)
    sql = (
        f"SELECT {', '.join(shape.names + child.names)} FROM {shape.table} "
        f"LEFT OUTER JOIN {child.table} ON {on} WHERE {_conditions(shape, where, dialect)} "
        f"ORDER BY {child.name(order_by)}"
    )
    if lock and dialect.name != "sqlite":
        sql += f" FOR UPDATE OF {shape.table}"  # the parent's row only
    return sql


def select_family(
    session: Session, cls: type[B], where: dict[str, Any], *, attribute: str,
    link: dict[str, str], order_by: str, lock: bool = False,
) -> B | None:  # fmt: skip
    """One row of `cls` and its collection `attribute` in one statement (a left join), as
    `select_rows` reads them: the children whose columns equal the parent's as `link` says
    (child attribute: parent attribute), ordered by `order_by`. `where` must name at most one
    row (its key); `lock` locks that row only, not its children."""
    dialect = session.connection().dialect
    links = tuple(link.items())
    sql = _family_sql(cls, tuple(where), attribute, links, order_by, lock, dialect)
    shape = _shape(cls, dialect)
    rows = _fetch(session, sql, shape.parameters(where))
    if not rows:
        return None
    child_cls: type[Base] = inspect(cls).relationships[attribute].mapper.class_
    child = _shape(child_cls, dialect)
    keys = {tuple(row[i] for i in shape.key_positions) for row in rows}
    if len(keys) > 1:
        raise ValueError(f"select_family: {where!r} matches {len(keys)} rows of {cls.__name__}")
    [parent] = _objects(cls, shape, rows[:1], 0)
    start = len(shape.columns)
    present = [row for row in rows if row[start + child.key_positions[0]] is not None]
    set_committed_value(parent, attribute, _objects(child_cls, child, present, start))
    return parent


@dataclass(frozen=True, slots=True)
class _UpdatePlan:
    sql: str
    # (attribute, bind processor) per SET column, then per primary-key column.
    columns: tuple[tuple[str, Callable[[Any], Any] | None], ...]


_update_plans: dict[tuple[type[Base], frozenset[str], str], _UpdatePlan] = {}


def _update_plan(cls: type[Base], changed: frozenset[str], dialect: Dialect) -> _UpdatePlan:
    key = (cls, changed, dialect.name)
    plan = _update_plans.get(key)
    if plan is None:
        mapper: Mapper[Any] = inspect(cls)
        preparer = dialect.identifier_preparer
        mark = _PLACEHOLDERS[dialect.paramstyle]
        sets, wheres, columns = [], [], []
        for prop in mapper.column_attrs:
            if prop.key in changed:
                column = prop.columns[0]
                sets.append(f"{preparer.quote(column.name)} = {mark}")
                columns.append((prop.key, column.type._cached_bind_processor(dialect)))
        for key_column in mapper.primary_key:
            key_prop = mapper.get_property_by_column(key_column)
            wheres.append(f"{preparer.quote(key_column.name)} = {mark}")
            columns.append((key_prop.key, key_column.type._cached_bind_processor(dialect)))
        table = cast(Table, mapper.local_table)
        sql = (
            f"UPDATE {preparer.format_table(table)} SET {', '.join(sets)} "
            f"WHERE {' AND '.join(wheres)}"
        )
        plan = _update_plans[key] = _UpdatePlan(sql, tuple(columns))
    return plan


def write_back(session: Session, obj: Base) -> None:
    """UPDATE the columns of a detached, locked row that changed since it was loaded."""
    state = instance_state(obj)
    values = state.dict
    columns = column_keys(type(obj))
    # As the ORM's flush: only columns assigned since the load (the ORM keeps their loaded
    # value in `committed_state`), and of those only the ones set to a different value.
    changed = frozenset(
        key
        for key, loaded in state.committed_state.items()
        if key in columns and values.get(key) != loaded
    )
    if not changed:
        return
    connection = session.connection()
    plan = _update_plan(type(obj), changed, connection.dialect)
    row = tuple(
        values.get(attribute) if processor is None else processor(values.get(attribute))
        for attribute, processor in plan.columns
    )
    matched = execute_driver(connection, plan.sql, [row])
    if matched != 1:  # as the ORM's flush would: the row was expected to be there
        raise StaleDataError(f"UPDATE of {type(obj).__name__} matched {matched} rows, not 1.")
    for attribute in changed:  # what was written is now the row's committed state
        set_committed_value(obj, attribute, values.get(attribute))
