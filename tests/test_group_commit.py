"""Group commit (`Database.write_grouped`): concurrent units share one commit, fail alone."""

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from quittance.api.context import current_request_id, set_request_id
from quittance.db import batch
from quittance.db.rows import select_rows, write_back
from quittance.db.uow import Database, after_commit
from quittance.event import service as events
from quittance.models import Event
from tests.factories import MerchantFactory


def _count(db: Database, merchant_id: str, type_: str) -> int:
    with db.read() as session:
        return int(
            session.scalar(
                select(func.count()).where(Event.merchant_id == merchant_id, Event.type == type_)
            )
            or 0
        )


def _writer(merchant_id: str, type_: str, tag: str) -> Callable[[Session], str]:
    def work(session: Session) -> str:
        event = events.record(
            session, merchant_id=merchant_id, livemode=False, type=type_, data={"tag": tag}
        )
        return f"{tag}:{event.id}"

    return work


@pytest.fixture
def write_calls(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Count the transactions the group commit opens (one `Database.write` each)."""
    calls: list[int] = []
    original = db.write

    def counted(*args: Any) -> AbstractContextManager[Session]:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(db, "write", counted)
    yield calls


def _behind_a_held_unit(
    db: Database, head: Callable[[Session], Any], rest: list[Callable[[Session], Any]]
) -> list[Any]:
    """Run `head` and hold the writer in it until every unit of `rest` is queued; return the
    outcomes (results or exceptions) of `head` and then `rest`, in order."""
    release = threading.Event()
    started = threading.Event()

    def held(session: Session) -> Any:
        started.set()
        release.wait(timeout=10)
        return head(session)

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(db.write_grouped(held))
        while not started.is_set():
            await asyncio.sleep(0.005)
        queued = [asyncio.ensure_future(db.write_grouped(work)) for work in rest]
        await asyncio.sleep(0.05)  # every unit is on the queue before the writer looks again
        release.set()
        return await asyncio.gather(first, *queued, return_exceptions=True)

    return asyncio.run(scenario())


def test_units_waiting_together_share_one_commit(
    db: Database, merchants: MerchantFactory, write_calls: list[int], backend: str
) -> None:
    merchant = merchants.create()
    write_calls.clear()
    results = _behind_a_held_unit(
        db,
        _writer(merchant.id, "test.grouped", "first"),
        [_writer(merchant.id, "test.grouped", f"u{n}") for n in range(19)],
    )

    # Each caller gets its own unit's result, and all twenty are stored ...
    assert [r.split(":")[0] for r in results] == ["first", *[f"u{n}" for n in range(19)]]
    assert len({r.split(":")[1] for r in results}) == 20
    assert _count(db, merchant.id, "test.grouped") == 20
    # ... in few transactions: on SQLite (one writer) the first unit alone, then the nineteen
    # that waited for it; on PostgreSQL its two writers share the nineteen.
    assert len(write_calls) == 2 if backend == "sqlite" else 2 <= len(write_calls) <= 3


def test_a_failing_unit_fails_alone_and_leaves_nothing(
    db: Database, merchants: MerchantFactory, write_calls: list[int], backend: str
) -> None:
    merchant = merchants.create()
    write_calls.clear()

    def broken(session: Session) -> str:
        _writer(merchant.id, "test.fail_alone", "broken")(session)  # written, then...
        raise ValueError("this unit is refused")

    head, first, failed, second = _behind_a_held_unit(
        db,
        _writer(merchant.id, "test.fail_alone", "hold"),
        [
            _writer(merchant.id, "test.fail_alone", "a"),
            broken,
            _writer(merchant.id, "test.fail_alone", "b"),
        ],
    )

    assert head.startswith("hold:") and first.startswith("a:") and second.startswith("b:")
    assert isinstance(failed, ValueError) and str(failed) == "this unit is refused"
    with db.read() as session:
        tags = sorted(
            e.data["tag"]
            for e in session.scalars(
                select(Event).where(
                    Event.merchant_id == merchant.id, Event.type == "test.fail_alone"
                )
            )
        )
    # The broken unit's event rolled back with it; its neighbours' were committed.
    assert tags == ["a", "b", "hold"]
    if backend == "sqlite":  # the lone first unit, the failed batch of three, each alone
        assert len(write_calls) == 5


def test_a_unit_sees_what_an_earlier_unit_of_its_batch_wrote_back(
    db: Database, merchants: MerchantFactory, write_calls: list[int]
) -> None:
    """Write-backs are held back in a batch, but sent before the next read: a later unit of the
    same transaction (a second pay of the same invoice, say) must see them."""
    merchant = merchants.create()
    with db.write() as session:
        event_id = _writer(merchant.id, "test.seen", "x")(session).split(":")[1]
    write_calls.clear()

    def change(type_: str) -> Callable[[Session], str]:
        def work(session: Session) -> str:
            [event] = select_rows(session, Event, {"id": event_id}, lock=True)
            seen = event.type
            event.type = type_
            write_back(session, event)
            return seen

        return work

    def through_the_orm(session: Session) -> str:
        return str(session.scalar(select(Event.type).where(Event.id == event_id)))

    outcomes = _behind_a_held_unit(
        db,
        _writer(merchant.id, "test.hold", "hold"),
        [change("test.first"), change("test.second"), through_the_orm, change("test.third")],
    )

    assert outcomes[1:] == ["test.seen", "test.first", "test.second", "test.second"]
    assert len(write_calls) == 2  # the held unit, then the four together
    with db.read() as session:
        assert session.scalar(select(Event.type).where(Event.id == event_id)) == "test.third"


@contextlib.contextmanager
def _commits_refused(db: Database, type_: str) -> Iterator[None]:
    """PostgreSQL: a deferred constraint trigger refuses, at COMMIT, any transaction that
    inserted an event of `type_` (the COMMIT itself fails, as a full disk would make it)."""
    with db.write() as session:
        session.execute(
            text(
                "CREATE FUNCTION quittance_test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'commit refused'; END $$"
            )
        )
        session.execute(
            text(
                "CREATE CONSTRAINT TRIGGER quittance_test_refuse AFTER INSERT ON events "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                f"WHEN (NEW.type = '{type_}') EXECUTE FUNCTION quittance_test_refuse()"
            )
        )
    try:
        yield
    finally:
        with db.write() as session:
            session.execute(text("DROP TRIGGER quittance_test_refuse ON events"))
            session.execute(text("DROP FUNCTION quittance_test_refuse()"))


def test_a_failed_commit_reaches_every_caller_is_not_retried_and_stores_nothing(
    db: Database, backend: str, merchants: MerchantFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    merchant = merchants.create()
    original = db.write
    commits: list[int] = []
    refused: AbstractContextManager[None]

    class CommitFails(AbstractContextManager[Session]):
        def __init__(self, *args: Any) -> None:
            self.args = args  # the writer's connection

        def __enter__(self) -> Session:
            commits.append(1)
            self.inner = original(*self.args)
            return self.inner.__enter__()

        def __exit__(self, *exc: Any) -> None:
            if backend == "postgresql":  # the COMMIT really fails (`_commits_refused`)
                self.inner.__exit__(*exc)
                return
            # SQLite: the disk is full, say: the transaction cannot commit and rolls back.
            self.inner.__exit__(RuntimeError, RuntimeError("commit refused"), None)
            raise RuntimeError("commit refused")

    if backend == "postgresql":
        refused = _commits_refused(db, "test.commit_fails")
    else:
        refused = contextlib.nullcontext()

    async def scenario() -> list[Any]:
        units = [_writer(merchant.id, "test.commit_fails", f"u{n}") for n in range(5)]
        return await asyncio.gather(
            *(db.write_grouped(unit) for unit in units), return_exceptions=True
        )

    with refused:
        monkeypatch.setattr(db, "write", CommitFails)
        outcomes = asyncio.run(scenario())
        monkeypatch.undo()

    assert all(isinstance(o, Exception) and "commit refused" in str(o) for o in outcomes)
    assert _count(db, merchant.id, "test.commit_fails") == 0
    # Whether a failed COMMIT committed can be unknown (a lost connection): never run again.
    assert len(commits) == 1


def test_the_writer_stops_when_closed_and_starts_again(
    db: Database, merchants: MerchantFactory
) -> None:
    merchant = merchants.create()
    work = _writer(merchant.id, "test.restart", "x")
    assert asyncio.run(db.write_grouped(work)).startswith("x:")
    db.dispose()
    assert not [t for t in threading.enumerate() if t.name == "quittance-group-commit"]
    assert asyncio.run(db.write_grouped(work)).startswith("x:")
    assert _count(db, merchant.id, "test.restart") == 2


def test_a_unit_runs_in_its_callers_context(db: Database) -> None:
    async def one(request_id: str) -> str:
        set_request_id(request_id)  # each task has its own context, as each request does
        return str(await db.write_grouped(lambda _session: current_request_id()))

    async def scenario() -> list[str]:
        return list(await asyncio.gather(*(one(f"req_{n}") for n in range(5))))

    assert asyncio.run(scenario()) == [f"req_{n}" for n in range(5)]


# --- the writer's connection, kept from batch to batch ---------------------------------------


@pytest.fixture
def own_db(database_url: str) -> Iterator[Database]:
    """A `Database` of its own (its pool, its writer threads), disposed afterwards."""
    database = Database(database_url)
    yield database
    database.dispose()


def _one_by_one(db: Database, works: list[Callable[[Session], Any]]) -> list[Any]:
    """Run each unit in a batch of its own, one after the other; their outcomes in order."""

    async def scenario() -> list[Any]:
        outcomes = []
        for work in works:
            try:
                outcomes.append(await db.write_grouped(work))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    return asyncio.run(scenario())


def _driver_connection(session: Session) -> Any:
    """The driver's connection the session's transaction runs on."""
    return session.connection().connection.driver_connection


def _closed(driver_connection: Any) -> bool:
    if isinstance(driver_connection, sqlite3.Connection):
        try:
            driver_connection.execute("SELECT 1")
        except sqlite3.ProgrammingError:  # "Cannot operate on a closed database."
            return True
        return False
    return bool(driver_connection.closed)


def _break(db: Database, driver_connection: Any, backend: str) -> None:
    """Close a connection from the database's side: PostgreSQL terminates its backend (and this
    waits until it is gone), SQLite's connection is closed under its owner."""
    if backend == "sqlite":
        driver_connection.close()
        return
    with db.read() as session:
        terminate = text("SELECT pg_terminate_backend(:pid, 10000)")
        assert session.scalar(terminate, {"pid": driver_connection.info.backend_pid})


