"""API key format and hashing.

Keys carry 238 bits of randomness, so a single SHA-256 is the right digest (a slow password hash
adds nothing against brute force of such keys and would cost every request).
"""

import hashlib
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
_RANDOM_LENGTH = 40


def generate_key(livemode: bool, publishable: bool = False) -> str:
    """Return a new key such as `qk_test_…` or `qk_live_pub_…`."""
    mode = "live" if livemode else "test"
    kind = "pub_" if publishable else ""
    random_part = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LENGTH))
    return f"qk_{mode}_{kind}{random_part}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(key: str) -> bool:
    return key.startswith(("qk_test_", "qk_live_")) and len(key) <= 64
