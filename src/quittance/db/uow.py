"""The unit of work: the one place where a transaction is committed.

A request, a job or a CLI command opens exactly one `db.write()` (or `db.read()`) per step;
services receive the session and never commit. On SQLite, write transactions are also
serialised inside the process by a lock, so threads queue fairly instead of sleeping in
SQLite's busy handler; other processes are still handled by `busy_timeout`.
"""

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from quittance.db.batch import GroupCommit, Work
from quittance.db.engine import WRITE_OPTION, build_engine

# Key in `session.info` of callables to run once the unit of work has committed.
AFTER_COMMIT = "quittance_after_commit"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once this unit of work has committed (never if it rolls back)."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


class Database:
    """An engine plus the unit-of-work entry points."""

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.engine: Engine = build_engine(url, pool_size=pool_size)
        self.backend = self.engine.dialect.name
        self._write_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        self._write_lock: contextlib.AbstractContextManager[object] = (
            threading.Lock() if self.backend == "sqlite" else contextlib.nullcontext()
        )
        # PostgreSQL: two writers, so that one batch's round trips overlap with another's
        # (measured against one and four: see docs/performance.md, session 5).
        self._group = GroupCommit(self, writers=1 if self.backend == "sqlite" else 2)

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgresql"

    @contextlib.contextmanager
    def write(self, connection: Connection | None = None) -> Iterator[Session]:
        """Open a write transaction; commit when the block ends, roll back if it raises.

        `connection` (from `write_connection`, idle): run the transaction on it and leave it
        open afterwards, for a caller that runs one write after another (the group commit's
        writer threads), instead of checking a connection out of the pool for this one.
        """
        bind = self._write_engine if connection is None else connection
        with self._write_lock, Session(bind, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
        for callback in session.info.get(AFTER_COMMIT, ()):
            callback()

    def write_connection(self) -> Connection:
        """A connection for `write(connection)`, checked out of the pool until it is closed."""
        return self._write_engine.connect()

    async def write_grouped(self, work: Work) -> Any:
        """Run `work(session)` as a unit of work committed together with concurrent ones.

        For the event loop: it awaits the commit instead of blocking a thread (see
        `db/batch.py`). `work` must be safe to run again after a rollback.
        """
        return await self._group.run(work)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """Open a read-only transaction; closing the session ends it without a commit.

        Closing (rather than rolling back) keeps the loaded objects readable afterwards.
        """
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def dispose(self) -> None:
        self._group.close()
        self.engine.dispose()
