"""Prefixed, time-sortable identifiers (`inv_01JD…`).

An id is 48 bits of Unix milliseconds followed by 80 random bits, written in Crockford's
base32, so ids sort by creation time and cannot be guessed from one another.
"""

import os
import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

PREFIXES = frozenset(
    {"mer", "key", "inv", "pay", "re", "can", "dlv", "cus", "pm", "evt", "we", "whd", "ltx", "req"}
)


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))


def new_id(prefix: str, *, now_ms: int | None = None) -> str:
    """Return a new id such as `inv_01JD3Z…` (26 base32 characters after the prefix)."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_encode(value, 26)}"


def new_token(nbytes: int = 24) -> str:
    """Return an unguessable URL-safe token with `nbytes` * 8 bits of entropy (default 192)."""
    if nbytes < 16:
        raise ValueError("a token needs at least 128 bits")
    return secrets.token_urlsafe(nbytes)
