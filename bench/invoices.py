"""Benchmark: invoice throughput and latency against a bare insert-one-row baseline.

For each database (SQLite in a temporary directory; PostgreSQL in a fresh database
`quittance_bench_<random>`, dropped at the end) one run:

1. migrates the database and creates a merchant and a test key with the `quittance` CLI;
2. starts the bare baseline (`bench/baseline.py`) on a free loopback port and drives it with
   the `create` scenario from a separate load-generator process (`bench/loadgen.py`);
3. starts the real server (`quittance serve`, production settings, the sandbox provider's
   state in the run's work directory) and drives each selected scenario the same way;
4. prints, per scenario, its units (requests for `create`, create-then-pay lifecycles for
   `lifecycle`) and units per second, p50 and p99 latency per unit, errors, requests per
   second, and the ratio of its units per second to the baseline's requests per second,
   against the scenario's target (create: at least 50%; lifecycle: at least 15%).

    .venv/bin/python bench/invoices.py --duration 10 --rounds 3
    .venv/bin/python bench/invoices.py --databases sqlite --scenarios create,lifecycle --json

Every child process is started in its own process group and killed on exit, error or signal;
every wait has a timeout, so the run always ends by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenarios import SCENARIOS

BENCH_DIR = Path(__file__).resolve().parent
BASELINE_SCENARIO = "create"  # what the bare baseline is driven with
DEFAULT_SCENARIOS = "create,create_idempotent,lifecycle"
DATABASES = ("sqlite", "postgresql")
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
BUSY_WARNING = 0.15  # share of CPU busy just before a run (the idle server uses next to none)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """The benchmark could not run (a server did not start, a load run failed)."""


# --- child processes ------------------------------------------------------------------------

_CHILDREN: list[subprocess.Popen[bytes]] = []
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: Linux sends it SIGTERM if the benchmark dies, even by
    SIGKILL, so no server outlives a run."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(cmd: Sequence[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as output:
        process = subprocess.Popen(
            list(cmd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so we can kill all of it
            preexec_fn=_die_with_parent,
        )
    _CHILDREN.append(process)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL it if it has not gone in time."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    if process in _CHILDREN:
        _CHILDREN.remove(process)


def stop_all_children() -> None:
    for process in list(_CHILDREN):
        _stop(process)


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`, which stops the children


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def serving(
    name: str, cmd: Sequence[str], env: dict[str, str], port: int, ready_path: str, workdir: Path
) -> Iterator[str]:
    """Start a server, wait until `GET ready_path` answers 200, yield its base URL, stop it."""
    log_path = workdir / f"{name}.log"
    process = _spawn(cmd, env, log_path)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if process.poll() is not None:
                raise BenchError(f"{name} exited with {process.returncode}:\n{_tail(log_path)}")
            try:
                with urllib.request.urlopen(base_url + ready_path, timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"{name} not ready after {READY_TIMEOUT:.0f}s:\n{_tail(log_path)}")
            time.sleep(0.1)
        yield base_url
    finally:
        _stop(process)


# --- databases ------------------------------------------------------------------------------


@dataclass
class Database:
    kind: str
    url: str
    version: str


def _pg_conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextlib.contextmanager
def sqlite_database(workdir: Path) -> Iterator[Database]:
    path = workdir / "quittance.db"
    yield Database("sqlite", f"sqlite:///{path}", f"SQLite {sqlite3.sqlite_version}")


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[Database | None]:
    """Create `quittance_bench_<random>`, yield it, drop it (None if PostgreSQL is down)."""
    import psycopg

    try:
        admin = psycopg.connect(_pg_conninfo(admin_url), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        log(f"PostgreSQL is not reachable at {admin_url}; skipping it ({exc})".strip())
        yield None
        return
    name = f"quittance_bench_{secrets.token_hex(6)}"
    with admin:
        row = admin.execute("SHOW server_version").fetchone()
        version = f"PostgreSQL {row[0] if row else '?'}"
        admin.execute(f'CREATE DATABASE "{name}"')
        log(f"created database {name}")
        try:
            base, _, _ = _pg_conninfo(admin_url).rpartition("/")
            yield Database("postgresql", f"{base}/{name}", version)
        finally:
            stop_all_children()  # nothing may still hold a connection to it
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            log(f"dropped database {name}")


# --- the runs -------------------------------------------------------------------------------


@dataclass
class Options:
    duration: float
    warmup: float
    concurrency: int
    max_requests: int
    scenarios: list[str]
    embedded_worker: bool
    rounds: int
    wait_idle: float


@dataclass
class Result:
    target: str  # "baseline" or "quittance"
    database: str
    scenario: str
    load: dict[str, Any]
    ratio: float | None = None

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return float(self.load["rps"])

    @property
    def per_s(self) -> float:
        """Completed units (iterations) per second."""
        return float(self.load["iterations_per_s"])

    @property
    def unit(self) -> str:
        return "request" if self.target == "baseline" else SCENARIOS[self.scenario].unit

    @property
    def goal(self) -> float | None:
        return None if self.target == "baseline" else SCENARIOS[self.scenario].target

    @property
    def met(self) -> bool | None:
        if self.ratio is None or self.goal is None:
            return None
        return self.ratio >= self.goal


def quittance_command() -> list[str]:
    script = Path(sys.executable).parent / "quittance"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from quittance.cli import main; main()"]


def cli(args: Sequence[str], env: dict[str, str]) -> str:
    """Run a `quittance` CLI command; return its last stdout line."""
    try:
        done = subprocess.run(
            [*quittance_command(), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"quittance {' '.join(args)} timed out") from exc
    if done.returncode != 0:
        raise BenchError(f"quittance {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    lines = done.stdout.strip().splitlines()
    return lines[-1].strip() if lines else ""


def drive(base_url: str, scenario: str, api_key: str, options: Options) -> dict[str, Any]:
    """Run the load generator in its own process against `base_url`."""
    port = base_url.rsplit(":", 1)[1]
    cmd = [
        sys.executable,
        str(BENCH_DIR / "loadgen.py"),
        "--port", port,
        "--scenario", scenario,
        "--concurrency", str(options.concurrency),
        "--duration", str(options.duration),
        "--warmup", str(options.warmup),
        "--max-requests", str(options.max_requests),
    ]  # fmt: skip
    env = {**os.environ, "BENCH_API_KEY": api_key}
    busy = cpu_busy()
    deadline = time.monotonic() + options.wait_idle
    while busy is not None and busy > BUSY_WARNING and time.monotonic() < deadline:
        log(f"the machine is {busy:.0%} busy; waiting for it to settle")
        time.sleep(2)
        busy = cpu_busy()
    if busy is not None and busy > BUSY_WARNING:
        log(f"warning: the machine was {busy:.0%} busy before this run; figures will be noisy")
    timeout = options.duration + options.warmup + 120
    process = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    _CHILDREN.append(process)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"the load generator did not finish within {timeout:.0f}s") from exc
    finally:
        _stop(process)
    if process.returncode != 0:
        raise BenchError(f"the load generator failed:\n{err.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = json.loads(out)
    result["cpu_busy_before"] = busy
    return result


def bench_database(database: Database, options: Options, workdir: Path) -> list[Result]:
    env = {
        **os.environ,
        "QUITTANCE_DATABASE_URL": database.url,
        "QUITTANCE_LOG_LEVEL": "WARNING",
        # Measured as deployed: production settings, with a secret of its own.
        "QUITTANCE_ENV": "production",
        "QUITTANCE_SECRET_KEY": secrets.token_urlsafe(32),
        "QUITTANCE_EMBEDDED_WORKER": "true" if options.embedded_worker else "false",
        # The sandbox provider (test keys, any environment) keeps its own SQLite state here.
        "QUITTANCE_SANDBOX_PATH": str(workdir / f"sandbox-{database.kind}.db"),
        "PYTHONUNBUFFERED": "1",
    }
    log(f"{database.kind}: migrating, creating a merchant and a test key")
    cli(["migrate"], env)
    merchant_id = cli(["merchant", "create", "--name", "Bench Shop"], env)
    api_key = cli(["key", "create", "--merchant", merchant_id, "--mode", "test"], env)
    if not merchant_id.startswith("mer_") or not api_key.startswith("qk_test_"):
        raise BenchError(f"unexpected CLI output: merchant {merchant_id!r}, key {api_key!r}")

    # One server at a time: an idle server still holds the SQLite file (and its worker writes
    # now and then), which would make the other one wait in SQLite's busy handler.
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for round_no in range(1, options.rounds + 1):
        tag = f" (round {round_no}/{options.rounds})" if options.rounds > 1 else ""
        port = free_port()
        baseline_cmd = [
            sys.executable, str(BENCH_DIR / "baseline.py"),
            "--database-url", database.url, "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
        with serving(f"baseline-{database.kind}", baseline_cmd, env, port, "/", workdir) as url:
            log(f"{database.kind}: baseline, scenario {BASELINE_SCENARIO}{tag}")
            load = drive(url, BASELINE_SCENARIO, api_key, options)
            runs.setdefault(("baseline", BASELINE_SCENARIO), []).append(load)
        port = free_port()
        server_cmd = [*quittance_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
        env["QUITTANCE_BASE_URL"] = f"http://127.0.0.1:{port}"
        with serving(
            f"quittance-{database.kind}", server_cmd, env, port, "/healthz", workdir
        ) as url:
            for name in options.scenarios:
                log(f"{database.kind}: quittance, scenario {name}{tag}")
                load = drive(url, name, api_key, options)
                load["ledger_transactions"] = ledger_written(
                    database.url, merchant_id, load["measured_from"], load["measured_to"]
                )
                load["ledger_tx_per_s"] = load["ledger_transactions"] / load["duration_s"]
                runs.setdefault(("quittance", name), []).append(load)

    results = [
        Result(target, database.kind, name, median_run(loads))
        for (target, name), loads in runs.items()
    ]
    baseline_rps = next((r.rps for r in results if r.target == "baseline"), None)
    for result in results:
        if result.target == "quittance" and baseline_rps:
            result.ratio = result.per_s / baseline_rps
    return results


def ledger_written(url: str, merchant_id: str, start: float, end: float) -> int:
    """Count the merchant's ledger transactions written between two wall-clock instants."""
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from quittance.db.engine import build_engine
    from quittance.models import LedgerTransaction

    engine = build_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            count = connection.scalar(
                select(func.count()).where(
                    LedgerTransaction.merchant_id == merchant_id,
                    LedgerTransaction.created_at >= datetime.fromtimestamp(start, UTC),
                    LedgerTransaction.created_at < datetime.fromtimestamp(end, UTC),
                )
            )
    finally:
        engine.dispose()
    return int(count or 0)


