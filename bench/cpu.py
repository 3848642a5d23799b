"""Benchmark: the CPU a scenario's unit costs, per process, under load.

Ratios to the bare baseline move with the machine (its speed drifts by a third within minutes
on a shared host); the CPU each unit costs moves much less, and it says where a unit's time
goes. For each database this starts `quittance serve` as `invoices.py` does, drives one
scenario from `bench/loadgen.py`, and prints:

- units per second, and how busy the machine, the server, PostgreSQL and the load generator
  were (share of one core);
- the CPU per unit (ms) of the server process, of every PostgreSQL process together, and of
  the load generator.

Only the measured part of the load is counted (after the load generator's warm-up). With
`--rounds N` the rounds alternate between the databases, and each is printed. On PostgreSQL the
scenario first runs for `--prime` seconds and the database is analysed, as a running one is
(see `prime`).

    .venv/bin/python bench/cpu.py --scenario lifecycle --duration 8 --rounds 2
    .venv/bin/python bench/cpu.py --databases postgresql --scenario create --env X=1
    .venv/bin/python bench/cpu.py --baseline --scenario create
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import invoices
from invoices import BENCH_DIR, Database, cli, free_port, quittance_command, serving

TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int | str) -> float:
    """User plus system CPU seconds of a process (all its threads), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def _postgres_cpu() -> float:
    """CPU seconds of every process named `postgres` (the server and its backends)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres":
                total += _process_cpu(pid)
    return total


def _machine() -> tuple[float, float]:
    """(all, idle) CPU seconds of the machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values) / TICKS, (values[3] + values[4]) / TICKS


def _snapshot(server: int, loadgen: int) -> dict[str, float]:
    machine, idle = _machine()
    return {
        "wall": time.monotonic(),
        "server": _process_cpu(server),
        "postgres": _postgres_cpu(),
        "loadgen": _process_cpu(loadgen),
        "machine": machine,
        "idle": idle,
    }


def _loadgen(url: str, scenario: str, options: argparse.Namespace, duration: float) -> list[str]:
    return [
        sys.executable, str(BENCH_DIR / "loadgen.py"), "--port", url.rsplit(":", 1)[1],
        "--scenario", scenario, "--concurrency", str(options.concurrency),
        "--duration", str(duration), "--warmup", str(options.warmup),
        "--max-requests", "100000000",
    ]  # fmt: skip


def prime(
    database: Database, url: str, scenario: str, api_key: str, options: argparse.Namespace
) -> None:
    """Give a fresh PostgreSQL database what a running one has: rows, then statistics.

    Until autovacuum first analyses a new table (up to a minute), the planner knows nothing of
    its rows and may pick any index for a lookup by key; a prepared statement keeps that plan
    until the statistics come. So the scenario runs for `--prime` seconds, then `ANALYZE`."""
    import psycopg

    env = {**os.environ, "BENCH_API_KEY": api_key}
    subprocess.run(
        _loadgen(url, scenario, options, options.prime), env=env, capture_output=True, check=True
    )
    with psycopg.connect(invoices._pg_conninfo(database.url), autocommit=True) as connection:
        connection.execute("ANALYZE")


