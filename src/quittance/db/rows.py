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

In a batch of units of work (`db/batch.py`, `defer_writes`) new rows and write-backs are held
back and sent together: before the next read of the transaction (through the driver here, or
any statement SQLAlchemy runs) when a write-back is waiting, and at the end of the batch. On
PostgreSQL what is sent together goes in one round trip (`db/libpq.py`), together with the
read that needed it, and the batch's last writes with its COMMIT (`flush_deferred`).
"""

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast, overload

from psycopg.errors import DivisionByZero, InFailedSqlTransaction
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Dialect, Engine, Table, event, inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.base import manager_of_class
from sqlalchemy.orm.exc import StaleDataError

from quittance.db import libpq
from quittance.db.base import Base


@dataclass(frozen=True, slots=True)
class _Plan:
    table: str
    sql: str
    # (attribute, scalar default, bind processor) per column, in the statement's order.
    columns: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]
    tracked: bool = False  # the INSERT returns each row's version (`track`)


@functools.cache
def _returning(cls: type[Base], dialect: Dialect) -> str:
    """PostgreSQL: what a tracked write returns, the version of each row it wrote (see
    `ROW_VERSION`) and the row's key (to tell which object it is)."""
    mapper: Mapper[Any] = inspect(cls)
    keys = ", ".join(
        f"{dialect.identifier_preparer.quote(column.name)} AS row_key_{n}"
        for n, column in enumerate(mapper.primary_key)
    )
    return f" RETURNING xmin::text AS row_xmin, ctid::text AS row_ctid, {keys}"


# Key, in a detached object's `__dict__`, of the version of its row as this process last wrote
# it (`track`): on PostgreSQL the row version's `xmin` (the transaction that wrote it) and `ctid`
# (where it lies). Any later UPDATE of the row, by anyone, in any transaction, makes a row
# version with another `ctid` (its own transaction's) or another `xmin` (any other), so a write
# that expects the pair (`write_back(..., expect_version=True)`) matches only a row that has
# not changed since: the object then still is the row, and nothing needs reading it again.
ROW_VERSION = "_quittance_row_version"


_plans: dict[tuple[type[Base], str], _Plan] = {}
B = TypeVar("B", bound=Base)
T = TypeVar("T")
U = TypeVar("U")


def _marks(dialect: Dialect, count: int) -> list[str]:
    """`count` parameter placeholders: PostgreSQL's own `$1`, `$2`, ... (`db/libpq.py` sends
    statements as they are), SQLite's `?`."""
    if dialect.name == "postgresql":
        return [f"${n}" for n in range(1, count + 1)]
    return ["?"] * count


