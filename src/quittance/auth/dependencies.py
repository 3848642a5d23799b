"""Resolve the caller from the `Authorization: Bearer …` header."""

import threading
import time
from dataclasses import dataclass
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy import select

from quittance.auth.keys import hash_key, looks_like_key
from quittance.db.uow import Database
from quittance.domain.errors import NotFound, Unauthorized
from quittance.models import ApiKey


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: one merchant, in one mode, with one key."""

    merchant_id: str
    livemode: bool
    key_id: str
    publishable: bool


class KeyCache:
    """A short-lived cache of key digests, so the hot path skips one query per request.

    A key revoked in the database stops working everywhere within `ttl` seconds.
    """

    def __init__(self, ttl: float = 5.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[float, Caller]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> Caller | None:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, digest: str, caller: Caller) -> None:
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + self.ttl, caller)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _digest(authorization: str | None) -> str:
    """Check the header's shape and return the key's digest, or raise 401."""
    if not authorization:
        raise Unauthorized(
            "Send your API key as `Authorization: Bearer qk_test_…`.",
            code="authentication_required",
        )
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not looks_like_key(key):
        raise Unauthorized("The API key is missing or malformed.", code="invalid_api_key")
    return hash_key(key)


def digest_or_none(authorization: str | None) -> str | None:
    """The key's digest, or None when the header is missing or malformed."""
    try:
        return _digest(authorization)
    except Unauthorized:
        return None


def _lookup(db: Database, cache: KeyCache, digest: str) -> Caller:
    with db.read() as session:
        row = session.execute(
            select(ApiKey.id, ApiKey.merchant_id, ApiKey.livemode, ApiKey.kind).where(
                ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)
            )
        ).one_or_none()
    if row is None:
        raise Unauthorized("This API key is not valid.", code="invalid_api_key")
    caller = Caller(row.merchant_id, row.livemode, row.id, row.kind == "publishable")
    cache.put(digest, caller)
    return caller


def known_caller(db: Database, cache: KeyCache, digest: str) -> Caller | None:
    """The caller of a key digest the cache does not hold, read (and cached) as the route's
    dependency reads it, or None when no valid key has that digest."""
    try:
        return _lookup(db, cache, digest)
    except Unauthorized:
        return None


def authenticate(db: Database, cache: KeyCache, authorization: str | None) -> Caller:
    """Return the caller a bearer key belongs to, or raise 401."""
    digest = _digest(authorization)
    return cache.get(digest) or _lookup(db, cache, digest)


async def _secret_caller(request: Request) -> Caller:
    # Async, so a cached key costs no hop to the thread pool; a miss reads in a thread.
    state = request.app.state
    cache: KeyCache = state.key_cache
    digest = _digest(request.headers.get("authorization"))
    caller = cache.get(digest)
    if caller is None:
        caller = await anyio.to_thread.run_sync(_lookup, state.db, cache, digest)
    if caller.publishable:
        raise Unauthorized(
            "A publishable key cannot use this endpoint; use a secret key.",
            code="secret_key_required",
        )
    return caller


CallerDep = Annotated[Caller, Depends(_secret_caller)]


def require_test_mode(caller: Caller) -> None:
    """Test helpers do not exist for a live key: answer 404, as for any unknown path."""
    if caller.livemode:
        raise NotFound("Test helpers exist in test mode only.", code="not_found")
