"""Group commit: units of work from concurrent requests share one transaction and one commit.

A commit is the most expensive step of a small write: on SQLite it is an `fsync` of the WAL,
on PostgreSQL a round trip and a WAL flush. `GroupCommit.run(work)`, awaited from the event
loop, hands `work` to a writer thread. The thread takes every unit waiting at that moment,
runs them one after the other in one `Database.write()` (the same unit of work as anywhere
else: the SQLite write lock, `BEGIN IMMEDIATE`, after-commit callbacks) and commits once. Each
caller resumes only after that commit, so nothing is answered before it is durable.

Each writer thread keeps one connection from batch to batch, for as long as it runs: checking
one out of the pool and back in (events, the pool's bookkeeping, its reset) for every batch
was a third of a batch's fixed cost. It goes back to the pool every `HOLD_SECONDS`, so that
the pool's own rules (recycling, a pool-wide invalidation) still reach it, and when the
thread stops (idle, or `close`, which `Database.dispose` calls first). Before each batch it
is looked at (`engine.unusable`, no round trip): one an error has invalidated, or that a
failure left in a transaction, is replaced. One that has waited `CHECK_AFTER_SECONDS` or more
is also asked whether the server has closed it meanwhile (a terminated backend,
`idle_session_timeout`, a restart), so that the next batch runs on a new one and commits. A
connection lost while batches follow each other fails the batch that finds it lost, as any
failure does (below): the units run again alone, or, if it was lost with the COMMIT, every
caller gets the error. The batches after it, and the units run again, run on a new one.

Rows a unit appends with `db.rows.insert_rows` are held back and sent at the end of the batch,
one `executemany` per table (parents first), so a unit cannot read back what it inserts. Rows
it writes back (`db.rows.write_back`) are held back too, but sent before the transaction's
next statement of any kind, so a later read (of the next unit too) sees them (`db/rows.py`).
On PostgreSQL what is still held back at the end goes in one round trip with the COMMIT.

If any unit of the batch raises (or the held-back rows are refused), the whole transaction
rolls back and each unit is run again alone, in its own transaction, so a failure stays with
the request that caused it. Units must therefore be safe to run again after a rollback (they
read and write only the database, and generate new ids each time). A failed `COMMIT`, or one
whose outcome is unknown (the connection broke), is never retried: every caller of the batch
gets the error. A single waiting unit runs at once: there
is no timer, so a lone request waits for nothing.
"""

import asyncio
import contextlib
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from quittance.db.engine import unusable
from quittance.db.rows import CommitFailed, defer_writes, discard_deferred, flush_deferred

if TYPE_CHECKING:
    from quittance.db.uow import Database

log = logging.getLogger("quittance.db")

Work = Callable[[Session], Any]
_Item = tuple[Work, asyncio.AbstractEventLoop, "asyncio.Future[Any]"]
_WAKE = None  # put on the queue by `close` so a waiting thread looks up at once

# How long the writer thread waits for work before it stops (it starts again on demand).
IDLE_SECONDS = 2.0
# How long a writer thread keeps a connection before it checks out another (see the docstring).
HOLD_SECONDS = 60.0
# How long a kept connection waits for a batch before the next one asks whether the server has
# closed it (a system call, which would hand the GIL to the event loop in every busy batch).
CHECK_AFTER_SECONDS = 0.1


