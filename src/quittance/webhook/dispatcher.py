"""The dispatcher: sends the outbox's deliveries from the worker, at least once, in order.

One round has three recovery points, and no transaction is open during an HTTP request:

1. Claim (one commit): lock the due head of each enabled endpoint's queue (on PostgreSQL with
   `FOR UPDATE SKIP LOCKED`) and the deliveries queued right behind it, give each a lease and
   an attempt row marked `in_flight`.
2. Send, outside any transaction: each endpoint's deliveries one after the other, stopping at
   the first failure; different endpoints in parallel.
3. Record (one commit per endpoint): each attempt's outcome, the delivery's next step (done,
   retry at the scheduled time, or given up), and the endpoint's health.

Before 1, a round reads whether any head is due, outside any transaction and through the driver
(`jobs/probe.py`): an idle poll, several a second, takes no lock and costs one short read. In
the worker's full rounds that read is part of its one look for every job's work.

A worker that dies between 1 and 3 leaves leases that run out; the next claim marks the lost
attempts `abandoned` and sends the deliveries again, with the same `webhook-id`.

Once a minute a round first purges the deliveries of deleted endpoints: another process's
cached endpoints may queue one for an endpoint in the seconds after its deletion. They are
never claimed (a deleted endpoint is disabled), and the API does not show them meanwhile.
"""

import logging
import random
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import orjson
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from quittance import clock
from quittance.config import Settings
from quittance.db.types import UTCDateTime
from quittance.db.uow import Database
from quittance.event.service import render_event
from quittance.jobs.probe import Probe
from quittance.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from quittance.webhook import repository, retry, signing, ssrf
from quittance.webhook.outbox import FAILED, SUCCEEDED
from quittance.webhook.service import disable_endpoint, signing_secrets

log = logging.getLogger("quittance.webhooks")

