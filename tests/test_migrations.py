"""The migrations build exactly the models' schema, on SQLite and PostgreSQL alike."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

import quittance.models  # noqa: F401
from quittance.db.base import Base
from quittance.db.engine import build_engine
from quittance.db.migrate import downgrade, upgrade
from tests.conftest import PG_ADMIN_URL, _pg_conninfo


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = build_engine(database_url, pool_size=1)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


@pytest.fixture
def empty_database(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"quittance_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_pg_conninfo(PG_ADMIN_URL), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = _pg_conninfo(PG_ADMIN_URL).rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(_pg_conninfo(PG_ADMIN_URL), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_go_down_and_up_again(empty_database: str) -> None:
    upgrade(empty_database)
    upgrade(empty_database)  # a second run is a no-op
    engine = build_engine(empty_database, pool_size=1)
    assert "invoices" in inspect(engine).get_table_names()
    downgrade(empty_database, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(empty_database)
    assert "invoices" in inspect(engine).get_table_names()
    engine.dispose()


def _merchant(connection: Connection, now: str) -> None:
    """Merchant `mer_1`, inserted as raw SQL (the models may be ahead of the schema)."""
    connection.exec_driver_sql(
        "INSERT INTO merchants (id, merchant_id, name, is_demo, created_at) "
        f"VALUES ('mer_1', 'mer_1', 'Shop', false, '{now}')"
    )


def test_payments_count_is_backfilled_from_the_payments(empty_database: str) -> None:
    """0007 counts each invoice's existing payments, so the next attempt's number follows on."""
    upgrade(empty_database, "0006")
    engine = build_engine(empty_database, pool_size=1)
    now = "2026-11-21 12:00:00"
    with engine.begin() as connection:
        _merchant(connection, now)
        for invoice_id in ("inv_paid_twice", "inv_never_paid"):
            connection.exec_driver_sql(
                "INSERT INTO invoices (id, merchant_id, livemode, status, currency, amount, "
                "amount_paid, amount_refunded, amount_cancelled, commission, paid_late, "
                "amount_authorized, pay_token, lifetime, attempts_limit, attempts_count, "
                "metadata, search_text, created_at, updated_at) VALUES "
                f"('{invoice_id}', 'mer_1', false, 'created', 'EUR', 1000, 0, 0, 0, 0, false, "
                f"0, 'tok_{invoice_id}', 3600, 5, 2, '{{}}', '', '{now}', '{now}')"
            )
        for attempt in (1, 2):
            connection.exec_driver_sql(
                "INSERT INTO payments (id, merchant_id, livemode, invoice_id, attempt, status, "
                "method, amount, currency, amount_received, amount_authorized, commission, "
                "payer_received, routing, created_at, updated_at) VALUES "
                f"('pay_{attempt}', 'mer_1', false, 'inv_paid_twice', {attempt}, 'failed', "
                f"'card', 1000, 'EUR', 0, 0, 0, 0, '[]', '{now}', '{now}')"
            )
    upgrade(empty_database)
    with engine.connect() as connection:
        counts = dict(
            connection.exec_driver_sql("SELECT id, payments_count FROM invoices").fetchall()
        )
    engine.dispose()
    assert counts == {"inv_paid_twice": 2, "inv_never_paid": 0}


def test_deleted_endpoints_are_removed_for_good_when_going_back(empty_database: str) -> None:
    """0008 keeps a deleted endpoint's row (`deleted_at`); existing endpoints stay live. Back
    at 0007 a deleted endpoint would come back (disabled), so the downgrade removes it with
    its deliveries and their attempts, and leaves the other endpoints as they were."""
    upgrade(empty_database, "0007")
    engine = build_engine(empty_database, pool_size=1)
    now = "2026-11-21 12:00:00"
    with engine.begin() as connection:
        _merchant(connection, now)
        connection.exec_driver_sql(
            "INSERT INTO events (id, merchant_id, livemode, type, data, created_at) "
            f"VALUES ('evt_1', 'mer_1', false, 'invoice.created', '{{}}', '{now}')"
        )
        for name in ("kept", "gone"):
            connection.exec_driver_sql(
                "INSERT INTO webhook_endpoints (id, merchant_id, livemode, url, enabled_events, "
                "enabled, secret, created_at, updated_at) VALUES "
                f"('we_{name}', 'mer_1', false, 'https://hooks.example/{name}', '[\"*\"]', "
                f"true, 'whsec_{name}', '{now}', '{now}')"
            )
            connection.exec_driver_sql(
                "INSERT INTO webhook_deliveries (id, merchant_id, livemode, endpoint_id, "
                "event_id, event_type, status, attempt_count, created_at, updated_at) VALUES "
                f"('whd_{name}', 'mer_1', false, 'we_{name}', 'evt_1', 'invoice.created', "
                f"'failed', 1, '{now}', '{now}')"
            )
            connection.exec_driver_sql(
                "INSERT INTO webhook_attempts (delivery_id, number, merchant_id, url, outcome, "
                f"started_at) VALUES ('whd_{name}', 1, 'mer_1', 'https://hooks.example/{name}', "
                f"'failed', '{now}')"
            )
    upgrade(empty_database)
    with engine.begin() as connection:
        assert connection.exec_driver_sql(
            "SELECT id, deleted_at FROM webhook_endpoints ORDER BY id"
        ).fetchall() == [("we_gone", None), ("we_kept", None)]
        connection.exec_driver_sql(
            f"UPDATE webhook_endpoints SET enabled = false, deleted_at = '{now}' "
            "WHERE id = 'we_gone'"
        )
    downgrade(empty_database, "0007")
    with engine.connect() as connection:
        left = {
            table: connection.exec_driver_sql(f"SELECT {column} FROM {table}").scalars().all()
            for table, column in (
                ("webhook_endpoints", "id"),
                ("webhook_deliveries", "id"),
                ("webhook_attempts", "delivery_id"),
            )
        }
    columns = {column["name"] for column in inspect(engine).get_columns("webhook_endpoints")}
    engine.dispose()
    assert left == {
        "webhook_endpoints": ["we_kept"],
        "webhook_deliveries": ["whd_kept"],
        "webhook_attempts": ["whd_kept"],
    }
    assert "deleted_at" not in columns
