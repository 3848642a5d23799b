"""The bare baseline: a raw ASGI app that inserts one row per POST, and nothing else.

It is the floor the real server is measured against: the same uvicorn (same loop and HTTP
implementations, one process, access log off), the same database and driver, the same way of
running the blocking call off the event loop (AnyIO's worker threads, which is what FastAPI
uses for sync endpoints), and the same transaction discipline as Quittance:

- SQLite (stdlib `sqlite3`): WAL, `synchronous=FULL`, `foreign_keys=ON`, `busy_timeout=30000`;
  one connection guarded by a `threading.Lock` (Quittance serialises its writes behind a
  process-wide lock too), `BEGIN IMMEDIATE`, one INSERT, `COMMIT`.
- PostgreSQL (psycopg 3, sync): a small LIFO pool of up to 20 connections, one INSERT and a
  commit per request (psycopg opens the transaction implicitly, as under SQLAlchemy).

No framework, no authentication, no validation beyond reading two JSON fields: every POST
inserts `(id, merchant_id, amount, currency, created_at)` into `bench_baseline` and answers
201 with a small JSON body; every GET answers 200 (the readiness probe).

    python bench/baseline.py --database-url sqlite:////tmp/x.db --port 8001
"""

from __future__ import annotations

import argparse
import json
import queue
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio.to_thread
import psycopg
import uvicorn

TABLE = "bench_baseline"
MERCHANT_ID = "mer_baseline"
Row = tuple[str, str, int, str, datetime]


class Store(Protocol):
    def insert(self, row: Row) -> None: ...

    def close(self) -> None: ...


class SqliteStore:
    """One connection, one process-wide write lock, `BEGIN IMMEDIATE` per insert."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=30000",
        ):
            self._conn.execute(pragma)
        self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL,"
            " amount INTEGER NOT NULL, currency TEXT NOT NULL, created_at TEXT NOT NULL)"
        )
        self._lock = threading.Lock()
        self._sql = f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?)"

    def insert(self, row: Row) -> None:
        # SQLite stores the timestamp as text, as SQLAlchemy does for its DateTime type.
        params = (*row[:4], row[4].isoformat(" "))
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(self._sql, params)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()


class PostgresStore:
    """A minimal LIFO pool of psycopg connections (opened on demand, up to `size`)."""

    def __init__(self, conninfo: str, size: int = 20) -> None:
        self._conninfo = conninfo
        self._size = size
        self._opened = 0
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._sql = f"INSERT INTO {TABLE} VALUES (%s, %s, %s, %s, %s)"
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (id varchar(40) PRIMARY KEY,"
                " merchant_id varchar(40) NOT NULL, amount bigint NOT NULL,"
                " currency varchar(3) NOT NULL, created_at timestamp NOT NULL)"
            )

    def _acquire(self) -> psycopg.Connection[Any]:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            grow = self._opened < self._size
            if grow:
                self._opened += 1
        if grow:
            try:
                return psycopg.connect(self._conninfo, connect_timeout=10)
            except BaseException:
                with self._lock:
                    self._opened -= 1
                raise
        return self._idle.get(timeout=30)

    def _release(self, conn: psycopg.Connection[Any]) -> None:
        if conn.closed or conn.broken:
            with self._lock:
                self._opened -= 1
            return
        self._idle.put(conn)

    def insert(self, row: Row) -> None:
        # Stored as naive UTC, like Quittance's UTCDateTime columns.
        params = (*row[:4], row[4].replace(tzinfo=None))
        conn = self._acquire()
        try:
            conn.execute(self._sql, params)
            conn.commit()
        except BaseException:
            if not conn.broken:
                conn.rollback()
            raise
        finally:
            self._release(conn)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def open_store(url: str) -> Store:
    """Open the store for a Quittance-style database URL."""
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite:///"))
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return PostgresStore("postgresql://" + url.removeprefix(prefix))
    raise ValueError(f"unsupported database URL {url!r}")


def new_row_id() -> str:
    """A time-sortable id like Quittance's (so both insert at the right edge of the index)."""
    return f"row_{time.time_ns() // 1_000_000:013d}{secrets.token_hex(7)}"


def make_app(store: Store) -> Any:
    """The raw ASGI application."""

    async def respond(send: Any, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    store.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await respond(send, 200, b'{"ok":true}')
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        try:
            data = json.loads(b"".join(chunks))
            amount, currency = int(data["amount"]), str(data["currency"])
        except (ValueError, KeyError, TypeError):
            await respond(send, 400, b'{"error":"bad request"}')
            return
        row: Row = (new_row_id(), MERCHANT_ID, amount, currency, datetime.now(UTC))
        await anyio.to_thread.run_sync(store.insert, row)
        body = json.dumps({"id": row[0], "amount": amount, "currency": currency})
        await respond(send, 201, body.encode())

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    store = open_store(args.database_url)
    # The same call as `quittance serve`: uvicorn's default (auto) loop and HTTP parser.
    uvicorn.run(
        make_app(store),
        host=args.host,
        port=args.port,
        access_log=False,
        log_config=None,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
