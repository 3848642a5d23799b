"""The column types write and read what SQLAlchemy's own types would, on both databases."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite.base import DATETIME

from quittance.db.types import UTCDateTime

SQLITE = sqlite.dialect()
# Hypothesis takes naive bounds and adds the time zones itself.
aware = st.datetimes(
    min_value=datetime(1000, 1, 2),  # noqa: DTZ001
    max_value=datetime(9998, 12, 30),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                               timezone(timedelta(hours=-8))]),
)  # fmt: skip


@given(aware)
def test_sqlite_text_is_sqlalchemys_storage_format(value: datetime) -> None:
    """Stored text compares as SQLAlchemy's does (`expires_at <= ?` is a text comparison)."""
    ours = UTCDateTime().bind_processor(SQLITE)
    theirs = DATETIME().bind_processor(SQLITE)
    assert ours is not None and theirs is not None
    assert ours(value) == theirs(value.astimezone(UTC).replace(tzinfo=None))


@given(aware)
def test_sqlite_text_reads_back_as_the_same_instant_in_utc(value: datetime) -> None:
    write = UTCDateTime().bind_processor(SQLITE)
    read = UTCDateTime().result_processor(SQLITE, None)
    assert write is not None and read is not None
    back = read(write(value))
    assert back == value and back.tzinfo is UTC


def test_a_naive_datetime_is_refused() -> None:
    write = UTCDateTime().bind_processor(SQLITE)
    assert write is not None
    with pytest.raises(ValueError, match="naive"):
        write(datetime(2026, 11, 21, 12, 0))  # noqa: DTZ001 - the point of the test
    assert write(None) is None
