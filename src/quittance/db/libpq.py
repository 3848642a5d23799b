"""PostgreSQL: statements sent straight through libpq, several in one round trip.

`db/rows.py` writes and reads the hot path's rows through the driver. On PostgreSQL it hands
its statements here: they go out in libpq's pipeline mode, all of them, then one Sync, and the
answers are read back in one go. That is one round trip, as psycopg's own pipeline mode gives,
for about a quarter of its CPU: psycopg's pipeline is written for any use (cursors, a result
queue, one command sent per time the socket is ready), and costs some 40 µs of Python per
statement, more than the statement costs PostgreSQL.

The pieces are psycopg's own, so the values are those psycopg's cursors would give and take:
the connection's `Transformer` turns parameters into PostgreSQL's text format and rows into
Python values with the connection's adapters, and a failed statement raises the psycopg error
its SQLSTATE names (`UniqueViolation`, `SerializationFailure`, ...). Statements are prepared
once per connection (the server then plans them once) under names psycopg never uses. psycopg's
own preparing is off (`db/engine.py`): its `ROLLBACK` deallocates every prepared statement of
the connection, ours too, whenever it has prepared one itself.

A transaction is begun here when the connection has none yet, with the `BEGIN` sent ahead of
the statements in the same round trip; psycopg sees the transaction and commits it as usual,
unless the caller has it committed here too, behind the statements (`commit`): psycopg then
finds no transaction left to commit.
"""

import contextlib
import select
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import abc, pq
from psycopg.adapt import PyFormat, Transformer
from psycopg.errors import InvalidSqlStatementName, error_from_result

# Key, in the pool's `info` of a DBAPI connection (which lives and dies with it), of its state.
INFO_KEY = "quittance_libpq"

# How many statements a connection keeps prepared; past that, new ones run unprepared.
MOST_PREPARED = 256

_EXEC = pq.ExecStatus
_DONE = (_EXEC.COMMAND_OK, _EXEC.TUPLES_OK, _EXEC.EMPTY_QUERY)


@dataclass(slots=True)
class Outcome:
    """What a statement did: the rows it matched (`rowcount`) and, for a read, its rows."""

    rowcount: int
    rows: list[tuple[Any, ...]] | None


class Failed(Exception):
    """Statement `index` failed with `error` (a psycopg error); the transaction is aborted."""

    def __init__(self, index: int, error: psycopg.Error) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


@dataclass(slots=True)
class _State:
    """What a connection keeps between calls: its adapters and its prepared statements."""

    pgconn: Any
    transformer: abc.Transformer
    encoding: str
    prepared: dict[str, bytes] = field(default_factory=dict)
    names: int = 0  # prepared statements named so far


def _state(info: dict[Any, Any], connection: psycopg.Connection[Any]) -> _State:
    state: _State | None = info.get(INFO_KEY)
    if state is None or state.pgconn is not connection.pgconn:
        state = info[INFO_KEY] = _State(
            connection.pgconn, Transformer(connection), connection.info.encoding
        )
    return state


def _begin(connection: psycopg.Connection[Any]) -> bytes:
    """The command that starts a transaction as psycopg would start it on `connection`."""
    parts = [b"BEGIN"]
    if connection.isolation_level is not None:
        level = psycopg.IsolationLevel(connection.isolation_level).name.replace("_", " ")
        parts.append(b"ISOLATION LEVEL " + level.encode())
    if connection.read_only is not None:
        parts.append(b"READ ONLY" if connection.read_only else b"READ WRITE")
    if connection.deferrable is not None:
        parts.append(b"DEFERRABLE" if connection.deferrable else b"NOT DEFERRABLE")
    return b" ".join(parts)


_TEXT: dict[int, list[PyFormat]] = {}


def _formats(count: int) -> list[PyFormat]:
    formats = _TEXT.get(count)
    if formats is None:
        formats = _TEXT[count] = [PyFormat.TEXT] * count
    return formats


# What an answer from libpq belongs to: (statement index, -1 for the BEGIN or the number of
# statements for the COMMIT; whether it is the statement's own answer rather than its
# PREPARE's, the BEGIN's or the COMMIT's).
_Owner = tuple[int, bool]


