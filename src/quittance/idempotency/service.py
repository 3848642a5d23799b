"""Idempotent execution of a write request.

With a key, a request runs in three steps: claim the key (its own short commit, so a second
request with the same key sees it in flight and gets 409), run the work and store the response
in the same transaction, answer. A replay returns the stored status and body byte for byte; a
different body (method, path, or canonical JSON, so amount *and* currency count) gets 422.
Business errors are stored and replayed too; validation errors happen before the key is claimed
and are not stored; an unexpected failure releases the key so the client may retry.
"""

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import delete, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.responses import Response

from quittance import clock
from quittance.api.responses import dumps, json_response
from quittance.auth.dependencies import Caller
from quittance.db.uow import Database
from quittance.domain.errors import Conflict, QuittanceError
from quittance.errors import error_body, problem_response
from quittance.models import IdempotencyKey

RETENTION = timedelta(hours=72)
# A key still in flight after this long belonged to a process that died; its work rolled back.
STALE_AFTER = timedelta(minutes=5)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

Handler = Callable[[Session], tuple[int, Any]]
# A handler that opens its own units of work (several commits, e.g. around a provider call).
StepsHandler = Callable[[Database], tuple[int, Any]]
# The same, awaited on the event loop (its steps use `Database.write_grouped`).
AsyncStepsHandler = Callable[[], Awaitable[tuple[int, Any]]]


class IdempotencyKeyInvalid(QuittanceError):
    status = 400
    code = "idempotency_key_invalid"
    title = "Invalid Idempotency-Key"


