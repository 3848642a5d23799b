"""Write back a locked row's changed columns through the database driver (the pay path).

A pay changes the invoice and the payment it has locked, in each of its two transactions. A
flush of the ORM's unit of work costs several times the UPDATE it emits, so on the pay path
those rows are read locked and detached through the driver (`db.rows.select_rows`), changed as
usual, and written back with one UPDATE each (`write_back`). As with `db.rows.insert_rows`, each
statement is built once (per mapped class, set of changed columns and dialect) with the
driver's own placeholders and each column's bind processor, and runs on the DBAPI cursor of
the session's connection, inside the session's transaction.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Dialect, Table, inspect
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from quittance.db.base import Base
from quittance.db.rows import column_keys, execute_driver


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    # (attribute, bind processor) per SET column, then per primary-key column.
    columns: tuple[tuple[str, Callable[[Any], Any] | None], ...]


_plans: dict[tuple[type[Base], frozenset[str], str], _Plan] = {}
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def _plan(cls: type[Base], changed: frozenset[str], dialect: Dialect) -> _Plan:
    key = (cls, changed, dialect.name)
    plan = _plans.get(key)
    if plan is None:
        mapper: Mapper[Any] = inspect(cls)
        preparer = dialect.identifier_preparer
        mark = _PLACEHOLDERS[dialect.paramstyle]
        sets, wheres, columns = [], [], []
        for prop in mapper.column_attrs:
            if prop.key in changed:
                column = prop.columns[0]
                sets.append(f"{preparer.quote(column.name)} = {mark}")
                columns.append((prop.key, column.type._cached_bind_processor(dialect)))
        for key_column in mapper.primary_key:
            key_prop = mapper.get_property_by_column(key_column)
            wheres.append(f"{preparer.quote(key_column.name)} = {mark}")
            columns.append((key_prop.key, key_column.type._cached_bind_processor(dialect)))
        table = cast(Table, mapper.local_table)
        sql = (
            f"UPDATE {preparer.format_table(table)} SET {', '.join(sets)} "
            f"WHERE {' AND '.join(wheres)}"
        )
        plan = _plans[key] = _Plan(sql, tuple(columns))
    return plan


def write_back(session: Session, obj: Base) -> None:
    """UPDATE the columns of a detached, locked row that changed since it was loaded."""
    state = instance_state(obj)
    values = state.dict
    columns = column_keys(type(obj))
    # As the ORM's flush: only columns assigned since the load (the ORM keeps their loaded
    # value in `committed_state`), and of those only the ones set to a different value.
    changed = frozenset(
        key
        for key, loaded in state.committed_state.items()
        if key in columns and values.get(key) != loaded
    )
    if not changed:
        return
    connection = session.connection()
    plan = _plan(type(obj), changed, connection.dialect)
    row = tuple(
        values.get(attribute) if processor is None else processor(values.get(attribute))
        for attribute, processor in plan.columns
    )
    matched = execute_driver(connection, plan.sql, [row])
    if matched != 1:  # as the ORM's flush would: the row was expected to be there
        raise StaleDataError(f"UPDATE of {type(obj).__name__} matched {matched} rows, not 1.")
    for attribute in changed:  # what was written is now the row's committed state
        set_committed_value(obj, attribute, values.get(attribute))
