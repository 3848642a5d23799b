import re

import pytest

from quittance.domain.ids import new_id, new_token


def test_ids_are_prefixed_and_time_sortable() -> None:
    first = new_id("inv", now_ms=1_700_000_000_000)
    second = new_id("inv", now_ms=1_700_000_000_001)
    assert re.fullmatch(r"inv_[0-9A-HJKMNP-TV-Z]{26}", first)
    assert first < second


def test_ids_do_not_repeat() -> None:
    assert len({new_id("evt") for _ in range(10_000)}) == 10_000


def test_unknown_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown id prefix"):
        new_id("invoice")


def test_tokens_carry_at_least_128_bits() -> None:
    token = new_token()
    assert len(token) >= 32  # 24 random bytes in base64url
    assert len({new_token() for _ in range(1000)}) == 1000
    with pytest.raises(ValueError, match="128 bits"):
        new_token(8)