class IdempotencyKeyReused(QuittanceError):
    status = 422
    code = "idempotency_key_reused"
    title = "Idempotency-Key reused with a different request"


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"
    title = "A request with this Idempotency-Key is in flight"


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Hash the request so that only the same operation with the same body matches."""
    canonical = b""
    if body.strip():
        try:
            canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
        except orjson.JSONDecodeError:
            canonical = body
    digest = hashlib.sha256(f"{method} {path}\n".encode() + canonical)
    return digest.hexdigest()


@dataclass(slots=True)
class IdempotentRequest:
    """One write request, with or without an `Idempotency-Key`."""

    db: Database
    caller: Caller
    key: str | None
    method: str
    path: str
    fingerprint: str

    def run(self, handler: Handler) -> Response:
        """Run `handler` in one unit of work and answer its `(status, payload)` as JSON."""
        if self.key is None:
            with self.db.write() as session:
                status, payload = handler(session)
                body = dumps(payload)
            return json_response(status, body)
        replay = self._claim()
        if replay is not None:
            return replay
        try:
            with self.db.write() as session:
                status, payload = handler(session)
                body = dumps(payload)
                self._store(session, status, body)
            return json_response(status, body)
        except QuittanceError as exc:
            body = error_body(exc)
            with self.db.write() as session:
                self._store(session, exc.status, body)
            return problem_response(exc.status, body)
        except BaseException:
            with self.db.write() as session:
                session.execute(delete(IdempotencyKey).where(*self._row_filter()))
            raise

    async def run_grouped(self, handler: Handler) -> Response:
        """`run`, awaited on the event loop, each step committed together with concurrent
        ones (`Database.write_grouped`): the claim of the key, then the work with its stored
        answer. `handler` must be safe to run again after a rollback."""
        if self.key is None:
            status, payload = await self.db.write_grouped(handler)
            return json_response(status, dumps(payload))
        replay = await self._claim_grouped()
        if replay is not None:
            return replay

        def work(session: Session) -> tuple[int, bytes]:
            status, payload = handler(session)
            body = dumps(payload)
            self._store(session, status, body)
            return status, body

        try:
            status, body = await self.db.write_grouped(work)
            return json_response(status, body)
        except QuittanceError as exc:
            return await self._refused_grouped(exc)
        except Exception:
            # The work rolled back: release the key so the client may retry. (A cancelled
            # request keeps it: its work may still commit, and then a retry replays it.)
            await self._release_grouped()
            raise

    async def _refused_grouped(self, exc: QuittanceError) -> Response:
        """Store a business refusal as the key's answer, and give it."""
        body = error_body(exc)
        await self.db.write_grouped(lambda session: self._store(session, exc.status, body))
        return problem_response(exc.status, body)

    async def _release_grouped(self) -> None:
        await self.db.write_grouped(
            lambda session: session.execute(delete(IdempotencyKey).where(*self._row_filter()))
        )

    async def _claim_grouped(self) -> Response | None:
        for _ in range(3):
            try:
                replay: Response | None = await self.db.write_grouped(self._claim_in)
                return replay
            except IntegrityError:
                continue  # another request inserted the key first: read it on the next pass
        raise IdempotencyKeyInUse("A request with this Idempotency-Key is in flight; retry later.")

    def run_steps(self, handler: StepsHandler) -> Response:
        """Run a handler that commits more than once; its response is stored at the end.

        If the process dies half-way, the key stays in flight until it is stale; the work's
        own recovery points (and the worker) finish what was started.
        """
        if self.key is None:
            status, payload = handler(self.db)
            return json_response(status, dumps(payload))
        replay = self._claim()
        if replay is not None:
            return replay
        try:
            status, payload = handler(self.db)
        except QuittanceError as exc:
            body = error_body(exc)
            with self.db.write() as session:
                self._store(session, exc.status, body)
            return problem_response(exc.status, body)
        except BaseException:
            with self.db.write() as session:
                session.execute(delete(IdempotencyKey).where(*self._row_filter()))
            raise
        body = dumps(payload)
        with self.db.write() as session:
            self._store(session, status, body)
        return json_response(status, body)

    async def run_steps_grouped(self, handler: AsyncStepsHandler) -> Response:
        """`run_steps`, awaited on the event loop: `handler` commits its steps with
        `Database.write_grouped`, and the key's claim and stored answer are grouped too."""
        if self.key is None:
            status, payload = await handler()
            return json_response(status, dumps(payload))
        replay = await self._claim_grouped()
        if replay is not None:
            return replay
        try:
            status, payload = await handler()
        except QuittanceError as exc:
            return await self._refused_grouped(exc)
        except Exception:
            await self._release_grouped()
            raise
        answer = dumps(payload)
        await self.db.write_grouped(lambda session: self._store(session, status, answer))
        return json_response(status, answer)

    def _row_filter(self) -> tuple[Any, ...]:
        return (
            IdempotencyKey.merchant_id == self.caller.merchant_id,
            IdempotencyKey.livemode == self.caller.livemode,
            IdempotencyKey.key == self.key,
        )

    def _claim(self) -> Response | None:
        """Claim the key, or return the answer for a key already used."""
        for _ in range(3):
            try:
                with self.db.write() as session:
                    return self._claim_in(session)
            except IntegrityError:
                continue  # another request inserted the key first: read it on the next pass
        raise IdempotencyKeyInUse("A request with this Idempotency-Key is in flight; retry later.")

    def _claim_in(self, session: Session) -> Response | None:
        now = clock.now()
        identity = (self.caller.merchant_id, self.caller.livemode, self.key)
        row = session.get(IdempotencyKey, identity, with_for_update=True)
        if row is not None and row.expires_at <= now:
            session.delete(row)
            session.flush()
            row = None
        if row is None:
            assert self.key is not None
            session.add(
                IdempotencyKey(
                    merchant_id=self.caller.merchant_id,
                    livemode=self.caller.livemode,
                    key=self.key,
                    method=self.method,
                    path=self.path,
                    fingerprint=self.fingerprint,
                    state="in_flight",
                    locked_at=now,
                    created_at=now,
                    expires_at=now + RETENTION,
                )
            )
            session.flush()
            return None
        if row.fingerprint != self.fingerprint:
            exc: QuittanceError = IdempotencyKeyReused(
                "This Idempotency-Key was used with a different request "
                f"({row.method} {row.path}); use a new key for a new request."
            )
            return problem_response(exc.status, error_body(exc))
        if row.state == "in_flight":
            if now - row.locked_at < STALE_AFTER:
                exc = IdempotencyKeyInUse(
                    "The first request with this Idempotency-Key is still in flight; retry later."
                )
                return problem_response(exc.status, error_body(exc))
            row.locked_at = now
            return None
        assert row.response_status is not None and row.response_body is not None
        body = row.response_body.encode()
        headers = {"Idempotent-Replayed": "true"}
        if row.response_status >= 400:
            return problem_response(row.response_status, body, headers)
        return json_response(row.response_status, body, headers)

    def _store(self, session: Session, status: int, body: bytes) -> None:
        identity = (self.caller.merchant_id, self.caller.livemode, self.key)
        row = session.get(IdempotencyKey, identity)
        if row is None:  # pragma: no cover - the claim is committed before the work starts
            raise IdempotencyKeyInUse("The Idempotency-Key was released; retry the request.")
        row.state = "done"
        row.response_status = status
        row.response_body = body.decode()


def validate_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not _KEY.match(raw):
        raise IdempotencyKeyInvalid(
            "An Idempotency-Key is 1 to 255 printable ASCII characters without spaces."
        )
    return raw


def purge_expired(session: Session, limit: int = 1000) -> int:
    """Delete keys older than the retention period; return how many went."""
    now = clock.now()
    expired = (
        select(IdempotencyKey.merchant_id, IdempotencyKey.livemode, IdempotencyKey.key)
        .where(IdempotencyKey.expires_at <= now)
        .limit(limit)
    )
    identity = tuple_(IdempotencyKey.merchant_id, IdempotencyKey.livemode, IdempotencyKey.key)
    result = session.execute(
        delete(IdempotencyKey).where(identity.in_(expired)),
        execution_options={"synchronize_session": False},
    )
    return int(getattr(result, "rowcount", 0) or 0)
