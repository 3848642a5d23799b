"""When to try a failed delivery again (DESIGN §10): pure rules, no I/O."""

import random
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Final

# Waits after the 1st, 2nd, … failed attempt: about three and a half days in all.
SCHEDULE: Final = tuple(
    timedelta(seconds=s) for s in (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
)
MAX_ATTEMPTS: Final = len(SCHEDULE) + 1
JITTER: Final = 0.15  # ± this fraction of each wait, so endpoints that failed together spread
# A `Retry-After` longer than this is capped: the schedule's longest wait.
MAX_RETRY_AFTER: Final = SCHEDULE[-1]


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Read `Retry-After` as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


def next_attempt_at(
    attempts: int,
    now: datetime,
    *,
    retry_after: timedelta | None = None,
    rng: random.Random | None = None,
) -> datetime | None:
    """Return when to try again after `attempts` failed attempts, or None to give up.

    The receiver's `Retry-After` wins when it asks for a longer wait than the schedule.
    """
    if attempts >= MAX_ATTEMPTS:
        return None
    wait = SCHEDULE[attempts - 1]
    factor = 1 + (rng or random).uniform(-JITTER, JITTER)
    wait = timedelta(seconds=wait.total_seconds() * factor)
    if retry_after is not None and retry_after > wait:
        wait = min(retry_after, MAX_RETRY_AFTER)
    return now + wait