def measure(url: str, scenario: str, api_key: str, options: argparse.Namespace) -> dict[str, Any]:
    """Drive `scenario` against the server at `url`; the load and the CPU it cost."""
    server = _server_pid(url)
    cmd = _loadgen(url, scenario, options, options.duration)
    env = {**os.environ, "BENCH_API_KEY": api_key}
    loadgen = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    snapshots: list[dict[str, float]] = []

    def sample() -> None:  # at the start and near the end of the measured part
        time.sleep(options.warmup + 0.1)
        snapshots.append(_snapshot(server, loadgen.pid))
        time.sleep(max(options.duration - 0.3, 0.1))
        snapshots.append(_snapshot(server, loadgen.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = loadgen.communicate(timeout=options.warmup + options.duration + 120)
    finally:
        if loadgen.poll() is None:
            loadgen.kill()
    sampler.join(timeout=5)
    if loadgen.returncode != 0 or len(snapshots) != 2:
        raise invoices.BenchError(f"the load generator failed:\n{err.decode()[-2000:]}")
    load: dict[str, Any] = json.loads(out)
    before, after = snapshots
    wall = after["wall"] - before["wall"]
    units = float(load["iterations_per_s"]) * wall
    machine = after["machine"] - before["machine"]
    return {
        "units_per_s": load["iterations_per_s"],
        "errors": load.get("errors", 0),
        "busy": {
            "machine": 1 - (after["idle"] - before["idle"]) / machine if machine else 0.0,
            **{k: (after[k] - before[k]) / wall for k in ("server", "postgres", "loadgen")},
        },
        "cpu_ms_per_unit": {
            k: 1000 * (after[k] - before[k]) / units if units else 0.0
            for k in ("server", "postgres", "loadgen")
        },
    }


def _server_pid(url: str) -> int:
    """The pid of the process listening on `url`'s port (the server `serving` started)."""
    port = int(url.rsplit(":", 1)[1])
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(fields[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(pid)
    raise invoices.BenchError(f"no process listens on port {port}")


@contextlib.contextmanager
def _database(kind: str, options: argparse.Namespace, workdir: Path) -> Iterator[Database | None]:
    if kind == "sqlite":
        with invoices.sqlite_database(workdir) as database:
            yield database
    else:
        with invoices.postgres_database(options.postgres_url) as pg:
            yield pg


def run(kind: str, options: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    """The rounds of one database: a fresh database, one server, `--rounds` measurements."""
    with _database(kind, options, workdir) as database:
        if database is None:
            return []
        env = {
            **os.environ,
            "QUITTANCE_DATABASE_URL": database.url,
            "QUITTANCE_LOG_LEVEL": "WARNING",
            "QUITTANCE_ENV": "production",
            "QUITTANCE_SECRET_KEY": secrets.token_urlsafe(32),
            "QUITTANCE_SANDBOX_PATH": str(workdir / f"sandbox-{kind}.db"),
            **dict(pair.split("=", 1) for pair in options.env),
        }
        cli(["migrate"], env)
        merchant_id = cli(["merchant", "create", "--name", "CPU Shop"], env)
        api_key = cli(["key", "create", "--merchant", merchant_id, "--mode", "test"], env)
        port = free_port()
        env["QUITTANCE_BASE_URL"] = f"http://127.0.0.1:{port}"
        command = [*quittance_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
        ready = "/healthz"
        if options.baseline:  # the bare baseline, driven with create as `invoices.py` does
            command = [
                sys.executable, str(BENCH_DIR / "baseline.py"), "--database-url", database.url,
                "--host", "127.0.0.1", "--port", str(port),
            ]  # fmt: skip
            ready = "/"
        results = []
        with serving(f"cpu-{kind}", command, env, port, ready, workdir) as url:
            if kind == "postgresql" and options.prime > 0:
                prime(database, url, options.scenario, api_key, options)
            for _ in range(options.rounds):
                results.append(measure(url, options.scenario, api_key, options))
                _print(kind, options.scenario, results[-1])
        return results


def _print(kind: str, scenario: str, result: dict[str, Any]) -> None:
    busy, cpu = result["busy"], result["cpu_ms_per_unit"]
    print(
        f"{kind}: {scenario}: {result['units_per_s']:,.1f} units/s, {result['errors']} errors; "
        f"busy: machine {busy['machine']:.0%}, server {busy['server']:.0%}, "
        f"postgres {busy['postgres']:.0%}, loadgen {busy['loadgen']:.0%} of a core; "
        f"CPU per unit: server {cpu['server']:.2f} ms, postgres {cpu['postgres']:.2f} ms, "
        f"loadgen {cpu['loadgen']:.2f} ms",
        flush=True,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--scenario", default="lifecycle", choices=sorted(invoices.SCENARIOS))
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--prime", type=float, default=2.0,
        help="PostgreSQL: seconds of the scenario before ANALYZE and the rounds (0: none)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=1, help="measurements per database")
    parser.add_argument(
        "--baseline", action="store_true", help="measure the bare baseline (`baseline.py`)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("QUITTANCE_BENCH_POSTGRES_URL", invoices.DEFAULT_PG_ADMIN_URL),
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="set in the server's environment (repeatable)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if not Path("/proc/stat").exists():
        print("bench/cpu.py reads /proc: Linux only", file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="quittance-cpu-") as tmp:
            for kind in options.databases.split(","):
                run(kind, options, Path(tmp))
    except invoices.BenchError as exc:
        print(f"bench/cpu.py: {exc}", file=sys.stderr)
        return 1
    finally:
        invoices.stop_all_children()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
