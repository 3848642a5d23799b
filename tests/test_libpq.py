"""PostgreSQL's driver path (`db/libpq.py`): statements in one round trip, in the connection's
transaction, with psycopg's values and errors; prepared once per connection, and healed when
the server forgets them. PostgreSQL only (SQLite has no such path): under CI these fail when
PostgreSQL is down, as every database test does."""

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import pq
from psycopg.types.json import Jsonb

from quittance.db import libpq
from tests.conftest import postgres_database

TABLE = "libpq_probe"


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    with postgres_database() as url:
        with psycopg.connect(url, autocommit=True) as setup:
            setup.execute(
                f"CREATE TABLE {TABLE} (id text PRIMARY KEY, amount integer NOT NULL,"
                " at timestamptz, flag boolean, data jsonb, rate numeric)"
            )
        yield url


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    # As the engine opens them: psycopg's own preparing off (`db/engine.py`).
    with psycopg.connect(dsn, prepare_threshold=None) as connection:
        yield connection
        if not connection.broken:
            connection.rollback()
    with psycopg.connect(dsn, autocommit=True) as cleanup:
        cleanup.execute(f"DELETE FROM {TABLE}")


INSERT = f"INSERT INTO {TABLE} (id, amount, at, flag, data, rate) VALUES ($1, $2, $3, $4, $5, $6)"
UPDATE = f"UPDATE {TABLE} SET amount = amount + $1 WHERE id = $2"
SELECT = f"SELECT id, amount, at, flag, data, rate FROM {TABLE} WHERE id = $1"
AT = datetime(2026, 11, 21, 12, 30, 15, 123456, tzinfo=UTC)


def _row(key: str, amount: int = 100) -> tuple[Any, ...]:
    return (key, amount, AT, True, Jsonb({"a": [1, "two", None]}), Decimal("1.0825"))


