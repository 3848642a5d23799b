"""Engines for SQLite (the embedded default) and PostgreSQL (production)."""

import select
from typing import Any

import orjson
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

# Execution option that marks a connection as the start of a write transaction.
WRITE_OPTION = "quittance_write"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs that name no driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def build_engine(url: str, *, pool_size: int = 20) -> Engine:
    """Create the engine for `url` with Quittance's connection settings."""
    url = normalize_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, pool_size)
    if backend == "postgresql":
        # No pre-ping (it costs a round trip per request): connections are recycled, and a
        # connection the server dropped invalidates the pool on first use.
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_recycle=1800,
            # psycopg prepares a statement run five times, and deallocates all of a
            # connection's prepared statements at every ROLLBACK (the end of every read):
            # off. The hot path prepares its own (`db/libpq.py`), which live on.
            connect_args={"connect_timeout": 10, "prepare_threshold": None},
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )
    raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")


def _sqlite_engine(url: str, pool_size: int) -> Engine:
    # isolation_level=None hands transaction control to the "begin" hook below, so write
    # transactions take SQLite's write lock up front (BEGIN IMMEDIATE) instead of failing with
    # SQLITE_BUSY when a read lock cannot be upgraded.
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
        pool_size=pool_size,
        max_overflow=pool_size,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        # On the driver's connection: SQLAlchemy's execution path (a cursor, a result, the
        # statement events) costs more than the statement, once per transaction.
        connection.connection.driver_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def unusable(connection: Connection, *, ask_socket: bool = False) -> bool:
    """Whether a connection kept open between transactions cannot take the next one: it is
    closed or invalidated, or a transaction was left open on it.

    `ask_socket` (PostgreSQL): whether the server has closed it since its last statement. The
    server says so unasked (a terminated or timed-out backend sends its error and closes the
    socket; it sends nothing else to an idle connection), so a `poll` of the socket tells,
    without the round trip of a pre-ping. It is a system call, though, which hands the GIL to
    another thread: for a connection that has waited a while, not for one in steady use.
    """
    if connection.invalidated or connection.closed or connection.in_transaction():
        return True
    driver: Any = connection.connection.driver_connection
    try:
        if connection.dialect.name == "sqlite":
            return bool(driver.in_transaction)
        pgconn = driver.pgconn
        if driver.broken or pgconn.transaction_status != TransactionStatus.IDLE:
            return True
        if not ask_socket:
            return False
        poller = select.poll()
        poller.register(pgconn.socket, select.POLLIN)
        return bool(poller.poll(0))
    except Exception:  # closed under us (`sqlite3.ProgrammingError`, psycopg's `closed`)
        return True
