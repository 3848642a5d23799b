"""Reads for the worker's looks for due work, straight through the database driver.

The worker looks for due work several times a second, and almost always finds none. Through a
session such a look costs several times the query: the session, the ORM's execution path, a
`BEGIN` and a `ROLLBACK` (on PostgreSQL two more round trips). A `Probe` is one SELECT built
once per dialect, with the driver's own placeholders, run on a pooled connection outside any
transaction (one statement sees one snapshot; nothing is locked or written): on PostgreSQL in
autocommit for that statement, one round trip; on SQLite in the driver's autocommit mode, which
the engine always leaves on (`db/engine.py` begins transactions itself).

Parameters are converted with the same bind processors SQLAlchemy would apply (the
`TypeDecorator`s of `db.types`), so a probe compares exactly as the job's own query does.
"""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, Select


class Probe:
    """One read-only SELECT, run through the driver with no transaction open."""

    def __init__(
        self, engine: Engine, statement: Select[*tuple[Any, ...]], variables: Iterable[str]
    ) -> None:
        """Build `statement` for `engine`'s dialect; `variables` name the bind parameters that
        change from one run to the next (the others keep the values they were built with)."""
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect)
        names = frozenset(variables)
        # Expanded once: an `IN` list of constants becomes one placeholder per value.
        state = compiled.construct_expanded_state(dict.fromkeys(names))
        self._engine = engine
        self._sql = state.statement
        self._constants = {k: v for k, v in state.parameters.items() if k not in names}
        self._processors = {
            name: compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in names
        }
        self._order = state.positiontup  # positional placeholders (SQLite); None: by name
        self._autocommit = dialect.name == "postgresql"

    def first(self, **values: Any) -> tuple[Any, ...] | None:
        """Run the statement with `values` for its variables; return its first row."""
        parameters = dict(self._constants)
        for name, process in self._processors.items():
            value = values[name]
            parameters[name] = value if process is None else process(value)
        arguments = parameters if self._order is None else [parameters[n] for n in self._order]
        connection = self._engine.raw_connection()
        try:
            driver: Any = connection.driver_connection
            if self._autocommit:
                driver.autocommit = True  # possible: a pooled connection has no transaction
            cursor = driver.cursor()
            cursor.execute(self._sql, arguments)
            row = cursor.fetchone()
            cursor.close()
            if self._autocommit:
                driver.autocommit = False
        except BaseException as exc:
            # Rather than restore its state (autocommit, an open cursor) on a connection that
            # may be broken, the pool gets a new one.
            connection.invalidate(exc if isinstance(exc, Exception) else None)
            raise
        finally:
            connection.close()
        return None if row is None else tuple(row)
