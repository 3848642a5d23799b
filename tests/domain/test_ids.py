import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quittance.domain.ids import _ALPHABET, _encode, new_id, new_token


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


def _digits(value: int) -> str:
    """The definition: 26 base32 digits of `value`, most significant first."""
    digits = []
    for _ in range(26):
        value, index = divmod(value, 32)
        digits.append(_ALPHABET[index])
    return "".join(reversed(digits))


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_the_encoding_is_crockford_base32_of_the_value(value: int) -> None:
    assert _encode(value) == _digits(value)


def test_the_encoding_keeps_the_order_of_values() -> None:
    edges = [0, 1, 31, 32, 2**80 - 1, 2**80, 2**127, 2**128 - 1]
    assert [_encode(v) for v in edges] == [_digits(v) for v in edges]
    assert sorted(_encode(v) for v in edges) == [_encode(v) for v in sorted(edges)]