def test_a_writer_runs_every_batch_on_the_connection_it_keeps(
    own_db: Database, merchants: MerchantFactory, backend: str
) -> None:
    """No pool checkout per batch: each writer thread (one on SQLite, two on PostgreSQL) checks
    one out for its first batch and keeps it; the unit of work is otherwise the same, after-commit
    callbacks included."""
    merchant = merchants.create()
    checkouts: list[int] = []
    used: list[Any] = []
    committed: list[str] = []

    def work(session: Session) -> str:
        used.append(_driver_connection(session))
        tag = _writer(merchant.id, "test.kept", "x")(session)
        after_commit(session, lambda: committed.append(tag))
        return tag

    def checked_out(*_args: Any) -> None:
        checkouts.append(1)

    event.listen(own_db.engine, "checkout", checked_out)
    outcomes = _one_by_one(own_db, [work] * 20)
    event.remove(own_db.engine, "checkout", checked_out)

    writers = 1 if backend == "sqlite" else 2
    assert all(isinstance(o, str) for o in outcomes) and committed == outcomes
    assert len(checkouts) <= writers
    assert len({id(connection) for connection in used}) <= writers
    assert _count(own_db, merchant.id, "test.kept") == 20


def test_a_batch_on_a_kept_connection_still_takes_sqlites_write_lock_as_it_begins(
    own_db: Database, merchants: MerchantFactory, backend: str
) -> None:
    """SQLite: every batch begins with `BEGIN IMMEDIATE`, the first on a connection just checked
    out as the next on the kept one, so no other connection can start writing before it ends
    (it would otherwise fail with SQLITE_BUSY when its read lock cannot be upgraded)."""
    merchant = merchants.create()
    probes: list[str] = []

    def work(session: Session) -> str:
        if backend == "sqlite":  # nothing written yet: only the BEGIN can have taken the lock
            other = sqlite3.connect(str(own_db.engine.url.database), timeout=0)
            try:
                other.execute("BEGIN IMMEDIATE")
                probes.append("free")
            except sqlite3.OperationalError as exc:
                probes.append(str(exc))
            finally:
                other.close()
        return _writer(merchant.id, "test.write_lock", "x")(session)

    outcomes = _one_by_one(own_db, [work] * 3)

    assert all(isinstance(o, str) for o in outcomes)
    assert probes == (["database is locked"] * 3 if backend == "sqlite" else [])


