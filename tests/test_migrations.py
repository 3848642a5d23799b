"""The migrations build exactly the models' schema, on SQLite and PostgreSQL alike."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

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
