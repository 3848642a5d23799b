"""The current time: UTC, timezone-aware, to the millisecond (the precision the API shows)."""

from datetime import UTC, datetime


def now() -> datetime:
    """Return the current UTC time truncated to whole milliseconds."""
    current = datetime.now(UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


def isoformat(value: datetime) -> str:
    """Render a UTC datetime as RFC 3339 with milliseconds and a `Z`."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # `isoformat` is several times cheaper than `strftime`, and it is on every rendered document.
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
