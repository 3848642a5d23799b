"""The retry schedule of DESIGN §10 with jitter, and `Retry-After`."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from quittance.webhook import retry

NOW = datetime(2026, 1, 1, tzinfo=UTC)
EXPECTED = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]


@pytest.mark.parametrize(("attempts", "seconds"), list(enumerate(EXPECTED, start=1)))
def test_schedule_with_jitter(attempts: int, seconds: int) -> None:
    rng = random.Random(attempts)
    waits = []
    for _ in range(200):
        at = retry.next_attempt_at(attempts, NOW, rng=rng)
        assert at is not None
        waits.append((at - NOW).total_seconds())
    assert min(waits) >= seconds * (1 - retry.JITTER)
    assert max(waits) <= seconds * (1 + retry.JITTER)
    assert max(waits) - min(waits) > seconds * 0.1  # the jitter spreads retries


def test_gives_up_after_the_last_step() -> None:
    assert retry.MAX_ATTEMPTS == 10
    assert retry.next_attempt_at(10, NOW) is None
    total = sum(EXPECTED)
    assert 3 * 86400 < total < 4 * 86400  # "about three days"


def test_retry_after_seconds_wins_when_longer() -> None:
    wait = retry.parse_retry_after("120", NOW)
    assert wait == timedelta(seconds=120)
    at = retry.next_attempt_at(1, NOW, retry_after=wait, rng=random.Random(1))
    assert at == NOW + timedelta(seconds=120)
    shorter = retry.next_attempt_at(3, NOW, retry_after=wait, rng=random.Random(1))
    assert shorter is not None and shorter - NOW > timedelta(minutes=25)


def test_retry_after_http_date_and_cap() -> None:
    wait = retry.parse_retry_after("Thu, 01 Jan 2026 00:10:00 GMT", NOW)
    assert wait == timedelta(minutes=10)
    assert retry.parse_retry_after("garbage", NOW) is None
    assert retry.parse_retry_after(None, NOW) is None
    huge = retry.next_attempt_at(1, NOW, retry_after=timedelta(days=30))
    assert huge == NOW + retry.MAX_RETRY_AFTER
