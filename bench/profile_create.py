"""Where does a create-invoice request spend its time? A profiling harness (no HTTP).

It builds the real app in-process on a fresh database (SQLite in a temporary directory, or a
throw-away PostgreSQL database), creates a merchant and a test key, then calls the ASGI app
directly, one request after another, and reports:

- `--mode timing` (default): wall-clock time per request, end to end through the ASGI stack
  with FastAPI's real thread pool, then a breakdown of the same requests by step, measured by
  wrapping the functions on the path (no profiler overhead on the rest);
- `--mode cprofile`: runs FastAPI's thread-pool hops inline so that cProfile sees the whole
  request on one thread, and prints the top functions by own and cumulative time;
- `--what-if a,b,...`: measures the request as is, then after each proposed change in turn,
  applied by patching the running app (see WHAT_IFS; nothing in src/ changes); with
  `--mode cprofile`, profiles the request with all of them applied;
- `--mode orm-vs-core`: the cost of one INSERT of an invoice and of an event through the ORM
  unit of work, through an ORM bulk `insert()`, and through a Core `table.insert()`; then of
  one committed invoice-plus-event write through `db.write()` and the ORM, and through Core.

    .venv/bin/python bench/profile_create.py --database sqlite --requests 2000
    .venv/bin/python bench/profile_create.py --database postgresql --mode cprofile
    .venv/bin/python bench/profile_create.py --what-if async-deps,options-cache
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import io
import logging
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from invoices import DEFAULT_PG_ADMIN_URL, postgres_database

BODY = b'{"amount": 1999, "currency": "EUR", "reference": "order-1"}'


@contextlib.contextmanager
def fresh_database(kind: str, admin_url: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="quittance-profile-") as workdir:
            yield f"sqlite:///{Path(workdir) / 'quittance.db'}"
        return
    with postgres_database(admin_url) as database:
        if database is None:
            raise SystemExit("PostgreSQL is not reachable")
        yield database.url


def build(url: str) -> tuple[Any, str]:
    """Migrate, create a merchant and a key, and build the app as `quittance serve` does."""
    os.environ["QUITTANCE_DATABASE_URL"] = url
    os.environ["QUITTANCE_LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("QUITTANCE_ENV", "test")
    from quittance.app import create_app
    from quittance.config import Settings
    from quittance.db.migrate import upgrade
    from quittance.db.uow import Database
    from quittance.logging_setup import configure
    from quittance.merchant.service import create_api_key, create_merchant

    settings = Settings()
    configure(settings.log_level)
    upgrade(url)
    db = Database(url)
    with db.write() as session:
        merchant = create_merchant(session, "Profile Shop")
        _, key = create_api_key(session, merchant.id, livemode=False)
    return create_app(settings, db), key


async def call(app: Any, key: str, n: int, idempotent: bool) -> int:
    """One POST /v1/invoices straight into the ASGI app; return the status."""
    headers = [
        (b"host", b"127.0.0.1"),
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ]
    if idempotent:
        headers.append((b"idempotency-key", f"profile-{n}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/invoices",
        "raw_path": b"/v1/invoices",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def drive(app: Any, key: str, requests: int, idempotent: bool, offset: int) -> float:
    started = time.perf_counter()
    for n in range(requests):
        status = await call(app, key, offset + n, idempotent)
        if status != 201:
            raise SystemExit(f"request {n} answered {status}")
    return time.perf_counter() - started


# --- timing breakdown -----------------------------------------------------------------------

Timings = dict[str, list[tuple[float, float]]]  # label -> (wall, CPU of that thread) per call


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.thread_time()


def _add(timings: Timings, label: str, started: tuple[float, float]) -> None:
    wall, cpu = _clock()
    timings[label].append((wall - started[0], cpu - started[1]))


def _timed(timings: Timings, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = _clock()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(timings, label, started)

    return wrapper


def _timed_async(timings: Timings, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = _clock()
        try:
            return await fn(*args, **kwargs)
        finally:
            _add(timings, label, started)

    return wrapper


def instrument(timings: Timings) -> None:
    """Wrap the functions on the create path with timers (module attributes are patched)."""
    import fastapi.dependencies.utils as fastapi_deps
    import fastapi.routing as fastapi_routing
    import starlette.concurrency
    from sqlalchemy.orm import Session

    from quittance.auth import dependencies as auth
    from quittance.db import uow
    from quittance.event import service as events
    from quittance.idempotency import service as idem
    from quittance.invoice import endpoints, service
    from quittance.invoice import schemas as invoice_schemas
    from quittance.merchant import service as merchant_service

    original_hop = starlette.concurrency.run_in_threadpool

    async def hop(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Split a thread-pool hop into its way there, the work, and its way back."""
        marks: dict[str, float] = {}

        def inner() -> Any:
            marks["start"] = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                marks["end"] = time.perf_counter()

        called = time.perf_counter()
        try:
            return await original_hop(inner)
        finally:
            name = getattr(kwargs.get("function", func), "__name__", "?")
            nan = float("nan")  # these cross threads: wall-clock time only
            timings["thread hop: loop -> worker thread"].append((marks["start"] - called, nan))
            timings[f"in a worker thread: {name}"].append((marks["end"] - marks["start"], nan))
            timings["thread hop: worker thread -> loop"].append(
                (time.perf_counter() - marks["end"], nan)
            )

    fastapi_routing.run_in_threadpool = hop
    fastapi_deps.run_in_threadpool = hop
    fastapi_deps.request_body_to_args = _timed_async(
        timings, "body: pydantic validation", fastapi_deps.request_body_to_args
    )
    fastapi_routing.solve_dependencies = _timed_async(
        timings, "solve_dependencies (body, auth, idempotency, settings)",
        fastapi_routing.solve_dependencies,
    )  # fmt: skip
    auth.authenticate = _timed(timings, "authenticate (key cache hit)", auth.authenticate)
    idem.IdempotentRequest._claim = _timed(  # type: ignore[method-assign]
        timings, "idempotency: claim key (own write txn + commit)", idem.IdempotentRequest._claim
    )
    idem.IdempotentRequest._store = _timed(  # type: ignore[method-assign]
        timings, "idempotency: store response", idem.IdempotentRequest._store
    )
    endpoints.service.create_invoice = _timed(  # type: ignore[attr-defined]
        timings, "service.create_invoice (ORM, before commit)", service.create_invoice
    )
    service.get_payment_options = _timed(
        timings, "  get_payment_options (SELECT)", merchant_service.get_payment_options
    )
    service.render_invoice = _timed(
        timings, "  render_invoice (for the event)", invoice_schemas.render_invoice
    )
    events.record = _timed(timings, "  events.record (new Event)", events.record)
    endpoints.render_invoice = _timed(
        timings, "render_invoice (response)", invoice_schemas.render_invoice
    )
    Session.flush = _timed(  # type: ignore[method-assign]
        timings, "Session.flush (every flush, incl. the one in commit)", Session.flush
    )
    Session.commit = _timed(  # type: ignore[method-assign]
        timings, "Session.commit (flush event INSERT + COMMIT/fsync)", Session.commit
    )
    uow.Database.write = contextlib.contextmanager(  # type: ignore[method-assign]
        _timed_generator(timings, "Database.write (whole unit of work)", uow.Database.write)
    )
    endpoints.dumps = _timed(timings, "orjson dumps (response)", endpoints.dumps)
    idem.dumps = _timed(timings, "orjson dumps (response)", idem.dumps)
    fastapi_routing.run_endpoint_function = _timed_async(
        timings, "endpoint (thread hop + unit of work)", fastapi_routing.run_endpoint_function
    )