def run(
    connection: psycopg.Connection[Any],
    info: dict[Any, Any],
    statements: Sequence[tuple[str, Sequence[Any]]],
    *,
    commit: bool = False,
) -> list[Outcome]:
    """Run `statements` (SQL with `$n` placeholders, and its parameters) in order, in the
    connection's transaction (begun if there is none), in one round trip; what each did.
    `commit`: then commit the transaction, in the same round trip.

    Raises `Failed` for the first statement that failed (those after it did not run; index
    `len(statements)` is the COMMIT), or psycopg's `OperationalError` if the connection broke
    (with `commit`, whether the COMMIT ran is then unknown)."""
    if connection.autocommit:
        raise psycopg.ProgrammingError("the driver path runs statements in a transaction")
    state = _state(info, connection)
    pgconn, prepared = state.pgconn, state.prepared
    transformer = state.transformer
    # Every parameter is adapted before anything is sent: a value psycopg cannot adapt fails
    # here, with nothing half sent.
    values = []
    for index, (_sql, parameters) in enumerate(statements):
        try:
            values.append(transformer.dump_sequence(parameters, _formats(len(parameters))))
        except psycopg.Error as exc:
            raise Failed(index, exc) from exc
    begin = pgconn.transaction_status == pq.TransactionStatus.IDLE
    owners: list[_Owner] = []
    preparing: dict[int, str] = {}  # answer position -> the SQL it prepares
    synced = False
    pgconn.enter_pipeline_mode()
    try:
        if begin:
            pgconn.send_query_params(_begin(connection), None)
            owners.append((-1, False))
        for index, (sql, _parameters) in enumerate(statements):
            name = prepared.get(sql)
            if name is None and len(prepared) < MOST_PREPARED:
                name = prepared[sql] = b"_quittance_%d" % state.names
                state.names += 1
                pgconn.send_prepare(name, sql.encode())
                preparing[len(owners)] = sql
                owners.append((index, False))
            if name is None:
                pgconn.send_query_params(sql.encode(), values[index])
            else:
                pgconn.send_query_prepared(name, values[index])
            owners.append((index, True))
        if commit:
            pgconn.send_query_params(b"COMMIT", None)
            owners.append((len(statements), False))
        pgconn.pipeline_sync()
        synced = True
        answers = _answers(pgconn)
    except BaseException:
        for sql in preparing.values():  # whether they exist is unknown: prepare them again
            prepared.pop(sql, None)
        with contextlib.suppress(psycopg.Error):
            if synced and pgconn.status == pq.ConnStatus.OK:  # interrupted while reading
                _answers(pgconn)
            pgconn.exit_pipeline_mode()
        raise
    pgconn.exit_pipeline_mode()
    return _outcomes(state, owners, preparing, answers)


def _answers(pgconn: Any) -> list[Any]:
    """Flush what is queued, then read every answer up to the Sync (which is left out)."""
    fd = pgconn.socket
    while pgconn.flush():  # the socket's buffer is full: wait until it takes more
        _wait(fd, select.POLLOUT | select.POLLIN)
        pgconn.consume_input()
    answers: list[Any] = []
    while True:
        while pgconn.is_busy():
            _wait(fd, select.POLLIN)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:  # the end of one statement's answers
            continue
        if result.status == _EXEC.PIPELINE_SYNC:
            return answers
        answers.append(result)


def _wait(fd: int, events: int) -> None:
    poller = select.poll()
    poller.register(fd, events)
    poller.poll()


def _outcomes(
    state: _State, owners: list[_Owner], preparing: dict[int, str], answers: list[Any]
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    failed: Failed | None = None
    transformer = state.transformer
    for position, ((index, own), result) in enumerate(zip(owners, answers, strict=True)):
        status = result.status
        if status == _EXEC.FATAL_ERROR or status == _EXEC.PIPELINE_ABORTED:
            if position in preparing:  # not prepared after all
                state.prepared.pop(preparing[position], None)
            if failed is None and status == _EXEC.FATAL_ERROR:
                failed = Failed(index, error_from_result(result, encoding=state.encoding))
                if isinstance(failed.error, InvalidSqlStatementName):
                    state.prepared.clear()  # deallocated behind our back: prepare them again
            continue
        if status not in _DONE:
            raise psycopg.InterfaceError(f"unexpected answer {_EXEC(status).name} from libpq")
        if not own:
            continue
        rows = None
        if status == _EXEC.TUPLES_OK:
            transformer.set_pgresult(result)
            rows = transformer.load_rows(0, result.ntuples, tuple)
            transformer.set_pgresult(None)
        count = result.command_tuples
        outcomes.append(Outcome(count if count is not None else -1, rows))
    if failed is not None:
        if failed.index < 0:  # the BEGIN itself
            raise failed.error
        raise failed
    return outcomes
