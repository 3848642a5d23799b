"""The worker loop: expiry, idempotency-key clean-up, settlement of payments, refunds,
cancellations and deliveries, webhooks.

Each job runs in its own unit of work. On PostgreSQL rows are claimed with
`FOR UPDATE SKIP LOCKED`, so any number of workers can run side by side. A round first reads
which jobs have due work (`jobs/due.py`, one short read outside any transaction) and runs only
those: an idle round costs that read, not a transaction per job.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from quittance import clock
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.fulfilment.tasks import recover_pending
from quittance.idempotency.service import purge_expired
from quittance.invoice.tasks import expire_overdue
from quittance.jobs.due import DueCheck
from quittance.payment.tasks import settle_open_payments
from quittance.refund.tasks import settle_open_refunds
from quittance.webhook.dispatcher import Dispatcher

log = logging.getLogger("quittance.worker")

Job = Callable[[Session], int]


@dataclass
class Worker:
    db: Database
    settings: Settings
    stop_event: threading.Event = field(default_factory=threading.Event)
    dispatcher: Dispatcher | None = None
    due_check: DueCheck | None = None  # built on the first round

    def jobs(self) -> list[tuple[str, Job]]:
        base_url = self.settings.public_base_url
        return [
            ("expire_invoices", lambda session: expire_overdue(session, base_url)),
            ("purge_idempotency_keys", purge_expired),
        ]

    def due(self) -> dict[str, bool]:
        """Which jobs have work now (one read); empty if the read fails, so every job runs."""
        try:
            if self.due_check is None:
                self.due_check = DueCheck(self.db.engine)
            return self.due_check.run(clock.now(), self.settings)
        except Exception:
            log.exception("worker look for due work failed")
            return {}

    def run_once(self) -> dict[str, int]:
        """Run every job that has work once; return how many items each handled."""
        due = self.due()
        done: dict[str, int] = {}
        for name, job in self.jobs():
            if not due.get(name, True):
                done[name] = 0
                continue
            try:
                with self.db.write() as session:
                    done[name] = job(session)
            except Exception:
                log.exception("worker job %s failed", name)
                done[name] = 0
        # These commit on their own: claim, ask the provider (no transaction open), record.
        settlers = [
            ("settle_payments", settle_open_payments),
            ("settle_refunds", settle_open_refunds),
            ("settle_fulfilment", recover_pending),
        ]
        for name, settle in settlers:
            if not due.get(name, True):
                done[name] = 0
                continue
            try:
                done[name] = settle(self.db, self.settings)
            except Exception:
                log.exception("worker job %s failed", name)
                done[name] = 0
        done["dispatch_webhooks"] = self.dispatch(due.get("dispatch_webhooks"))
        return done

    def dispatch(self, due: bool | None = None) -> int:
        """Send due webhooks; the dispatcher commits on its own (claim, send, record).

        `due`: whether this round's look found a due delivery (None: the dispatcher looks).
        """
        try:
            if self.dispatcher is None:
                self.dispatcher = Dispatcher(self.db, self.settings)
            return self.dispatcher.run_once(due=due)
        except Exception:
            log.exception("worker job dispatch_webhooks failed")
            return 0

    def run(self) -> None:
        """Loop until stopped; go again at once while there is work, else sleep.

        Between rounds of every job, webhooks are polled every `webhook_poll_interval`, so a
        committed event waits for that, not for the slower `worker_interval`.
        """
        log.info("worker started on %s", self.db.backend)
        next_round = 0.0
        while not self.stop_event.is_set():
            if time.monotonic() >= next_round:
                busy = any(self.run_once().values())
                next_round = time.monotonic() + (0 if busy else self.settings.worker_interval)
            else:
                busy = self.dispatch() > 0
            if not busy:
                wait = min(self.settings.webhook_poll_interval, next_round - time.monotonic())
                if wait > 0:
                    self.stop_event.wait(wait)
        if self.dispatcher is not None:
            self.dispatcher.close()
            self.dispatcher = None
        log.info("worker stopped")

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="quittance-worker", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stop_event.set()


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