def _timed_generator(timings: Timings, label: str, cm: Callable[..., Any]) -> Callable[..., Any]:
    inner = cm.__wrapped__  # type: ignore[attr-defined]

    @functools.wraps(inner)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = _clock()
        try:
            yield from inner(*args, **kwargs)
        finally:
            _add(timings, label, started)

    return wrapper


def print_timings(timings: Timings, requests: int, total: float) -> None:
    print(f"\nbreakdown over {requests} sequential requests "
          f"({total / requests * 1e6:,.0f} µs per request end to end, instrumented);\n"
          "CPU is the time the step's own thread spent on a CPU (the rest is waiting: "
          "I/O, fsync, locks, the GIL)")  # fmt: skip
    print(f"{'step':<58} {'calls/req':>9} {'wall µs/req':>11} {'CPU µs/req':>10}")
    for label, values in timings.items():
        wall = sum(v[0] for v in values) / requests * 1e6
        cpu = sum(v[1] for v in values) / requests * 1e6
        cpu_text = "" if cpu != cpu else f"{cpu:,.0f}"  # NaN: measured across threads
        print(f"{label:<58} {len(values) / requests:>9.2f} {wall:>11,.0f} {cpu_text:>10}")


# --- what-if experiments -------------------------------------------------------------------
#
# Each one patches the running app the way a change to src/ would (nothing on disk changes),
# so the gain of a proposed change can be measured before it is made. They are applied in the
# order given, cumulatively, and the timing run is repeated after each one.