def _stored(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as other:
        return other.execute(f"SELECT id, amount FROM {TABLE} ORDER BY id").fetchall()


def _prepared(connection: psycopg.Connection[Any]) -> set[str]:
    rows = connection.execute("SELECT name FROM pg_prepared_statements").fetchall()
    return {name for (name,) in rows}


def test_statements_run_in_order_in_one_transaction_with_psycopgs_values(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    info: dict[Any, Any] = {}
    assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    outcomes = libpq.run(
        conn, info, [(INSERT, _row("a")), (INSERT, _row("b")), (UPDATE, (5, "a")),
                     (UPDATE, (5, "missing")), (SELECT, ("a",))],
    )  # fmt: skip
    assert [o.rowcount for o in outcomes] == [1, 1, 1, 0, 1]
    assert [o.rows for o in outcomes[:4]] == [None] * 4
    expected = ("a", 105, AT, True, {"a": [1, "two", None]}, Decimal("1.0825"))
    assert outcomes[4].rows == [expected]
    # Begun with the statements, and still open: nobody else sees them before the commit.
    assert conn.info.transaction_status == pq.TransactionStatus.INTRANS
    assert _stored(dsn) == []
    conn.commit()
    assert _stored(dsn) == [("a", 105), ("b", 100)]


def test_a_failed_statement_stops_the_rest_and_the_rollback_keeps_the_connection_usable(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    info: dict[Any, Any] = {}
    libpq.run(conn, info, [(INSERT, _row("a"))])
    conn.commit()
    with pytest.raises(libpq.Failed) as failed:
        libpq.run(conn, info, [(INSERT, _row("b")), (INSERT, _row("a")), (UPDATE, (1, "a"))])
    assert failed.value.index == 1
    assert isinstance(failed.value.error, psycopg.errors.UniqueViolation)
    assert conn.info.transaction_status == pq.TransactionStatus.INERROR
    conn.rollback()
    assert _stored(dsn) == [("a", 100)]  # neither "b" nor the UPDATE after the failure
    # The statements prepared before the failure are still there after the ROLLBACK.
    assert len(_prepared(conn) & set(n.decode() for n in info[libpq.INFO_KEY].prepared.values()))
    outcomes = libpq.run(conn, info, [(UPDATE, (1, "a")), (SELECT, ("a",))])
    assert outcomes[1].rows is not None and outcomes[1].rows[0][1] == 101
    conn.commit()


def test_each_statement_is_prepared_once_per_connection(conn: psycopg.Connection[Any]) -> None:
    info: dict[Any, Any] = {}
    libpq.run(conn, info, [(INSERT, _row("a")), (INSERT, _row("b")), (SELECT, ("a",))])
    libpq.run(conn, info, [(SELECT, ("b",)), (UPDATE, (1, "b"))])
    state = info[libpq.INFO_KEY]
    assert set(state.prepared) == {INSERT, SELECT, UPDATE}
    conn.commit()
    assert _prepared(conn) == {name.decode() for name in state.prepared.values()}


def test_statements_the_server_forgot_are_prepared_again(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    info: dict[Any, Any] = {}
    libpq.run(conn, info, [(INSERT, _row("a"))])
    conn.commit()
    conn.execute("DEALLOCATE ALL")
    conn.commit()
    with pytest.raises(libpq.Failed) as failed:  # the one call that finds them gone
        libpq.run(conn, info, [(INSERT, _row("b"))])
    assert isinstance(failed.value.error, psycopg.errors.InvalidSqlStatementName)
    conn.rollback()
    libpq.run(conn, info, [(INSERT, _row("b"))])
    conn.commit()
    assert _stored(dsn) == [("a", 100), ("b", 100)]


def test_past_the_limit_statements_run_unprepared(
    conn: psycopg.Connection[Any], dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(libpq, "MOST_PREPARED", 1)
    info: dict[Any, Any] = {}
    outcomes = libpq.run(conn, info, [(INSERT, _row("a")), (UPDATE, (2, "a")), (SELECT, ("a",))])
    assert outcomes[2].rows is not None and outcomes[2].rows[0][1] == 102
    assert list(info[libpq.INFO_KEY].prepared) == [INSERT]
    conn.commit()
    assert _stored(dsn) == [("a", 102)]


def test_a_value_psycopg_cannot_adapt_fails_before_anything_is_sent(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    info: dict[Any, Any] = {}
    with pytest.raises(libpq.Failed) as failed:
        libpq.run(conn, info, [(INSERT, _row("a")), (UPDATE, (object(), "a"))])
    assert failed.value.index == 1
    assert isinstance(failed.value.error, psycopg.ProgrammingError)
    # Nothing was sent: no transaction was begun, the connection is not left in pipeline mode.
    assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    assert conn.pgconn.pipeline_status == pq.PipelineStatus.OFF
    libpq.run(conn, info, [(INSERT, _row("b"))])
    conn.commit()
    assert _stored(dsn) == [("b", 100)]


def test_a_broken_connection_raises_psycopgs_operational_error(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    info: dict[Any, Any] = {}
    libpq.run(conn, info, [(SELECT, ("a",))])
    pid = conn.info.backend_pid
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        libpq.run(conn, info, [(SELECT, ("a",))])
    assert conn.broken


def test_an_autocommit_connection_is_refused(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as connection:
        with pytest.raises(psycopg.ProgrammingError):
            libpq.run(connection, {}, [(INSERT, _row("a"))])
        assert _stored(dsn) == []


def test_the_commit_goes_in_the_same_round_trip_and_its_failure_is_told_apart(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    info: dict[Any, Any] = {}
    outcomes = libpq.run(conn, info, [(INSERT, _row("a")), (SELECT, ("a",))], commit=True)
    assert [o.rowcount for o in outcomes] == [1, 1]
    assert conn.info.transaction_status == pq.TransactionStatus.IDLE  # nothing left to commit
    assert _stored(dsn) == [("a", 100)]
    with psycopg.connect(dsn, autocommit=True) as setup:  # refuse a later "b" at COMMIT time
        setup.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$"
        )
        setup.execute(
            f"CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON {TABLE} DEFERRABLE INITIALLY"
            " DEFERRED FOR EACH ROW WHEN (NEW.id = 'b') EXECUTE FUNCTION refuse()"
        )
    try:
        with pytest.raises(libpq.Failed) as failed:
            libpq.run(conn, info, [(INSERT, _row("b")), (UPDATE, (1, "a"))], commit=True)
        assert failed.value.index == 2  # past the statements: the COMMIT
        assert "refused at commit" in str(failed.value.error)
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE  # rolled back
        assert _stored(dsn) == [("a", 100)]
    finally:
        with psycopg.connect(dsn, autocommit=True) as cleanup:
            cleanup.execute(f"DROP TRIGGER refuse ON {TABLE}")
            cleanup.execute("DROP FUNCTION refuse()")
