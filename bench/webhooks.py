"""Benchmark: webhook commit-to-delivery latency and dispatcher throughput.

For each database (SQLite in a temporary directory; PostgreSQL in a fresh database
`quittance_bench_wh_<random>`, dropped at the end) one run:

1. migrates the database and starts a loopback receiver (this script with `--receiver`, in its
   own process) that answers 200 at once and notes when each webhook arrived;
2. latency: starts `quittance worker` (its own process), commits events at a steady rate for
   one endpoint, one event per transaction, and measures, per event, the time from the commit
   returning to the request arriving at the receiver (p50, p99, max), for each poll interval;
3. throughput: queues N events for E endpoints while no worker runs, starts a worker, and
   measures deliveries per second from the first arrival to the last.

    .venv/bin/python bench/webhooks.py
    .venv/bin/python bench/webhooks.py --databases sqlite --rate 100 --duration 5

Every child process is killed on exit; every wait has a timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# The receiver (run as `webhooks.py --receiver PORT`)


def run_receiver(port: int) -> None:
    arrivals: list[tuple[str, str, float]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            arrived = time.time()
            event_id = json.loads(body)["id"]
            with lock:
                arrivals.append((self.headers["webhook-id"], event_id, arrived))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            with lock:
                body = json.dumps(arrivals).encode()
                if self.path == "/reset":
                    arrivals.clear()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def fetch(url: str) -> Any:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@contextlib.contextmanager
def child(args: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(args, env=env, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# Databases


@contextlib.contextmanager
def database(kind: str, pg_admin_url: str) -> Iterator[str | None]:
    from quittance.db.migrate import upgrade

    if kind == "sqlite":
        directory = tempfile.mkdtemp(prefix="quittance-bench-")
        url = f"sqlite:///{directory}/bench.db"
        upgrade(url)
        try:
            yield url
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    import psycopg

    name = f"quittance_bench_wh_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        log(f"PostgreSQL unreachable ({exc}); skipped")
        yield None
        return
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{pg_admin_url.rpartition('/')[0]}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def merchant_with_endpoints(url: str, receiver_url: str, count: int) -> str:
    from quittance.auth.dependencies import Caller
    from quittance.config import Settings
    from quittance.db.uow import Database
    from quittance.merchant.service import create_merchant
    from quittance.webhook.schemas import WebhookEndpointCreate
    from quittance.webhook.service import create_endpoint

    settings = Settings(database_url=url, env="test", webhook_allowed_hosts=["127.0.0.1"])
    db = Database(url, pool_size=1)
    with db.write() as session:
        merchant = create_merchant(session, "Bench Shop")
        caller = Caller(merchant.id, False, "key_bench", False)
        for _ in range(count):
            body = WebhookEndpointCreate(url=receiver_url, enabled_events=["bench.*"])
            create_endpoint(session, caller, body, settings)
    db.dispose()
    return str(merchant.id)


def worker_env(url: str, poll: float | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "QUITTANCE_DATABASE_URL": url,
        "QUITTANCE_ENV": "test",
        "QUITTANCE_LOG_LEVEL": "WARNING",
        "QUITTANCE_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    }
    if poll is not None:
        env["QUITTANCE_WEBHOOK_POLL_INTERVAL"] = str(poll)
    return env


WORKER = [sys.executable, "-c", "from quittance.cli import main; main()", "worker"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))]


def wait_arrivals(receiver: str, count: int, timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    arrivals: list[Any] = fetch(f"{receiver}/records")
    while len(arrivals) < count and time.monotonic() < deadline:
        time.sleep(0.2)
        arrivals = fetch(f"{receiver}/records")
    return arrivals


def latency_run(
    url: str, receiver: str, rate: float, duration: float, poll: float
) -> dict[str, Any]:
    from quittance.db.uow import Database
    from quittance.event import service as events

    merchant_id = merchant_with_endpoints(url, f"{receiver}/hook", 1)
    fetch(f"{receiver}/reset")
    db = Database(url, pool_size=2)
    committed: dict[str, float] = {}
    with child(WORKER, worker_env(url, poll)):
        time.sleep(2.0)  # the worker's start-up is not part of the figure
        total = int(rate * duration)
        start = time.monotonic()
        for n in range(total):
            target = start + n / rate
            pause = target - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            with db.write() as session:
                event = events.record(
                    session,
                    merchant_id=merchant_id,
                    livemode=False,
                    type="bench.tick",
                    data={"n": n},
                )
            committed[event.id] = time.time()
        arrivals = wait_arrivals(receiver, total, 60)
    db.dispose()
    delays = [
        (arrived - committed[event_id]) * 1000
        for _, event_id, arrived in arrivals
        if event_id in committed
    ]
    ids = [webhook_id for webhook_id, _, _ in arrivals]
    return {
        "events": total,
        "delivered": len(set(ids)),
        "duplicates": len(ids) - len(set(ids)),
        "p50_ms": round(percentile(delays, 0.50), 1),
        "p99_ms": round(percentile(delays, 0.99), 1),
        "max_ms": round(max(delays), 1),
    }


def throughput_run(url: str, receiver: str, events_count: int, endpoints: int) -> dict[str, Any]:
    from quittance.db.uow import Database
    from quittance.event import service as events

    merchant_id = merchant_with_endpoints(url, f"{receiver}/hook", endpoints)
    fetch(f"{receiver}/reset")
    db = Database(url, pool_size=2)
    for start in range(0, events_count, 200):
        with db.write() as session:
            for n in range(start, min(start + 200, events_count)):
                events.record(
                    session,
                    merchant_id=merchant_id,
                    livemode=False,
                    type="bench.bulk",
                    data={"n": n},
                )
    db.dispose()
    expected = events_count * endpoints
    with child(WORKER, worker_env(url)):
        arrivals = wait_arrivals(receiver, expected, 600)
    times = sorted(arrived for _, _, arrived in arrivals)
    elapsed = times[-1] - times[0] if len(times) > 1 else float("nan")
    return {
        "endpoints": endpoints,
        "deliveries": len(arrivals),
        "seconds": round(elapsed, 2),
        "deliveries_per_s": round(len(arrivals) / elapsed) if elapsed else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--rate", type=float, default=50, help="events per second")
    parser.add_argument("--duration", type=float, default=10, help="seconds of steady load")
    parser.add_argument(
        "--polls",
        type=float,
        nargs="+",
        default=[0.2, 0.05],
        help="QUITTANCE_WEBHOOK_POLL_INTERVAL values to measure latency with (default 0.2)",
    )
    parser.add_argument("--events", type=int, default=3000, help="events for the throughput run")
    parser.add_argument("--endpoints", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("QUITTANCE_BENCH_POSTGRES_URL", DEFAULT_PG_ADMIN_URL),
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.receiver:
        run_receiver(args.receiver)
        return
    sys.path.insert(0, str(ROOT / "src"))
    results: list[dict[str, Any]] = []
    port = free_port()
    receiver = f"http://127.0.0.1:{port}"
    with child([sys.executable, __file__, "--receiver", str(port)]):
        wait_port(port)
        for kind in args.databases:
            with database(kind, args.postgres_url) as url:
                if url is None:
                    continue
                for poll in args.polls:
                    log(f"{kind}: latency at {args.rate}/s, webhook poll interval {poll} s")
                    row = latency_run(url, receiver, args.rate, args.duration, poll)
                    results.append(
                        {
                            "database": kind,
                            "run": "latency",
                            "rate": args.rate,
                            "poll_interval": poll,
                            **row,
                        }
                    )
                for endpoints in args.endpoints:
                    log(f"{kind}: throughput, {args.events} events x {endpoints} endpoints")
                    row = throughput_run(url, receiver, args.events, endpoints)
                    results.append({"database": kind, "run": "throughput", **row})
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for row in results:
        if row["run"] == "latency":
            print(
                f"{row['database']:<10} latency    {row['rate']:>5.0f} ev/s  poll "
                f"{row['poll_interval']:>4} s  p50 {row['p50_ms']:>7.1f} ms  p99 "
                f"{row['p99_ms']:>7.1f} ms  max {row['max_ms']:>7.1f} ms  delivered "
                f"{row['delivered']}/{row['events']}  duplicates {row['duplicates']}"
            )
        else:
            print(
                f"{row['database']:<10} throughput {row['endpoints']:>2} endpoint(s)  "
                f"{row['deliveries']} deliveries in {row['seconds']} s  = "
                f"{row['deliveries_per_s']} deliveries/s"
            )


if __name__ == "__main__":
    main()
