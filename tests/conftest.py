"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from QUITTANCE_TEST_POSTGRES_URL (an admin URL; default: the local server).
Each run creates its own database and drops it at the end. Without PostgreSQL the PostgreSQL
half of the suite is skipped on a laptop, and fails under CI=true.
"""

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from quittance.app import create_app
from quittance.config import Settings
from quittance.db.migrate import upgrade
from quittance.db.uow import Database
from tests.factories import Api, MerchantFactory

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get(
    "QUITTANCE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgresql")


def _pg_conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a database test may not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database for this test session, per backend."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "quittance.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
        return
    with postgres_database() as url:
        upgrade(url)
        yield url


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards; skipped on a laptop
    without PostgreSQL, failed under CI."""
    name = f"quittance_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(_pg_conninfo(PG_ADMIN_URL), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _unavailable(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = _pg_conninfo(PG_ADMIN_URL).rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(_pg_conninfo(PG_ADMIN_URL), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        base_url="http://testserver",
        env="test",
        embedded_worker=False,
    )


@pytest.fixture(scope="session")
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def merchants(db: Database) -> MerchantFactory:
    return MerchantFactory(db)


@pytest.fixture
def api(client: TestClient, merchants: MerchantFactory) -> Api:
    """An API client for a brand-new merchant, authenticated with its test key."""
    return Api(client, merchants.create())


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(database_url: str, log_path: Path | None = None, **env: str) -> LiveServer:
    """Start `quittance serve` in its own process and wait until it answers.

    With `log_path`, the server's stdout and stderr go to that file.
    """
    port = free_port()
    environment = {
        **os.environ,
        "QUITTANCE_DATABASE_URL": database_url,
        "QUITTANCE_BASE_URL": f"http://127.0.0.1:{port}",
        "QUITTANCE_ENV": "test",
        "QUITTANCE_LOG_LEVEL": "WARNING",
        **env,
    }
    command = [sys.executable, "-m", "quittance", "serve", "--host", "127.0.0.1", "--port",
               str(port)]  # fmt: skip
    if log_path is None:
        process = subprocess.Popen(command, env=environment)
    else:
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, env=environment, stdout=log, stderr=subprocess.STDOUT
            )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return LiveServer(url, process)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start within 30 s")


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def live_server(database_url: str) -> Iterator[LiveServer]:
    """A real `quittance serve` process on the test database (worker off)."""
    server = start_server(database_url, QUITTANCE_EMBEDDED_WORKER="false")
    yield server
    stop_server(server)