def median_run(loads: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median units per second (the lower median for an even count)."""
    ordered = sorted(loads, key=lambda load: float(load["iterations_per_s"]))
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["rounds_per_s"] = [load["iterations_per_s"] for load in loads]
    chosen["rounds"] = [
        {
            "per_s": load["iterations_per_s"],
            "rps": load["rps"],
            "iterations": load["iterations"],
            "requests": load["requests"],
            "errors": load["errors"],
            "error_sample": load["error_sample"],
            "p50_ms": load["iteration_latency"]["p50_ms"],
            "p99_ms": load["iteration_latency"]["p99_ms"],
            "cpu_busy_before": load.get("cpu_busy_before"),
            "ledger_tx_per_s": load.get("ledger_tx_per_s"),
        }
        for load in loads
    ]
    return chosen


# --- output ---------------------------------------------------------------------------------


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def _target(result: Result) -> str:
    return "" if result.goal is None else f"≥{result.goal:.0%}"


def _verdict(result: Result) -> str:
    return {None: "", True: "met", False: "MISSED"}[result.met]


def table(results: list[Result]) -> str:
    header = ["target", "database", "scenario", "unit", "units", "units/s", "p50 ms", "p99 ms",
              "errors", "requests/s", "ledger tx/s", "vs baseline", "goal", "verdict"]  # fmt: skip
    rows = [header]
    for r in results:
        latency = r.load["iteration_latency"]
        rows.append(
            [
                r.target,
                r.database,
                r.scenario,
                r.unit,
                f"{r.load['iterations']:,}",
                _fmt(r.per_s),
                _fmt(latency["p50_ms"], 2),
                _fmt(latency["p99_ms"], 2),
                str(r.load["errors"]),
                _fmt(r.rps),
                "" if r.load.get("ledger_tx_per_s") is None else _fmt(r.load["ledger_tx_per_s"]),
                "" if r.ratio is None else f"{r.ratio:.1%}",
                _target(r),
                _verdict(r),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    numeric = {4, 5, 6, 7, 8, 9, 10, 11}
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if index == 0:
            lines.append(
                "|"
                + "|".join(
                    ("-" * (w + 1) + ":") if i in numeric else ("-" * (w + 2))
                    for i, w in enumerate(widths)
                )
                + "|"
            )
    return "\n".join(lines)


def cpu_busy(seconds: float = 1.0) -> float | None:
    """The share of CPU time the whole machine spent busy over `seconds` (Linux only).

    Sampled before each load run: the benchmark needs an otherwise idle machine, and this
    shows when it did not have one.
    """

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    try:
        total_a, idle_a = sample()
        time.sleep(seconds)
        total_b, idle_b = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total_b - total_a
    return 1 - (idle_b - idle_a) / total if total > 0 else None


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark invoice scenarios against a bare insert-one-row baseline."
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent connections")
    parser.add_argument(
        "--max-requests", type=int, default=500_000, help="bound on iterations per phase"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate baseline and server runs this many times; report the median run",
    )
    parser.add_argument(
        "--databases", default=",".join(DATABASES), help="comma-separated: sqlite,postgresql"
    )
    parser.add_argument(
        "--scenarios",
        default=DEFAULT_SCENARIOS,
        help=f"comma-separated, from: {', '.join(sorted(SCENARIOS))}",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("QUITTANCE_BENCH_POSTGRES_URL", DEFAULT_PG_ADMIN_URL),
        help="an admin URL used to create and drop the benchmark database",
    )
    parser.add_argument(
        "--no-embedded-worker",
        action="store_true",
        help="run `quittance serve` without its in-process worker",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each run, wait up to this long for other load on the machine to stop",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON document here")
    parser.add_argument(
        "--check", action="store_true", help="exit 3 when a scenario misses its target"
    )
    args = parser.parse_args(argv)
    args.database_list = [d.strip() for d in args.databases.split(",") if d.strip()]
    for name in args.database_list:
        if name not in DATABASES:
            parser.error(f"unknown database {name!r}; choose from {', '.join(DATABASES)}")
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for name in args.scenario_list:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; choose from {', '.join(sorted(SCENARIOS))}")
    if min(args.duration, args.concurrency, args.max_requests, args.rounds) <= 0:
        parser.error("--duration, --concurrency, --max-requests and --rounds must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = Options(
        duration=args.duration,
        warmup=args.warmup,
        concurrency=args.concurrency,
        max_requests=args.max_requests,
        scenarios=args.scenario_list,
        embedded_worker=not args.no_embedded_worker,
        rounds=args.rounds,
        wait_idle=args.wait_idle,
    )
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="quittance-bench-"))
    results: list[Result] = []
    versions: dict[str, str] = {}
    started = time.time()
    try:
        for kind in args.database_list:
            with contextlib.ExitStack() as stack:
                database: Database | None
                if kind == "sqlite":
                    database = stack.enter_context(sqlite_database(workdir))
                else:
                    database = stack.enter_context(postgres_database(args.postgres_url))
                if database is None:
                    continue
                versions[kind] = database.version
                results.extend(bench_database(database, options, workdir))
    except BenchError as exc:
        log(f"failed: {exc}")
        return 1
    finally:
        stop_all_children()
        if args.keep:
            log(f"logs and SQLite files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    missed = [r for r in results if r.met is False]
    if args.json or args.json_out:
        document = {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "machine": machine(),
            "databases": versions,
            "options": vars(options),
            "targets": {name: SCENARIOS[name].target for name in options.scenarios},
            "results": [
                {
                    "target": r.target,
                    "database": r.database,
                    "scenario": r.scenario,
                    "ratio": r.ratio,
                    "target_ratio": r.goal,
                    "target_met": r.met,
                    **r.load,
                }
                for r in results
            ],
        }
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(document, indent=2) + "\n")
        if args.json:
            print(json.dumps(document, indent=2))
    if not args.json:
        info = machine()
        print(
            f"{info['cpus']} CPUs ({info['cpu']}), Python {info['python']}, "
            + ", ".join(versions.values())
        )
        print(
            f"concurrency {options.concurrency}, {options.duration:g}s measured after "
            f"{options.warmup:g}s warm-up; {options.rounds} round(s), median round shown; "
            "vs baseline = units/s of the scenario / requests/s of the bare baseline"
        )
        print()
        print(table(results))
        print()
        baselines = {r.database: r.rps for r in results if r.target == "baseline"}
        for r in results:
            if r.ratio is not None and r.goal is not None:
                print(
                    f"{r.database}: {r.scenario}: {_fmt(r.per_s)} {r.unit}s/s = {r.ratio:.1%} "
                    f"of the bare baseline's {_fmt(baselines[r.database])} requests/s "
                    f"(target ≥{r.goal:.0%}): {_verdict(r)}"
                )
        if options.rounds > 1:
            print()
            for r in results:
                rounds = ", ".join(_fmt(value) for value in r.load["rounds_per_s"])
                print(f"{r.target}/{r.database}/{r.scenario}: {r.unit}s/s per round {rounds}")
        for r in results:
            for number, run in enumerate(r.load["rounds"], start=1):
                if run["errors"]:
                    print(f"{r.target}/{r.database}/{r.scenario} round {number}: "
                          f"{run['errors']} errors; first: {run['error_sample']}")  # fmt: skip
    if args.check and missed:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
