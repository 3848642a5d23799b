import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quittance.domain.ids import _ALPHABET, _encode, new_id, new_token, random_bytes


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


def test_random_bytes_come_in_fresh_slices_across_refills() -> None:
    slices = [random_bytes(10) for _ in range(2_000)]  # several refills of the 4 KiB pool
    assert all(len(piece) == 10 for piece in slices)
    assert len(set(slices)) == len(slices)
    assert len(random_bytes(10_000)) == 10_000  # more than a pool's worth at once


def test_a_forked_child_never_repeats_its_parents_randomness() -> None:
    random_bytes(1)  # the parent's pool is filled: a child would copy it
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.close(reader)
        os.write(writer, random_bytes(32))
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        from_child = pipe.read()
    os.waitpid(child, 0)
    assert len(from_child) == 32
    assert from_child != random_bytes(32)
