"""Prefixed, time-sortable identifiers (`inv_01JD…`).

An id is 48 bits of Unix milliseconds followed by 80 random bits, written in Crockford's
base32, so ids sort by creation time and cannot be guessed from one another.
"""

import base64
import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every pair of digits (10 bits): an id is 13 lookups instead of 26 divisions.
_PAIRS = [first + second for first in _ALPHABET for second in _ALPHABET]

PREFIXES = frozenset(
    {
        "mer",
        "key",
        "inv",
        "pay",
        "re",
        "can",
        "dlv",
        "cus",
        "pm",
        "evt",
        "we",
        "whd",
        "ltx",
        "req",
        "pcn",
        "xr",
    }
)


# Randomness is read from the kernel 4 KiB at a time and handed out in slices: a call to
# `os.urandom` releases the GIL, and on a busy server taking it back can cost far more than the
# call (the thread waits for the one that took it). A child process starts with an empty pool
# so that it never repeats its parent's bytes.
_POOL_SIZE = 4096
_pool_lock = threading.Lock()
_pool = b""
_pool_used = 0


def _reset_pool() -> None:
    global _pool, _pool_used
    _pool, _pool_used = b"", 0


os.register_at_fork(after_in_child=_reset_pool)


def random_bytes(n: int) -> bytes:
    """`n` bytes from the operating system's CSPRNG (as `os.urandom`), through the pool."""
    global _pool, _pool_used
    if n > _POOL_SIZE:
        return os.urandom(n)
    with _pool_lock:
        if _pool_used + n > len(_pool):
            _pool, _pool_used = os.urandom(_POOL_SIZE), 0
        start = _pool_used
        _pool_used = start + n
        return _pool[start : start + n]


def _encode(value: int) -> str:
    """`value` (128 bits) as 26 Crockford base32 digits (130 bits, the first two zero), most
    significant first."""
    p = _PAIRS
    return (
        p[value >> 120] + p[(value >> 110) & 1023] + p[(value >> 100) & 1023]
        + p[(value >> 90) & 1023] + p[(value >> 80) & 1023] + p[(value >> 70) & 1023]
        + p[(value >> 60) & 1023] + p[(value >> 50) & 1023] + p[(value >> 40) & 1023]
        + p[(value >> 30) & 1023] + p[(value >> 20) & 1023] + p[(value >> 10) & 1023]
        + p[value & 1023]
    )  # fmt: skip


def new_id(prefix: str, *, now_ms: int | None = None) -> str:
    """Return a new id such as `inv_01JD3Z…` (26 base32 characters after the prefix)."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    value = (millis << 80) | int.from_bytes(random_bytes(10), "big")
    return f"{prefix}_{_encode(value)}"


_ordered_lock = threading.Lock()
_ordered_last = 0


def new_ordered_id(prefix: str) -> str:
    """Return an id greater than every one this process made before.

    Same shape as `new_id`, but two ids made in the same millisecond still sort in the order
    they were made (used where order matters, such as one endpoint's webhook deliveries).
    """
    global _ordered_last
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    with _ordered_lock:
        value = (int(time.time() * 1000) << 80) | int.from_bytes(random_bytes(10), "big")
        if value <= _ordered_last:
            value = _ordered_last + 1
        _ordered_last = value
    return f"{prefix}_{_encode(value)}"


def new_token(nbytes: int = 24) -> str:
    """Return an unguessable URL-safe token with `nbytes` * 8 bits of entropy (default 192)."""
    if nbytes < 16:
        raise ValueError("a token needs at least 128 bits")
    return base64.urlsafe_b64encode(random_bytes(nbytes)).rstrip(b"=").decode()