class GroupCommit:
    """Writer threads that commit the units handed to them in batches.

    SQLite takes one writer (its writes are serialised anyway); PostgreSQL several, so that
    one batch's round trips overlap with another's.
    """

    def __init__(self, db: "Database", *, writers: int = 1, max_batch: int = 64) -> None:
        self._db = db
        self.writers = writers
        self.max_batch = max_batch
        # The queue carries lists: what one turn of an event loop handed over at once.
        self._queue: queue.SimpleQueue[list[_Item] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        # Units collected during the current turn of each event loop (touched by its own loop
        # only), handed to the writers in one go at the end of the turn: one wake-up of a
        # writer thread per turn instead of one per request.
        self._collecting: dict[asyncio.AbstractEventLoop, list[_Item]] = {}

    async def run(self, work: Work) -> Any:
        """Run `work(session)` in a batch; return its result once the batch has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        collected = self._collecting.get(loop)
        if collected is None:
            collected = self._collecting[loop] = []
            loop.call_soon(self._hand_over, loop)
        # In the caller's context (its request id, for errors and logs), as a worker thread
        # would run it.
        context = contextvars.copy_context()

        def in_context(session: Session) -> Any:
            return context.run(work, session)

        collected.append((in_context, loop, future))
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        items = self._collecting.pop(loop)
        with self._lock:
            self._queue.put(items)
            if len(self._threads) < self.writers:
                thread = threading.Thread(
                    target=self._serve, name="quittance-group-commit", daemon=True
                )
                self._threads.add(thread)
                thread.start()

    def close(self) -> None:
        """Let the threads finish what is queued and stop (they start again if work comes)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            deadline = time.monotonic() + 30
            # A wake-up each is not enough: one thread may take two at once (`_serve` drains
            # the queue), and the other would wait out IDLE_SECONDS with its connection.
            while thread.is_alive() and time.monotonic() < deadline:
                self._queue.put(_WAKE)
                thread.join(timeout=0.05)

    def _serve(self) -> None:
        kept = _Kept(self._db)
        try:
            while True:
                try:
                    first = self._queue.get(timeout=IDLE_SECONDS)
                except queue.Empty:
                    first = None
                batch: list[_Item] = [] if first is None else first
                while len(batch) < self.max_batch:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is not None:
                        batch.extend(more)
                if batch:
                    self._execute(batch, kept)
                    continue
                # Before leaving the set of threads: once `close` has seen this thread gone,
                # `Database.dispose` may dispose of the pool.
                kept.release()
                with self._lock:
                    if self._queue.empty():
                        self._threads.discard(threading.current_thread())
                        return
        finally:
            kept.release()

    def _execute(self, batch: list[_Item], kept: "_Kept") -> None:
        outcomes: list[tuple[bool, Any]]
        try:
            works = [item[0] for item in batch]
            outcomes = [(True, result) for result in self._commit(works, kept)]
        except _BeforeCommit as failed:
            if len(batch) == 1:
                outcomes = [(False, failed.error)]
            else:
                # The type only: a database error's text carries the statement's parameters.
                log.warning(
                    "a batch of %d units of work failed before its commit (%s); running each "
                    "alone", len(batch), type(failed.error).__name__,
                )  # fmt: skip
                outcomes = [self._alone(work, kept) for work, _loop, _future in batch]
        except Exception as exc:  # the COMMIT itself failed: see _commit
            outcomes = [(False, exc)] * len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for (_work, loop, future), (ok, value) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, ok, value))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop was closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, settled)

    def _alone(self, work: Work, kept: "_Kept") -> tuple[bool, Any]:
        try:
            return True, self._commit([work], kept)[0]
        except _BeforeCommit as failed:
            return False, failed.error
        except Exception as exc:  # handed to its caller
            return False, exc

    def _commit(self, works: list[Work], kept: "_Kept") -> list[Any]:
        """Run `works` in one transaction on the writer's connection and commit it.

        A failure before the `COMMIT` (getting a connection, a unit, or sending the held-back
        rows) rolled everything back, so the units may be run again: it is raised as
        `_BeforeCommit`, even when the rollback fails too (the connection is gone, and its
        transaction with it: nothing was committed). A failure of the `COMMIT` itself is raised
        as it is and never retried: on PostgreSQL a connection lost during the `COMMIT` leaves
        unknown whether it committed, and running the units again could do their work twice.
        """
        try:
            connection = kept.connection()
        except Exception as exc:
            raise _BeforeCommit(exc) from exc
        before_commit: _BeforeCommit | None = None
        try:
            with self._db.write(connection) as session:
                try:
                    # The units' new rows and write-backs go out together (`db/rows.py`): one
                    # statement per table per batch, on PostgreSQL in one round trip with the
                    # COMMIT.
                    defer_writes(session)
                    results = [work(session) for work in works]
                    flush_deferred(session, commit=True)
                except CommitFailed as failed:
                    raise failed.error from failed
                except Exception as exc:
                    before_commit = _BeforeCommit(exc)
                    raise before_commit from exc
                finally:
                    discard_deferred(session)
                return results
        except Exception as exc:
            if before_commit is None or exc is before_commit:
                raise
            # Rolling back raised too (the connection is gone): nothing was committed anyway.
            raise before_commit from before_commit.error
        finally:
            kept.used()


class _Kept:
    """The connection a writer thread keeps from one batch to the next (see the docstring)."""

    def __init__(self, db: "Database") -> None:
        self._db = db
        self._connection: Connection | None = None
        self._until = 0.0  # `time.monotonic()` after which it goes back to the pool
        self._used = 0.0  # `time.monotonic()` when its last transaction ended

    def connection(self) -> Connection:
        """The kept connection, or a new one if it is due back or cannot take a transaction."""
        connection = self._connection
        now = time.monotonic()
        if connection is not None:
            waited = now - self._used >= CHECK_AFTER_SECONDS
            if now < self._until and not unusable(connection, ask_socket=waited):
                return connection
            self.release()
        connection = self._connection = self._db.write_connection()
        self._until = now + HOLD_SECONDS
        return connection

    def used(self) -> None:
        """Note that a transaction has just ended on the connection."""
        self._used = time.monotonic()

    def release(self) -> None:
        """Hand the connection back to the pool; an unusable one is closed instead."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if unusable(connection, ask_socket=True):
                connection.invalidate()  # a closed connection must not reach the pool's next user
            connection.close()
        except Exception:  # whatever state it is in, it is no longer this thread's
            log.warning("could not release a writer's connection", exc_info=True)


class _BeforeCommit(Exception):
    """A batch failed before its commit (and rolled back); `error` is what went wrong."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _settle(settled: list[tuple["asyncio.Future[Any]", bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.done():  # the caller gave up (its request was cancelled)
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