def _cursor(connection: Connection) -> Any:
    """A DBAPI cursor of `connection` (SQLite: PostgreSQL's statements go through `db.libpq`)."""
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    return dbapi_connection.cursor()


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
        sql = (
            f"INSERT INTO {preparer.format_table(table)} ({', '.join(names)}) "
            f"VALUES ({', '.join(_marks(dialect, len(names)))})"
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


# Key in `session.info`, and in the `info` of its connection, of what `defer_writes` holds back.
_DEFERRED = "quittance_deferred_writes"


@dataclass(slots=True)
class _Pending:
    """Rows and write-backs held back in a transaction, in the order they were made."""

    inserts: dict[_Plan, list[tuple[Any, ...]]] = field(default_factory=dict)
    # The objects of a tracked plan's rows, in the same order, to note their versions on.
    owners: dict[_Plan, list[Base]] = field(default_factory=dict)
    # Each write-back, with its object when it is tracked.
    updates: list[tuple["_UpdatePlan", tuple[Any, ...], Base | None]] = field(default_factory=list)
    # The session's connection (asked for once: `Session.connection` costs more than a
    # statement's bind), and its `info`, where it is registered (see `_before_statement`).
    connection: Connection | None = None
    registered: dict[Any, Any] | None = None


@functools.cache
def _table_order() -> dict[str, int]:
    return {table.name: n for n, table in enumerate(Base.metadata.sorted_tables)}


def defer_writes(session: Session) -> None:
    """Hold back `insert_rows` and `write_back` in this session's transaction until they are
    needed (see the module's docstring) or `flush_deferred` sends them.

    For a batch of units of work (`db/batch.py`): one `executemany` per table instead of one
    statement per row, and on PostgreSQL one round trip for all of it. Held-back write-backs
    are sent before any statement, so every read sees them (and whatever else is held back
    goes with them). Held-back new rows may not have been sent when a read runs: a unit must
    not read back what it inserts.
    """
    connection = session.connection()
    pending = _Pending(connection=connection, registered=connection.info)
    session.info[_DEFERRED] = connection.info[_DEFERRED] = pending


def _connection(session: Session) -> Connection:
    """The session's connection (the one `defer_writes` noted, if it did)."""
    pending: _Pending | None = session.info.get(_DEFERRED)
    if pending is not None and pending.connection is not None:
        return pending.connection
    return session.connection()


class CommitFailed(Exception):
    """The COMMIT sent with a transaction's last writes failed, or whether it ran is unknown
    (the connection broke): `error` says what happened. Its work must not be run again."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def flush_deferred(session: Session, *, commit: bool = False) -> None:
    """Send what is held back (new rows parents first, then the write-backs in their order) and
    stop holding back.

    `commit`: the transaction ends here, and on PostgreSQL its COMMIT goes with these writes
    in one round trip when the session has nothing of its own left to flush (the session's
    commit then finds it done). A write-back that matches no row then fails the statement
    itself, so the COMMIT does not run. Raises `CommitFailed` when the COMMIT failed or may
    have run."""
    connection = _connection(session)
    pending = _unregister(session) or _Pending()
    postgres = connection.dialect.name == "postgresql"
    if commit and postgres and not (session.new or session.dirty or session.deleted):
        dbapi_connection: Any = connection.connection.dbapi_connection
        idle = dbapi_connection.info.transaction_status == TransactionStatus.IDLE
        if pending.inserts or pending.updates or not idle:
            _send_libpq(connection, _statements(pending, multi_row=True), (), commit=True)
        return
    if pending.inserts or pending.updates:
        _send(connection, pending)


def discard_deferred(session: Session) -> None:
    """Forget what is held back (the transaction is being rolled back). The connection's `info`
    outlives the transaction, so this must run whatever happened."""
    _unregister(session)


def _unregister(session: Session) -> "_Pending | None":
    pending: _Pending | None = session.info.pop(_DEFERRED, None)
    if pending is not None and pending.registered is not None:
        pending.registered.pop(_DEFERRED, None)
        pending.registered = pending.connection = None
    return pending


@event.listens_for(Engine, "before_cursor_execute")
def _before_statement(connection: Connection, *_args: Any) -> None:
    """Any statement SQLAlchemy runs in a transaction that holds back write-backs sees them."""
    pending: _Pending | None = connection.info.get(_DEFERRED)
    if pending is not None and pending.updates:
        _send(connection, pending)


def insert_rows(session: Session, objects: Sequence[Base], *, track: bool = False) -> None:
    """INSERT transient objects of one class now (or, deferred, when `defer_writes` sends them),
    in the session's transaction.

    `track` (PostgreSQL; nothing elsewhere): each object is made its row as written, its
    defaults filled in, detached with its identity, and given its row's version once sent
    (`ROW_VERSION`), so that a later transaction can write it back without reading it again."""
    if not objects:
        return
    connection = _connection(session)
    plan = _plan(type(objects[0]), connection.dialect)
    rows = [values(obj, plan) for obj in objects]
    owners: list[Base] | None = None
    if track and connection.dialect.name == "postgresql":
        for obj in objects:
            _fill_defaults(obj, plan)
        plan = _tracked_plan(plan, _returning(type(objects[0]), connection.dialect))
        owners = list(objects)
    pending: _Pending | None = session.info.get(_DEFERRED)
    if pending is not None:
        pending.inserts.setdefault(plan, []).extend(rows)
        if owners is not None:
            pending.owners.setdefault(plan, []).extend(owners)
        return
    if owners is None:
        execute_driver(connection, plan.sql, rows)
        return
    outcomes = _run_libpq(connection, [(plan.sql, row) for row in rows])
    _note_versions(owners, [found for outcome in outcomes for found in outcome.rows or ()])


def _fill_defaults(obj: Base, plan: _Plan) -> None:
    """Give `obj` the scalar defaults its INSERT fills in, so that it holds what its row does."""
    state = obj.__dict__
    for attribute, default, _processor in plan.columns:
        if state.get(attribute) is None:
            state[attribute] = default


@functools.cache
def _tracked_plan(plan: _Plan, returning: str) -> _Plan:
    return _Plan(plan.table, plan.sql + returning, plan.columns, tracked=True)


def _note_versions(owners: Sequence[Base], returned: Sequence[Sequence[Any]]) -> None:
    """Note on each object the version its tracked write returned (`_returning`: the version,
    then the key), and make a new row's object detached with its identity, as if loaded and
    expunged: what was assigned before the INSERT is then its loaded state."""
    by_key = {tuple(obj.__dict__[key] for key in _primary_keys(type(obj))): obj for obj in owners}
    for found in returned:  # (a guarded write-back's answer has its check after the key)
        obj = by_key.pop(tuple(found[2 : 2 + len(_primary_keys(type(owners[0])))]), None)
        if obj is None:
            raise StaleDataError(f"a tracked write returned a row it did not write: {found!r}")
        obj.__dict__[ROW_VERSION] = (found[0], found[1])
        state = instance_state(obj)
        if state.key is None:
            state.key = inspect(type(obj)).identity_key_from_instance(obj)
            state.committed_state.clear()
    if by_key:
        raise StaleDataError(f"a tracked write returned no row version for {len(by_key)} rows")


def row_version(obj: Base) -> tuple[str, str] | None:
    """The version of `obj`'s row as this process last wrote it, if it tracked the write."""
    version: tuple[str, str] | None = obj.__dict__.get(ROW_VERSION)
    return version


# The most rows one multi-row INSERT takes: sizes are powers of two up to it, so that each table
# has a handful of statements for psycopg to prepare, whatever the batch's size.
_MOST_ROWS = 64


@functools.cache
def _multi_row(sql: str, columns: int, count: int) -> str:
    """`sql`, PostgreSQL's INSERT of one row of `columns` columns, made to insert `count`."""
    head = sql[: sql.rindex(" VALUES ") + len(" VALUES ")]
    tail = sql[sql.index(" RETURNING ") :] if " RETURNING " in sql else ""  # a tracked one's
    groups = (
        "(" + ", ".join(f"${row * columns + n}" for n in range(1, columns + 1)) + ")"
        for row in range(count)
    )
    return head + ", ".join(groups) + tail


# (SQL, its rows, how many rows it must match or None, the objects whose versions it returns)
_Statement = tuple[str, list[tuple[Any, ...]], int | None, list[Base] | None]


def _statements(pending: _Pending, multi_row: bool) -> list[_Statement]:
    """What `pending` holds as `_Statement`s, emptying it: new rows parents first, then the
    write-backs in order, one statement per run of the same UPDATE. `multi_row`: several new
    rows of a table go in one INSERT (each statement has a cost of its own on PostgreSQL,
    whereas SQLite's `executemany` is a loop in C), unless each returns its row's version."""
    order = _table_order()
    statements: list[_Statement] = []
    for plan in sorted(pending.inserts, key=lambda p: (order[p.table], p.tracked)):
        rows = pending.inserts[plan]
        owners = pending.owners.get(plan)  # tracked: every row's object
        if not multi_row or len(rows) == 1:
            statements.append((plan.sql, rows, None, owners))
            continue
        start = 0
        while start < len(rows):
            count = min(_MOST_ROWS, 1 << ((len(rows) - start).bit_length() - 1))
            flat = tuple(value for row in rows[start : start + count] for value in row)
            chunk = None if owners is None else owners[start : start + count]
            statements.append((_multi_row(plan.sql, len(plan.columns), count), [flat], None, chunk))
            start += count
    runs: list[tuple[str, list[tuple[Any, ...]], list[Base] | None]] = []
    for update, row, owner in pending.updates:
        if runs and runs[-1][0] == update.sql:
            runs[-1][1].append(row)
        else:
            runs.append((update.sql, [row], None if owner is None else []))
        if owner is not None:
            cast(list[Base], runs[-1][2]).append(owner)
    statements += [(sql, batch, len(batch), owners) for sql, batch, owners in runs]
    pending.inserts.clear()
    pending.owners.clear()
    pending.updates.clear()
    return statements


def _send(
    connection: Connection, pending: _Pending, reads: Sequence[tuple[str, tuple[Any, ...]]] = ()
) -> list[list[Any]]:
    """Send what `pending` holds, then `reads` (returning the rows of each), in the connection's
    transaction: on PostgreSQL in one round trip. Each write-back must match its row."""
    if connection.dialect.name == "postgresql":
        return _send_libpq(connection, _statements(pending, multi_row=True), reads)
    statements = _statements(pending, multi_row=False)
    results: list[list[Any]] = []
    for sql, batch, expected, _owners in statements:  # tracking is PostgreSQL's only
        matched = execute_driver(connection, sql, batch)
        if expected is not None and matched != expected:
            # As the ORM's flush would: each row written back was expected to be there.
            raise StaleDataError(f"{sql!r} matched {matched} rows, not {expected}.")
    for sql, parameters in reads:
        with _driver_cursor(connection, sql, parameters) as cursor:
            cursor.execute(sql, parameters)
            results.append(list(cursor.fetchall()))
    return results


def _send_libpq(
    connection: Connection,
    statements: list[_Statement],
    reads: Sequence[tuple[str, tuple[Any, ...]]],
    *,
    commit: bool = False,
) -> list[list[Any]]:
    """`_send` on PostgreSQL: every statement and read in one round trip (`db/libpq.py`), and
    the COMMIT after them with `commit` (each write-back then checks its row itself)."""
    flat: list[tuple[str, Sequence[Any]]] = []
    guarded: dict[int, str] = {}  # position in `flat` -> the write-back it guards
    for sql, batch, expected, owners in statements:
        if commit and expected is not None:
            keys = 0 if owners is None else len(_primary_keys(type(owners[0])))
            for row in batch:
                guarded[len(flat)] = sql
                flat.append((_guarded(sql, keys), row))
        else:
            flat += [(sql, row) for row in batch]
    flat += reads
    outcomes = _run_libpq(connection, flat, commit=commit, guarded=guarded)
    position = 0
    for sql, batch, expected, owners in statements:
        answers = outcomes[position : position + len(batch)]
        matched = sum(outcome.rowcount for outcome in answers)
        position += len(batch)
        if expected is not None and matched != expected:
            # As the ORM's flush would: each row written back was expected to be there.
            raise StaleDataError(f"{sql!r} matched {matched} rows, not {expected}.")
        if owners is not None:
            _note_versions(owners, [found for outcome in answers for found in outcome.rows or ()])
    return [cast(list[Any], outcome.rows) for outcome in outcomes[position:]]


@functools.cache
def _guarded(update: str, keys: int) -> str:
    """A write-back's UPDATE made to fail (division by zero) unless it matches one row: sent
    ahead of a COMMIT in the same round trip, it stops the COMMIT when its row is missing. A
    tracked one (`keys`: the columns of its key, 0 if untracked) still answers what it
    returns (`_returning`) first."""
    if keys:
        columns = "".join(f", min(row_key_{n})" for n in range(keys))
        return (
            f"WITH written AS ({update}) "
            f"SELECT min(row_xmin), min(row_ctid){columns}, 1 / (count(*) = 1)::int FROM written"
        )
    return f"WITH written AS ({update} RETURNING 1) SELECT 1 / (count(*) = 1)::int FROM written"


def _run_libpq(
    connection: Connection,
    statements: Sequence[tuple[str, Sequence[Any]]],
    *,
    commit: bool = False,
    guarded: Mapping[int, str] | None = None,
) -> list[libpq.Outcome]:
    """`libpq.run` on the connection's driver connection; its errors as `_translated` says,
    a failed guard (`guarded`: position -> the write-back's UPDATE, see `_guarded`) as
    `StaleDataError`, and with `commit` a failed or uncertain COMMIT as `CommitFailed`."""
    pool_connection = connection.connection
    dbapi_connection: Any = pool_connection.dbapi_connection
    if commit and dbapi_connection.info.transaction_status == TransactionStatus.INERROR:
        # A statement failed earlier and its error was not raised: a COMMIT would only roll
        # back, and answer as if nothing were wrong.
        raise InFailedSqlTransaction("the transaction failed earlier: it cannot commit")
    try:
        return libpq.run(dbapi_connection, pool_connection.info, statements, commit=commit)
    except libpq.Failed as failed:
        if failed.index == len(statements):  # the COMMIT itself
            raise CommitFailed(_translated(connection, failed.error, "COMMIT", None)) from None
        if guarded and failed.index in guarded and isinstance(failed.error, DivisionByZero):
            raise StaleDataError(f"{guarded[failed.index]!r} matched no row, not 1.") from None
        sql, parameters = statements[failed.index]
        raise _translated(connection, failed.error, sql, parameters) from failed.error
    except connection.dialect.loaded_dbapi.Error as exc:  # the connection broke
        error = _translated(connection, exc, "", None)
        if commit:  # the COMMIT may have run
            raise CommitFailed(error) from exc
        raise error from exc


def _translated(connection: Connection, exc: Any, sql: str, parameters: Any) -> Exception:
    """A driver error as SQLAlchemy would raise it (IntegrityError, OperationalError, ...); a
    connection the database has closed is dropped so the pool does not hand it out again."""
    dbapi_connection = connection.connection.dbapi_connection
    disconnected = connection.dialect.is_disconnect(exc, dbapi_connection, None)
    if disconnected:
        connection.invalidate(exc)
    error: Exception = DBAPIError.instance(
        sql, parameters, exc, connection.dialect.loaded_dbapi.Error,
        connection_invalidated=disconnected, dialect=connection.dialect,
    )  # fmt: skip
    return error


@contextlib.contextmanager
def _driver_cursor(connection: Connection, sql: str, parameters: Any) -> Iterator[Any]:
    """A DBAPI cursor of `connection` (inside its transaction), closed afterwards; a driver
    error is raised as `_translated` says."""
    cursor = _cursor(connection)
    try:
        yield cursor
    except connection.dialect.loaded_dbapi.Error as exc:
        raise _translated(connection, exc, sql, parameters) from exc
    finally:
        with contextlib.suppress(connection.dialect.loaded_dbapi.Error):
            cursor.close()


def execute_driver(connection: Connection, sql: str, rows: list[tuple[Any, ...]]) -> int:
    """Run a prebuilt statement (the driver's placeholders) once per row through the driver
    of `connection`, inside its transaction; return the rows it matched."""
    if connection.dialect.name == "postgresql":
        outcomes = _run_libpq(connection, [(sql, row) for row in rows])
        return sum(outcome.rowcount for outcome in outcomes)
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


def _fetch(session: Session, reads: Sequence[tuple[str, tuple[Any, ...]]]) -> list[list[Any]]:
    """The rows of each read, after the write-backs held back in the transaction (if any)."""
    connection = _connection(session)
    pending: _Pending | None = session.info.get(_DEFERRED)
    if pending is None or not pending.updates:  # held-back new rows wait for the batch's end
        pending = _Pending()
    return _send(connection, pending, reads)


@dataclass(frozen=True, slots=True)
class Read(Generic[T]):
    """A read through the driver, prepared to be sent (`fetch`): its statement, its parameters,
    and how its rows become what it answers."""

    sql: str
    parameters: tuple[Any, ...]
    decode: Callable[[list[Any]], T]


@overload
def fetch(session: Session, first: Read[T], /) -> tuple[T]: ...
@overload
def fetch(session: Session, first: Read[T], second: Read[U], /) -> tuple[T, U]: ...
def fetch(session: Session, *reads: Read[Any]) -> tuple[Any, ...]:
    """What each read answers, read together in the session's transaction (on PostgreSQL in one
    round trip, with any write-backs held back), in their order: a lock they take is taken in
    that order."""
    rows = _fetch(session, [(read.sql, read.parameters) for read in reads])
    return tuple(read.decode(found) for read, found in zip(reads, rows, strict=True))


def _conditions(shape: _Shape, where: tuple[str, ...], dialect: Dialect) -> str:
    marks = _marks(dialect, len(where))
    return " AND ".join(f"{shape.name(a)} = {m}" for a, m in zip(where, marks, strict=True))


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


def rows_read(
    session: Session, cls: type[B], where: dict[str, Any], *, order_by: str | None = None,
    lock: bool = False,
) -> Read[list[B]]:  # fmt: skip
    """`select_rows`, prepared to be sent with other reads (`fetch`)."""
    dialect = _connection(session).dialect
    shape = _shape(cls, dialect)
    sql = _select_sql(cls, tuple(where), order_by, lock, dialect)
    return Read(sql, shape.parameters(where), lambda rows: _objects(cls, shape, rows, 0))


def select_rows(
    session: Session, cls: type[B], where: dict[str, Any], *, order_by: str | None = None,
    lock: bool = False,
) -> list[B]:  # fmt: skip
    """The rows of `cls` whose columns equal `where`, read through the driver in the session's
    transaction (`lock`: `FOR UPDATE` where the database has it), as detached objects."""
    return fetch(session, rows_read(session, cls, where, order_by=order_by, lock=lock))[0]


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


def family_read(
    session: Session, cls: type[B], where: dict[str, Any], *, attribute: str,
    link: dict[str, str], order_by: str, lock: bool = False,
) -> Read[B | None]:  # fmt: skip
    """`select_family`, prepared to be sent with other reads (`fetch`)."""
    dialect = _connection(session).dialect
    links = tuple(link.items())
    sql = _family_sql(cls, tuple(where), attribute, links, order_by, lock, dialect)
    shape = _shape(cls, dialect)
    child_cls: type[Base] = inspect(cls).relationships[attribute].mapper.class_
    child = _shape(child_cls, dialect)

    def decode(rows: list[Any]) -> B | None:
        if not rows:
            return None
        keys = {tuple(row[i] for i in shape.key_positions) for row in rows}
        if len(keys) > 1:
            raise ValueError(f"select_family: {where!r} matches {len(keys)} rows of {cls.__name__}")
        [parent] = _objects(cls, shape, rows[:1], 0)
        start = len(shape.columns)
        present = [row for row in rows if row[start + child.key_positions[0]] is not None]
        set_committed_value(parent, attribute, _objects(child_cls, child, present, start))
        return parent

    return Read(sql, shape.parameters(where), decode)


def select_family(
    session: Session, cls: type[B], where: dict[str, Any], *, attribute: str,
    link: dict[str, str], order_by: str, lock: bool = False,
) -> B | None:  # fmt: skip
    """One row of `cls` and its collection `attribute` in one statement (a left join), as
    `select_rows` reads them: the children whose columns equal the parent's as `link` says
    (child attribute: parent attribute), ordered by `order_by`. `where` must name at most one
    row (its key); `lock` locks that row only, not its children."""
    read = family_read(
        session, cls, where, attribute=attribute, link=link, order_by=order_by, lock=lock
    )
    return fetch(session, read)[0]


@dataclass(frozen=True, slots=True)
class _UpdatePlan:
    sql: str
    # (attribute, bind processor) per SET column, then per primary-key column.
    columns: tuple[tuple[str, Callable[[Any], Any] | None], ...]


_update_plans: dict[tuple[type[Base], frozenset[str], str, bool, bool], _UpdatePlan] = {}


def _update_plan(
    cls: type[Base], changed: frozenset[str], dialect: Dialect, *, expect: bool = False,
    track: bool = False,
) -> _UpdatePlan:  # fmt: skip
    """The UPDATE of `changed` columns of a row by its key; `expect`: only if the row is still
    the version given after the key (PostgreSQL); `track`: returning the version it writes."""
    key = (cls, changed, dialect.name, expect, track)
    plan = _update_plans.get(key)
    if plan is None:
        mapper: Mapper[Any] = inspect(cls)
        preparer = dialect.identifier_preparer
        marks = iter(_marks(dialect, len(changed) + len(mapper.primary_key) + 2 * expect))
        sets, wheres, columns = [], [], []
        for prop in mapper.column_attrs:
            if prop.key in changed:
                column = prop.columns[0]
                sets.append(f"{preparer.quote(column.name)} = {next(marks)}")
                columns.append((prop.key, column.type._cached_bind_processor(dialect)))
        for key_column in mapper.primary_key:
            key_prop = mapper.get_property_by_column(key_column)
            wheres.append(f"{preparer.quote(key_column.name)} = {next(marks)}")
            columns.append((key_prop.key, key_column.type._cached_bind_processor(dialect)))
        if expect:
            wheres += [f"xmin = {next(marks)}::xid", f"ctid = {next(marks)}::tid"]
        table = cast(Table, mapper.local_table)
        sql = (
            f"UPDATE {preparer.format_table(table)} SET {', '.join(sets)} "
            f"WHERE {' AND '.join(wheres)}{_returning(cls, dialect) if track else ''}"
        )
        plan = _update_plans[key] = _UpdatePlan(sql, tuple(columns))
    return plan


def write_back(
    session: Session, obj: Base, *, track: bool = False, expect_version: bool = False
) -> None:
    """UPDATE the columns of a detached, locked row that changed since it was loaded (now, or,
    deferred, before the transaction's next read).

    `track` (PostgreSQL; nothing elsewhere): note the version of the row it writes on `obj`
    (`ROW_VERSION`). `expect_version` (PostgreSQL): `obj` was not read in this transaction
    but kept from one that tracked its write: the UPDATE matches only if the row is still that
    version, and otherwise fails as a missing row does (`StaleDataError`), so the transaction
    rolls back and its work can be run again on a fresh read. It then writes even when nothing
    changed: the write is what checks the row and locks it."""
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
    connection = _connection(session)
    postgres = connection.dialect.name == "postgresql"
    version: tuple[str, str] | None = values.pop(ROW_VERSION, None)  # written over from here
    if expect_version:
        if version is None or not postgres:
            raise ValueError(f"this {type(obj).__name__} has no row version to expect")
        if not changed:  # the write still checks the version and locks the row
            changed = frozenset(key for key in _primary_keys(type(obj)))
    elif not changed:
        if version is not None:
            values[ROW_VERSION] = version  # nothing written: the row is still that version
        return
    track = track and postgres
    plan = _update_plan(type(obj), changed, connection.dialect, expect=expect_version, track=track)
    row = tuple(
        values.get(attribute) if processor is None else processor(values.get(attribute))
        for attribute, processor in plan.columns
    )
    if expect_version:
        row += cast(tuple[str, str], version)
    pending: _Pending | None = session.info.get(_DEFERRED)
    if pending is not None:
        pending.updates.append((plan, row, obj if track else None))
    elif track or expect_version:
        outcomes = _run_libpq(connection, [(plan.sql, row)])
        if outcomes[0].rowcount != 1:
            raise StaleDataError(f"UPDATE of {type(obj).__name__} matched no row, not 1.")
        if track:
            _note_versions([obj], outcomes[0].rows or ())
    else:
        matched = execute_driver(connection, plan.sql, [row])
        if matched != 1:  # as the ORM's flush would: the row was expected to be there
            raise StaleDataError(f"UPDATE of {type(obj).__name__} matched {matched} rows, not 1.")
    for attribute in changed:  # what was written is now the row's committed state
        set_committed_value(obj, attribute, values.get(attribute))


@functools.cache
def _primary_keys(cls: type[Base]) -> tuple[str, ...]:
    mapper: Mapper[Any] = inspect(cls)
    return tuple(mapper.get_property_by_column(column).key for column in mapper.primary_key)