def _what_if_async_deps(app: Any) -> None:
    """FastAPI runs sync dependencies in the thread pool: run the trivial ones on the loop, as
    if they were `async def` (authentication hits the key cache: pure CPU)."""
    import fastapi.dependencies.utils as fastapi_deps

    from quittance.api import deps
    from quittance.auth import dependencies as auth

    trivial = {auth._secret_caller, deps._settings, deps._db}
    original = fastapi_deps.run_in_threadpool

    async def run(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if func in trivial:
            return func(*args, **kwargs)
        return await original(func, *args, **kwargs)

    fastapi_deps.run_in_threadpool = run


def _what_if_options_cache(app: Any) -> None:
    """Keep each merchant's payment options in memory instead of a SELECT per invoice."""
    from quittance.invoice import service

    original = service.get_payment_options
    cache: dict[tuple[Any, ...], Any] = {}

    def cached(session: Any, *args: Any) -> Any:
        if args not in cache:
            cache[args] = original(session, *args)
        return cache[args]

    service.get_payment_options = cached


def _what_if_no_pre_ping(app: Any) -> None:
    """Do not ping a pooled connection (SELECT 1) on every checkout."""
    app.state.db.engine.pool._pre_ping = False


def _what_if_no_work(app: Any) -> None:
    """Not a proposal: skip the unit of work entirely (answer a canned 201 from the endpoint's
    thread), which leaves the cost of the framework path alone: middleware, routing,
    dependencies, validation, the thread hops."""
    from quittance.api.responses import json_response
    from quittance.idempotency import service as idem

    def run(self: Any, handler: Any) -> Any:
        return json_response(201, b'{"id":"inv_canned"}')

    idem.IdempotentRequest.run = run  # type: ignore[method-assign]


WHAT_IFS: dict[str, Callable[[Any], None]] = {
    "async-deps": _what_if_async_deps,
    "options-cache": _what_if_options_cache,
    "no-pre-ping": _what_if_no_pre_ping,
    "no-work": _what_if_no_work,
}


def measure(runner: Callable[[Any], Any], app: Any, key: str, args: Any, offset: int) -> str:
    cpu = time.process_time()
    total = runner(drive(app, key, args.requests, args.idempotent, offset))
    cpu = time.process_time() - cpu
    return (
        f"{total / args.requests * 1e6:,.0f} µs each, of which "
        f"{cpu / args.requests * 1e6:,.0f} µs of this process's CPU (all threads); "
        f"{args.requests / total:,.0f} per second on one connection"
    )


# --- ORM unit of work against Core, per row ---------------------------------------------------


def orm_vs_core(app: Any, rows: int) -> None:
    """Time inserting copies of the last invoice and event: ORM add+flush, ORM bulk insert,
    Core insert (each in its own transaction, rolled back, so only the INSERT path counts)."""
    from quittance.models import Event, Invoice

    for model in (Invoice, Event):
        _insert_paths(app.state.db, model, rows)
    _transaction_paths(app.state.db, rows)


def _transaction_paths(db: Any, rows: int) -> None:
    """One committed write of an invoice and its event: through `db.write()` and the ORM unit
    of work (as the service does), and through a Core connection (same lock and BEGIN)."""
    from sqlalchemy import inspect, select

    from quittance.models import Event, Invoice

    templates: dict[Any, dict[str, Any]] = {}
    with db.read() as session:
        for model in (Invoice, Event):
            row = session.scalars(select(model).order_by(model.id.desc()).limit(1)).one()
            templates[model] = {a.key: getattr(row, a.key) for a in inspect(model).column_attrs}

    def pair(n: int, prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
        invoice = dict(templates[Invoice])
        invoice["id"] = f"inv_{prefix}{n:09d}{invoice['id'][14:]}"
        invoice["pay_token"] = f"{prefix}{n}_{invoice['pay_token']}"[:64]
        event = dict(templates[Event])
        event["id"] = f"evt_{prefix}{n:09d}{event['id'][14:]}"
        event["invoice_id"] = invoice["id"]
        return invoice, event

    def columns(model: Any, values: dict[str, Any]) -> dict[str, Any]:
        return {a.columns[0].key: values[a.key] for a in inspect(model).column_attrs}

    def orm(n: int) -> None:
        invoice, event = pair(n, "o")
        with db.write() as session:
            session.add(Invoice(**invoice))
            session.flush()
            session.add(Event(**event))

    invoice_insert = Invoice.__table__.insert()
    event_insert = Event.__table__.insert()

    def core(n: int) -> None:
        invoice, event = pair(n, "c")
        with db._write_lock, db._write_engine.begin() as connection:
            connection.execute(invoice_insert, columns(Invoice, invoice))
            connection.execute(event_insert, columns(Event, event))

    for label, fn in (("db.write() + ORM", orm), ("Core connection", core)):
        fn(-1)
        wall, cpu = time.perf_counter(), time.thread_time()
        for n in range(rows):
            fn(n)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        print(f"invoice + event, committed, {label:<17} {wall / rows * 1e6:7,.0f} µs wall "
              f"{cpu / rows * 1e6:7,.0f} µs CPU per transaction")  # fmt: skip


def _insert_paths(db: Any, model: Any, rows: int) -> None:
    from sqlalchemy import insert, inspect, select

    mapper = inspect(model)
    with db.read() as session:
        template = session.scalars(select(model).order_by(model.id.desc()).limit(1)).one()
        attrs = {a.key: getattr(template, a.key) for a in mapper.column_attrs}
    columns = {a.key: a.columns[0].key for a in mapper.column_attrs}
    unique = [key for key in ("id", "pay_token") if key in attrs]

    def fresh(n: int, prefix: str) -> dict[str, Any]:
        values = dict(attrs)
        for key in unique:
            values[key] = f"{prefix}{n}_{attrs[key]}"[:40]
        return values

    def orm(session: Any, n: int) -> None:
        session.add(model(**fresh(n, "o")))
        session.flush()

    def bulk(session: Any, n: int) -> None:
        session.execute(insert(model), [fresh(n, "b")])

    def core(session: Any, n: int) -> None:
        values = {columns[key]: value for key, value in fresh(n, "c").items()}
        session.connection().execute(mapper.local_table.insert(), values)

    for label, fn in (("ORM add + flush", orm), ("ORM bulk insert()", bulk),
                      ("Core table.insert()", core)):  # fmt: skip
        with db.read() as session:  # a plain transaction, rolled back when it closes
            fn(session, -1)  # warm the statement cache
            wall, cpu = time.perf_counter(), time.thread_time()
            for n in range(rows):
                fn(session, n)
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            session.rollback()
        print(f"{model.__name__:>8} {label:<22} {wall / rows * 1e6:7,.0f} µs wall "
              f"{cpu / rows * 1e6:7,.0f} µs CPU per row")  # fmt: skip


# --- cProfile -------------------------------------------------------------------------------


def run_threadpool_inline() -> None:
    """Make FastAPI's thread-pool hops synchronous calls, so cProfile sees one thread."""
    import fastapi.dependencies.utils as fastapi_deps
    import fastapi.routing as fastapi_routing

    async def inline(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    fastapi_routing.run_in_threadpool = inline
    fastapi_deps.run_in_threadpool = inline


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_PG_ADMIN_URL)
    parser.add_argument("--mode", choices=("timing", "cprofile", "orm-vs-core"), default="timing")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--idempotent", action="store_true", help="send an Idempotency-Key")
    parser.add_argument(
        "--baseline", action="store_true", help="first measure the bare baseline app the same way"
    )
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--save", help="write the cProfile stats to this file")
    parser.add_argument(
        "--what-if",
        default="",
        help=f"comma-separated experiments, applied cumulatively: {', '.join(WHAT_IFS)}",
    )
    args = parser.parse_args(argv)
    args.what_if = [name.strip() for name in args.what_if.split(",") if name.strip()]
    for name in args.what_if:
        if name not in WHAT_IFS:
            parser.error(f"unknown experiment {name!r}; choose from {', '.join(WHAT_IFS)}")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        import uvloop
    except ImportError:
        runner: Callable[[Any], Any] = asyncio.run
    else:
        runner = uvloop.run

    with fresh_database(args.database, args.postgres_url) as url:
        app, key = build(url)
        warm = min(200, args.requests)
        runner(drive(app, key, warm, args.idempotent, 10**9))  # warm caches and statements
        if args.baseline:
            from baseline import make_app, open_store

            store = open_store(url)
            bare = make_app(store)
            runner(drive(bare, key, warm, False, 10**9))
            print(f"{args.database}, bare baseline app (same harness): "
                  f"{measure(runner, bare, key, args, 0)}")  # fmt: skip
            store.close()
        if args.what_if and args.mode == "timing":
            print(f"{args.database}, {args.requests} sequential requests per line")
            print(f"  as is: {measure(runner, app, key, args, 3 * 10**9)}")
            for step, name in enumerate(args.what_if, start=1):
                WHAT_IFS[name](app)
                runner(drive(app, key, warm, args.idempotent, (4 + 2 * step) * 10**9))
                result = measure(runner, app, key, args, (5 + 2 * step) * 10**9)
                print(f"  + {name}: {result}")
        elif args.mode == "orm-vs-core":
            orm_vs_core(app, args.requests)
        elif args.mode == "timing":
            print(f"{args.database}: {args.requests} sequential requests, "
                  f"{measure(runner, app, key, args, 0)}")  # fmt: skip
            timings: Timings = defaultdict(list)
            instrument(timings)
            total = runner(drive(app, key, args.requests, args.idempotent, 2 * 10**9))
            print_timings(timings, args.requests, total)
        else:
            for name in args.what_if:
                WHAT_IFS[name](app)
            run_threadpool_inline()
            runner(drive(app, key, warm, args.idempotent, 5 * 10**9))
            profiler = cProfile.Profile()
            profiler.enable()
            runner(drive(app, key, args.requests, args.idempotent, 0))
            profiler.disable()
            if args.save:
                profiler.dump_stats(args.save)
            for order in ("tottime", "cumulative"):
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order)
                stats.print_stats(args.top)
                print(f"=== by {order} ({args.requests} requests) ===")
                print(out.getvalue())
        app.state.db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