def test_a_writer_hands_its_connection_back_to_the_pool_every_so_often(
    own_db: Database, merchants: MerchantFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So that the pool's rules (recycling old connections) still reach it."""
    merchant = merchants.create()
    monkeypatch.setattr(batch, "HOLD_SECONDS", 0.0)
    checkouts: list[int] = []

    def checked_out(*_args: Any) -> None:
        checkouts.append(1)

    event.listen(own_db.engine, "checkout", checked_out)
    outcomes = _one_by_one(own_db, [_writer(merchant.id, "test.handed_back", "x")] * 5)
    event.remove(own_db.engine, "checkout", checked_out)

    assert all(isinstance(o, str) for o in outcomes)
    assert len(checkouts) == 5


def test_an_idle_writer_gives_its_connection_back_and_dispose_closes_it(
    own_db: Database, merchants: MerchantFactory, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    merchant = merchants.create()
    monkeypatch.setattr(batch, "IDLE_SECONDS", 0.2)
    used: list[Any] = []

    def work(session: Session) -> str:
        used.append(_driver_connection(session))
        return _writer(merchant.id, "test.idle", "x")(session)

    assert isinstance(_one_by_one(own_db, [work])[0], str)
    pool = own_db.engine.pool
    assert isinstance(pool, QueuePool)
    deadline = time.monotonic() + 10
    while pool.checkedout() and time.monotonic() < deadline:  # the writer stops after 0.2 s
        time.sleep(0.02)
    assert pool.checkedout() == 0 and pool.checkedin() >= 1

    # They start again on demand (both of PostgreSQL's here: one is held while the other
    # runs), each with a connection; dispose stops them at once and closes every connection.
    monkeypatch.setattr(batch, "IDLE_SECONDS", 60.0)
    assert all(isinstance(o, str) for o in _behind_a_held_unit(own_db, work, [work, work]))
    assert pool.checkedout() == (1 if backend == "sqlite" else 2)
    started = time.monotonic()
    own_db.dispose()
    assert time.monotonic() - started < 10  # not the writers' 60 s of idleness
    assert pool.checkedout() == 0 and pool.checkedin() == 0
    assert all(_closed(connection) for connection in used)
    assert _count(own_db, merchant.id, "test.idle") == 4


def test_a_connection_closed_while_the_writer_waits_is_replaced_before_the_next_batch(
    own_db: Database, db: Database, merchants: MerchantFactory, backend: str
) -> None:
    """The server terminating an idle connection (a restart, `idle_session_timeout`, an
    administrator) must cost no request: the next batch sees it closed and runs on another."""
    merchant = merchants.create()
    used: list[Any] = []

    def work(session: Session) -> str:
        used.append(_driver_connection(session))
        return _writer(merchant.id, "test.replaced", "x")(session)

    assert all(isinstance(o, str) for o in _one_by_one(own_db, [work] * 6))
    broken = {id(connection): connection for connection in used}
    for connection in broken.values():
        _break(db, connection, backend)
    used.clear()
    time.sleep(batch.CHECK_AFTER_SECONDS)  # the writer has waited: it asks before using it

    outcomes = _one_by_one(own_db, [work] * 6)

    assert all(isinstance(o, str) for o in outcomes), outcomes
    assert not broken.keys() & {id(connection) for connection in used}
    assert _count(own_db, merchant.id, "test.replaced") == 12


def test_a_connection_lost_during_a_batch_fails_it_as_any_failure_and_the_retries_reconnect(
    own_db: Database, db: Database, merchants: MerchantFactory, backend: str
) -> None:
    """Lost before the COMMIT (here a unit's next statement finds it gone): the batch rolls back
    and each unit runs again alone, on a new connection, so every one of them commits."""
    merchant = merchants.create()
    calls: list[int] = []

    def breaks_once(session: Session) -> str:
        calls.append(1)
        if len(calls) == 1:
            _break(db, _driver_connection(session), backend)
            session.execute(text("SELECT 1"))  # the connection is gone: this raises
        return _writer(merchant.id, "test.lost", "broke")(session)

    outcomes = _behind_a_held_unit(
        own_db,
        _writer(merchant.id, "test.lost", "hold"),
        [
            _writer(merchant.id, "test.lost", "a"),
            breaks_once,
            _writer(merchant.id, "test.lost", "b"),
        ],
    )

    assert [o.split(":")[0] for o in outcomes] == ["hold", "a", "broke", "b"]
    assert len(calls) == 2
    assert _count(own_db, merchant.id, "test.lost") == 4
    after = _one_by_one(own_db, [_writer(merchant.id, "test.lost_after", "x")])
    assert all(isinstance(o, str) for o in after), after


def test_a_connection_lost_before_the_last_writes_are_sent(
    own_db: Database, db: Database, merchants: MerchantFactory, backend: str
) -> None:
    """PostgreSQL sends the batch's held-back writes and its COMMIT together: lost then, whether
    it committed is unknown, so every caller of the batch gets the error and nothing runs again
    (here nothing was committed). SQLite sends them before its COMMIT: the batch fails before
    it, and each unit runs again alone. Either way the batches after it commit."""
    merchant = merchants.create()
    calls: list[int] = []

    def breaks_once(session: Session) -> str:
        calls.append(1)
        tag = _writer(merchant.id, "test.lost_last", "broke")(session)  # held back
        if len(calls) == 1:
            _break(db, _driver_connection(session), backend)
        return tag

    outcomes = _behind_a_held_unit(
        own_db,
        _writer(merchant.id, "test.lost_last", "hold"),
        [
            _writer(merchant.id, "test.lost_last", "a"),
            _writer(merchant.id, "test.lost_last", "b"),
            breaks_once,  # last: nothing is sent after it but the batch's last writes
        ],
    )

    assert outcomes[0].startswith("hold:")
    if backend == "postgresql":
        assert all(isinstance(o, OperationalError) for o in outcomes[1:]), outcomes
        assert len(calls) == 1
        assert _count(own_db, merchant.id, "test.lost_last") == 1
    else:
        assert all(isinstance(o, str) for o in outcomes), outcomes
        assert [o.split(":")[0] for o in outcomes[1:]] == ["a", "b", "broke"]
        assert len(calls) == 2
        assert _count(own_db, merchant.id, "test.lost_last") == 4
    after = _one_by_one(own_db, [_writer(merchant.id, "test.lost_last_after", "x")] * 4)
    assert all(isinstance(o, str) for o in after), after
    assert _count(own_db, merchant.id, "test.lost_last_after") == 4