MAX_RESPONSE_BODY = 4096  # bytes of the receiver's answer kept in the delivery log
GONE = 410
PURGE_EVERY = 60.0  # seconds between two purges of deleted endpoints' deliveries
_NOW = bindparam("now", type_=UTCDateTime())


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed delivery, with everything needed to send it outside a transaction."""

    delivery_id: str
    lease_token: str
    attempt: int
    endpoint_id: str
    url: str
    secrets: tuple[str, ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class Result:
    """What one HTTP attempt came to."""

    job: Job
    started_at: datetime
    finished_at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    response_body: str | None = None
    retry_after: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.status_code is not None and self.status_code < 300


def payload(event: Event, limit: int) -> bytes:
    """The request body: the event; without its `data` when it is larger than `limit`."""
    rendered = render_event(event)
    body = orjson.dumps(rendered)
    if len(body) <= limit:
        return body
    # Too large to send: the receiver fetches the whole event from GET /v1/events/{id}.
    return orjson.dumps({**rendered, "data": None, "data_omitted": True})


class Dispatcher:
    """Claims, sends and records webhook deliveries; any number may run side by side."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        client: httpx.Client | None = None,
        rng: random.Random | None = None,
        endpoints_per_round: int = 64,
        per_endpoint: int = 20,
    ) -> None:
        self.db = db
        self.settings = settings
        self.rng = rng or random.Random()
        self.endpoints_per_round = endpoints_per_round
        self.per_endpoint = per_endpoint
        concurrency = settings.webhook_concurrency
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(settings.webhook_timeout),
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=concurrency * 2),
        )
        self._pool: ThreadPoolExecutor | None = None
        self._next_purge = 0.0  # time.monotonic() of the next purge: the first round's
        self._any_due: Probe | None = None  # built on first use

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.client.close()

    def run_once(self, now: datetime | None = None, *, due: bool | None = None) -> int:
        """Send what is due at `now` (default: the clock); return how many attempts were made.

        `due` is what the caller has already read (the worker's look for every job's work, at
        a `now` no later than this one): False skips the round, True skips the look. With
        None the round first looks itself.
        """
        now = now or clock.now()
        started = time.monotonic()

        def at() -> datetime:  # `now`, advanced by the time this round has taken
            return now + timedelta(seconds=time.monotonic() - started)

        if started >= self._next_purge:
            self._next_purge = started + PURGE_EVERY
            self.purge_deleted()
        if due is None:
            due = self.any_due(now)
        if not due:
            return 0  # nothing due: no write transaction, no lock
        groups = self.claim(now)
        if not groups:
            return 0
        if len(groups) == 1 or self.settings.webhook_concurrency == 1:
            return sum(self._deliver(group, at, now) for group in groups)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.settings.webhook_concurrency, thread_name_prefix="quittance-webhook"
            )
        return sum(self._pool.map(lambda group: self._deliver(group, at, now), groups))

    def any_due(self, now: datetime) -> bool:
        """Whether some endpoint's head is due at `now`: one read, outside any transaction."""
        if self._any_due is None:
            self._any_due = Probe(self.db.engine, select(repository.any_due(_NOW)), [_NOW.key])
        row = self._any_due.first(now=now)
        return row is not None and bool(row[0])

    def purge_deleted(self) -> int:
        """Delete the deliveries queued for deleted endpoints; return how many. Never raises:
        a failure is logged, and the next purge tries again."""
        try:
            with self.db.read() as session:
                endpoints = repository.deleted_with_deliveries(session)
            if not endpoints:
                return 0  # the usual case: no write transaction, no lock
            with self.db.write() as session:
                purged = repository.purge_deleted(session, endpoints)
        except Exception:
            log.exception("purging the deliveries of deleted webhook endpoints failed")
            return 0
        log.info("purged %d webhook deliveries of deleted endpoints", purged)
        return purged

    # 1. Claim

    def claim(self, now: datetime) -> list[list[Job]]:
        """Lease due deliveries, at most `per_endpoint` in a row for each endpoint."""
        with self.db.write() as session:
            heads = repository.due_heads(session, now, self.endpoints_per_round)
            if not heads:
                return []
            groups = [self._queue_from(session, head, now) for head in heads]
            claimed = [d for group in groups for d in group]
            repository.abandon_in_flight(session, [d.id for d in claimed if d.attempt_count])
            endpoint_ids = {d.endpoint_id for d in claimed}
            endpoints = {
                e.id: e
                for e in session.scalars(
                    select(WebhookEndpoint).where(WebhookEndpoint.id.in_(endpoint_ids))
                )
            }
            event_ids = {d.event_id for d in claimed}
            events = {
                e.id: e for e in session.scalars(select(Event).where(Event.id.in_(event_ids)))
            }
            lease_until = now + self.settings.webhook_lease
            limit = self.settings.webhook_max_payload_bytes
            jobs = []
            for group in groups:
                endpoint = endpoints[group[0].endpoint_id]
                signers = tuple(signing_secrets(endpoint, now))
                jobs.append(
                    [
                        self._lease(
                            session,
                            d,
                            endpoint,
                            signers,
                            events[d.event_id],
                            limit,
                            lease_until,
                            now,
                        )
                        for d in group
                    ]
                )
            return jobs

    def _queue_from(
        self, session: Session, head: WebhookDelivery, now: datetime
    ) -> list[WebhookDelivery]:
        group = [head]
        for follower in repository.followers(session, head, self.per_endpoint - 1):
            due = follower.next_attempt_at is not None and follower.next_attempt_at <= now
            leased = follower.locked_until is not None and follower.locked_until > now
            if not due or leased:
                break
            group.append(follower)
        return group

    def _lease(
        self,
        session: Session,
        delivery: WebhookDelivery,
        endpoint: WebhookEndpoint,
        signers: tuple[str, ...],
        event: Event,
        limit: int,
        lease_until: datetime,
        now: datetime,
    ) -> Job:
        token = secrets.token_hex(8)
        delivery.attempt_count += 1
        delivery.locked_until = lease_until
        delivery.lease_token = token
        delivery.updated_at = now
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                number=delivery.attempt_count,
                merchant_id=delivery.merchant_id,
                url=endpoint.url,
                outcome="in_flight",
                started_at=now,
            )
        )
        return Job(
            delivery.id,
            token,
            delivery.attempt_count,
            endpoint.id,
            endpoint.url,
            signers,
            payload(event, limit),
        )

    # 2. Send

    def _deliver(self, group: list[Job], at: Callable[[], datetime], now: datetime) -> int:
        """Send one endpoint's deliveries in order, stopping at the first failure; record."""
        lease_end = now + self.settings.webhook_lease
        timeout = timedelta(seconds=self.settings.webhook_timeout)
        results: list[Result] = []
        for index, job in enumerate(group):
            if index and at() + timeout >= lease_end:
                break  # the lease would run out during this request: leave it for next round
            result = self.send(job, at)
            results.append(result)
            if not result.succeeded:
                break
        try:
            self.record(results, group[len(results) :])
        except Exception:
            # The leases run out and the deliveries are sent again: at least once.
            log.exception("recording webhook results for %s failed", group[0].endpoint_id)
        return len(results)

    def send(self, job: Job, at: Callable[[], datetime]) -> Result:
        """Make one signed HTTP request for `job`; never raises."""
        started_at = at()
        started = time.perf_counter()

        def result(
            *,
            status_code: int | None = None,
            error: str | None = None,
            response_body: str | None = None,
            retry_after: str | None = None,
        ) -> Result:
            duration = time.perf_counter() - started
            finished_at = started_at + timedelta(seconds=duration)
            return Result(
                job,
                started_at,
                finished_at,
                round(duration * 1000),
                status_code,
                error,
                response_body,
                retry_after,
            )

        try:
            target = ssrf.check_url(job.url, self.settings, strict=True)
        except (ssrf.UrlForbidden, ssrf.UrlUnresolvable) as exc:
            return result(error=f"url_refused: {exc}"[:200])
        headers = signing.headers(
            job.secrets, job.delivery_id, int(started_at.timestamp()), job.body
        )
        extensions = {}
        if target.host_header is not None:
            headers["host"] = target.host_header
            if target.server_name is not None and target.url.startswith("https:"):
                extensions["sni_hostname"] = target.server_name
        try:
            with self.client.stream(
                "POST", target.url, content=job.body, headers=headers, extensions=extensions
            ) as response:
                kept = bytearray()
                deadline = started + self.settings.webhook_timeout
                for chunk in response.iter_bytes():
                    kept += chunk
                    # Enough of the answer for the log, or a body that trickles in: stop.
                    if len(kept) >= MAX_RESPONSE_BODY or time.perf_counter() > deadline:
                        break
                error = None
                if 300 <= response.status_code < 400:
                    error = "redirect_not_followed"
                elif response.status_code >= 300:
                    error = f"http_{response.status_code}"
                return result(
                    status_code=response.status_code,
                    error=error,
                    response_body=kept[:MAX_RESPONSE_BODY].decode("utf-8", "replace"),
                    retry_after=response.headers.get("retry-after"),
                )
        except httpx.TimeoutException:
            return result(error="timeout")
        except httpx.HTTPError as exc:
            return result(error=f"connection_error: {type(exc).__name__}: {exc}"[:200])

    # 3. Record

    def record(self, results: list[Result], unsent: list[Job]) -> None:
        """Write the attempts' outcomes and what happens next, in one unit of work."""
        if not results and not unsent:
            return
        jobs = [r.job for r in results] + unsent
        ids = [job.delivery_id for job in jobs]
        with self.db.write() as session:
            needs_lock = any(not r.succeeded for r in results)
            endpoint = session.get(WebhookEndpoint, jobs[0].endpoint_id, with_for_update=needs_lock)
            deliveries = {
                d.id: d
                for d in session.scalars(
                    select(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).with_for_update()
                )
            }
            attempts = {
                (a.delivery_id, a.number): a
                for a in session.scalars(
                    select(WebhookAttempt).where(
                        WebhookAttempt.delivery_id.in_(ids),
                        WebhookAttempt.outcome.in_(("in_flight", "abandoned")),
                    )
                )
            }
            for result in results:
                job = result.job
                attempt = attempts.get((job.delivery_id, job.attempt))
                delivery = deliveries.get(job.delivery_id)
                self._record_one(session, endpoint, delivery, attempt, result)
            for job in unsent:
                attempt = attempts.get((job.delivery_id, job.attempt))
                self._release(session, deliveries.get(job.delivery_id), attempt, job)

    def _record_one(
        self,
        session: Session,
        endpoint: WebhookEndpoint | None,
        delivery: WebhookDelivery | None,
        attempt: WebhookAttempt | None,
        result: Result,
    ) -> None:
        job = result.job
        if attempt is not None:
            attempt.outcome = "succeeded" if result.succeeded else "failed"
            attempt.duration_ms = result.duration_ms
            attempt.status_code = result.status_code
            attempt.error = result.error
            attempt.response_body = result.response_body
        if delivery is None or endpoint is None or delivery.lease_token != job.lease_token:
            return  # deleted, or its lease ran out and another worker took it over
        finished = result.finished_at
        delivery.locked_until = None
        delivery.lease_token = None
        delivery.last_attempt_at = result.started_at
        delivery.last_status_code = result.status_code
        delivery.last_error = result.error
        delivery.updated_at = finished
        if result.succeeded:
            delivery.status = SUCCEEDED
            delivery.delivered_at = finished
            delivery.next_attempt_at = None
            if endpoint.failing_since is not None:
                endpoint.failing_since = None
            return
        if result.status_code == GONE:
            delivery.status = FAILED
            delivery.next_attempt_at = None
            if endpoint.enabled:
                disable_endpoint(
                    session, endpoint, "gone", finished, "The endpoint answered 410 Gone."
                )
            return
        wait = retry.parse_retry_after(result.retry_after, finished)
        next_at = retry.next_attempt_at(
            delivery.attempt_count, finished, retry_after=wait, rng=self.rng
        )
        delivery.next_attempt_at = next_at
        if next_at is None:
            delivery.status = FAILED
        if endpoint.failing_since is None:
            endpoint.failing_since = result.started_at
        failing_for = finished - endpoint.failing_since
        if endpoint.enabled and failing_for >= self.settings.webhook_disable_after:
            days = failing_for.total_seconds() / 86400
            disable_endpoint(
                session,
                endpoint,
                "failing",
                finished,
                f"Every attempt has failed for {days:.1f} days.",
            )

    def _release(
        self,
        session: Session,
        delivery: WebhookDelivery | None,
        attempt: WebhookAttempt | None,
        job: Job,
    ) -> None:
        """Give back a claimed delivery that was not sent this round."""
        if delivery is None or delivery.lease_token != job.lease_token:
            return
        if attempt is not None:
            session.delete(attempt)
        delivery.attempt_count -= 1
        delivery.locked_until = None
        delivery.lease_token = None
