"""Benchmark: ledger transactions per second against the bare insert-one-row baseline.

The HTTP benchmark (`bench/invoices.py --scenarios refund,lifecycle`) measures ledger
transactions as the API writes them, one per refund or capture, behind everything else a
request does. This one measures the ledger's own write path, in-process, on a fresh database
of each kind (SQLite in a temporary directory, PostgreSQL in `quittance_bench_<random>`):

- **baseline**: `bench/baseline.py`'s store inserts one row per transaction (`BEGIN`, one
  INSERT, `COMMIT`), with the same driver and settings;
- **ledger**: `quittance.ledger.service.post` writes one capture transaction with commission
  (a `ledger_transactions` row and three entries, checked balanced in code) per unit of work
  (`Database.write()`: one commit each).

Each runs for `--duration` seconds with `--threads` threads, then the script prints
transactions per second and the ratio.

    .venv/bin/python bench/ledger.py --duration 5 --threads 4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from baseline import new_row_id, open_store
from invoices import Database, postgres_database, sqlite_database

from quittance.db.migrate import upgrade
from quittance.db.uow import Database as Uow
from quittance.domain.fees import Charge
from quittance.domain.ledger import Book, Refs, capture
from quittance.ledger.service import post
from quittance.merchant.service import create_merchant


def _drive(work: Callable[[], None], duration: float, threads: int) -> float:
    """Run `work` in a loop on `threads` threads for `duration` seconds; return units/s."""
    done = [0] * threads
    deadline = time.perf_counter() + duration

    def loop(index: int) -> None:
        while time.perf_counter() < deadline:
            work()
            done[index] += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done) / (time.perf_counter() - started)


def bench(database: Database, duration: float, threads: int) -> tuple[float, float]:
    upgrade(database.url)
    store = open_store(database.url)
    try:
        baseline = _drive(
            lambda: store.insert((new_row_id(), "mer_baseline", 1999, "EUR", datetime.now(UTC))),
            duration,
            threads,
        )
    finally:
        store.close()
    uow = Uow(database.url)
    with uow.write() as session:
        merchant_id = create_merchant(session, "Ledger Bench").id
    book = Book(merchant_id, False)
    charge = Charge(1999, 88, 2087, 1999, "EUR", include_commission=True)

    def one() -> None:
        with uow.write() as session:
            post(session, capture(book, charge, "sandbox", Refs()))

    try:
        ledger = _drive(one, duration, threads)
    finally:
        uow.engine.dispose()
    return baseline, ledger


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="quittance-ledger-bench-") as tmp:
        for kind in args.databases.split(","):
            factory = (
                sqlite_database(Path(tmp))
                if kind == "sqlite"
                else postgres_database(args.postgres_url)
            )
            with factory as database:
                if database is None:
                    continue
                baseline, ledger = bench(database, args.duration, args.threads)
                rows.append((database.version, baseline, ledger))
    print(f"{args.threads} threads, {args.duration:g} s each; one commit per transaction")
    print("| database | baseline rows/s | ledger transactions/s | vs baseline |")
    print("|---|---:|---:|---:|")
    for version, baseline, ledger in rows:
        print(f"| {version} | {baseline:,.1f} | {ledger:,.1f} | {ledger / baseline:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
