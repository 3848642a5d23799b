"""Alembic environment: the same migrations for SQLite and PostgreSQL."""

from alembic import context
from sqlalchemy import text

import quittance.models  # noqa: F401  (registers every table)
from quittance.db.base import Base
from quittance.db.engine import build_engine

# Any fixed number: the advisory lock that keeps two processes from migrating at once.
_MIGRATION_LOCK = 7_314_220_811


def run_migrations_online() -> None:
    url = context.config.attributes["database_url"]
    engine = build_engine(url, pool_size=1)
    with engine.connect() as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=not postgres,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if postgres:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                connection.commit()
    engine.dispose()


run_migrations_online()
