"""Column types that behave the same on SQLite and PostgreSQL."""

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Dialect, String
from sqlalchemy.types import DateTime, TypeDecorator


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use UTC-aware ones")
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None)


def _sqlite_text(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite storage format ("2026-11-21 13:45:06.123456", always with the
    # microseconds, so stored values compare as text), without its %-formatting of nine fields.
    return None if value is None else _naive_utc(value).isoformat(" ", "microseconds")


def _sqlite_datetime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime; stored naive-UTC so SQLite and PostgreSQL agree.

    On SQLite the text is written and read here in one step each (the conversions are on
    every row of the hot path), in SQLAlchemy's own storage format.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_text
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_datetime
        return super().result_processor(dialect, coltype)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _naive_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - SQLite returns datetime via SQLAlchemy
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


class DecimalText(TypeDecorator[Decimal]):
    """An exact decimal (rates, percentages) stored as text."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else format(value, "f")

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)
