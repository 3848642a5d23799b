"""A lean HTTP/1.1 keep-alive load generator on raw asyncio streams.

Run as its own process (so it never shares the server's GIL), it opens `--concurrency`
connections, runs a warm-up phase whose figures are thrown away, then drives the scenario for
`--duration` seconds (or until `--max-requests` iterations have started) and prints one JSON
document with the counts and latency percentiles, per request and per iteration (one unit of
the scenario: a request for `create`, a create-then-pay lifecycle for `lifecycle`). Every
connection runs one iteration at a time (a closed loop), so the number of requests in flight is
the concurrency.

    python bench/loadgen.py --port 8000 --scenario create --api-key qk_test_...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scenarios import (
    SCENARIOS,
    Context,
    Response,
    Scenario,
    ScenarioFailure,
    UnexpectedStatus,
)


class TransportError(Exception):
    """The connection failed or the answer was not valid HTTP/1.1."""


@dataclass
class Recorder:
    """Latencies (seconds) per step label and per completed iteration, plus error counts.

    An iteration ends at its first error, so `errors` is also the number of failed iterations.
    """

    latencies: dict[str, list[float]] = field(default_factory=dict)
    iteration_latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    error_sample: str | None = None
    iterations: int = 0

    def record(self, label: str, seconds: float, status: int, ok: bool) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if ok:
            self.latencies.setdefault(label, []).append(seconds)
        else:
            self.fail(f"{label}: HTTP {status}")

    def fail(self, message: str) -> None:
        self.errors += 1
        if self.error_sample is None:
            self.error_sample = message


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects after a transport error."""

    def __init__(self, host: str, port: int, recorder: Recorder) -> None:
        self.host = host
        self.port = port
        self.recorder = recorder
        self._host_header = f"Host: {host}:{port}\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        label: str,
        expect: int,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> Response:
        lines = [f"{method} {path} HTTP/1.1\r\n", self._host_header]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers)
        payload = body or b""
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(payload)}\r\n")
        lines.append("\r\n")
        data = "".join(lines).encode("latin-1") + payload
        started = time.perf_counter()
        try:
            if self._writer is None:
                await self.connect()
            assert self._reader is not None and self._writer is not None
            self._writer.write(data)
            response = await _read_response(self._reader)
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError) as exc:  # fmt: skip
            self.close()
            self.recorder.fail(f"{label}: {type(exc).__name__}: {exc}")
            raise TransportError(str(exc)) from exc
        elapsed = time.perf_counter() - started
        ok = response.status == expect
        self.recorder.record(label, elapsed, response.status, ok)
        if response.headers.get("connection", "").lower() == "close":
            self.close()
        if not ok:
            raise UnexpectedStatus(label, expect, response)
        return response


async def _read_response(reader: asyncio.StreamReader) -> Response:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError(f"bad status line {status_line!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks.append(chunk[:-2])
        return Response(status, headers, b"".join(chunks))
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return Response(status, headers, body)


class Counter:
    """Numbers iterations uniquely across phases, and bounds how many one phase starts."""

    def __init__(self) -> None:
        self.next = 0
        self.limit = 0

    def allow(self, count: int) -> None:
        self.limit = self.next + count

    def take(self) -> int | None:
        if self.next >= self.limit:
            return None
        self.next += 1
        return self.next - 1


async def _phase(
    connections: list[Connection],
    scenario: Scenario,
    ctx: Context,
    counter: Counter,
    seconds: float,
    recorder: Recorder,
) -> float:
    """Run the scenario on every connection until `seconds` pass; return the elapsed time."""
    started = time.perf_counter()
    deadline = started + seconds

    async def loop(connection: Connection) -> None:
        connection.recorder = recorder
        while time.perf_counter() < deadline:
            n = counter.take()
            if n is None:
                return
            iteration_started = time.perf_counter()
            try:
                await scenario.run(connection, ctx, n)
            except UnexpectedStatus:
                continue
            except ScenarioFailure as exc:
                recorder.fail(str(exc))
                continue
            except TransportError:
                await asyncio.sleep(0.01)  # do not spin while the server is unreachable
                continue
            recorder.iteration_latencies.append(time.perf_counter() - iteration_started)
            recorder.iterations += 1

    await asyncio.gather(*(loop(connection) for connection in connections))
    return time.perf_counter() - started


def percentile(ordered: list[float], p: float) -> float:
    """The nearest-rank percentile of an ascending list."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    ms = 1000.0
    return {
        "count": len(ordered),
        "mean_ms": (sum(ordered) / len(ordered) * ms) if ordered else math.nan,
        "p50_ms": percentile(ordered, 50) * ms,
        "p90_ms": percentile(ordered, 90) * ms,
        "p99_ms": percentile(ordered, 99) * ms,
        "max_ms": (ordered[-1] * ms) if ordered else math.nan,
    }


async def run(
    host: str,
    port: int,
    scenario: Scenario,
    ctx: Context,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    max_requests: int,
) -> dict[str, Any]:
    counter = Counter()
    warm = Recorder()
    connections = [Connection(host, port, warm) for _ in range(concurrency)]
    await asyncio.gather(*(connection.connect() for connection in connections))
    try:
        if warmup > 0:
            counter.allow(max_requests)
            await _phase(connections, scenario, ctx, counter, warmup, warm)
        measured = Recorder()
        counter.allow(max_requests)
        measured_from = time.time()
        elapsed = await _phase(connections, scenario, ctx, counter, duration, measured)
        measured_to = time.time()
    finally:
        for connection in connections:
            connection.close()
    everything = [value for values in measured.latencies.values() for value in values]
    ok = len(everything)
    return {
        "scenario": scenario.name,
        "unit": scenario.unit,
        "concurrency": concurrency,
        "duration_s": elapsed,
        # Wall-clock bounds of the measured phase (epoch seconds), to count what the server
        # wrote meanwhile (ledger transactions).
        "measured_from": measured_from,
        "measured_to": measured_to,
        "iterations": measured.iterations,
        "iterations_per_s": measured.iterations / elapsed if elapsed > 0 else 0.0,
        "iteration_latency": summarize(measured.iteration_latencies),
        "requests": ok + measured.errors,
        "ok": ok,
        "errors": measured.errors,
        "error_sample": measured.error_sample,
        "statuses": {str(k): v for k, v in sorted(measured.statuses.items())},
        "rps": ok / elapsed if elapsed > 0 else 0.0,
        "latency": summarize(everything),
        "steps": {label: summarize(values) for label, values in measured.latencies.items()},
        "warmup": {"requests": sum(warm.statuses.values()), "errors": warm.errors},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="create")
    parser.add_argument(
        "--api-key", default=os.environ.get("BENCH_API_KEY", ""), help="or BENCH_API_KEY"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    ctx = Context(api_key=args.api_key, run_id=secrets.token_hex(4))
    coroutine = run(
        args.host,
        args.port,
        SCENARIOS[args.scenario],
        ctx,
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        max_requests=args.max_requests,
    )
    try:
        import uvloop  # the event loop uvicorn picks too; optional
    except ImportError:
        result = asyncio.run(coroutine)
    else:
        result = uvloop.run(coroutine)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
