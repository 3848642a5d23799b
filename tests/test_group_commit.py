"""Group commit (`Database.write_grouped`): concurrent units share one commit, fail alone."""

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from quittance.api.context import current_request_id, set_request_id
from quittance.db.rows import select_rows, write_back
from quittance.db.uow import Database
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

    def counted() -> AbstractContextManager[Session]:
        calls.append(1)
        return original()

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
        def __enter__(self) -> Session:
            commits.append(1)
            self.inner = original()
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
