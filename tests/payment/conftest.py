"""Payment fixtures: settings with a sandbox store of our own and short recovery/poll times,
an app built on them, and a real `quittance serve` process sharing that sandbox store."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from quittance.app import create_app
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.providers.sandbox import SandboxGateway
from tests.conftest import LiveServer, start_server, stop_server
from tests.factories import Api, MerchantFactory
from tests.payment.helpers import POLL_INTERVAL, PROVIDER_TIMEOUT, RECOVERY_AFTER


@pytest.fixture(scope="session")
def sandbox_path(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The provider's side, one file per database backend (never ./quittance-sandbox.db)."""
    path: Path = tmp_path_factory.mktemp("sandbox") / "sandbox.db"
    return str(path)


@pytest.fixture(scope="session")
def pay_settings(settings: Settings, sandbox_path: str) -> Settings:
    return settings.model_copy(
        update={
            "sandbox_path": sandbox_path,
            "payment_recovery_after": RECOVERY_AFTER,
            "payment_poll_interval": POLL_INTERVAL,
            "provider_timeout": PROVIDER_TIMEOUT,
        }
    )


@pytest.fixture(scope="session")
def pay_client(pay_settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(pay_settings, db), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def papi(pay_client: TestClient, merchants: MerchantFactory) -> Api:
    """A brand-new merchant on the payment app (test key)."""
    return Api(pay_client, merchants.create())


@pytest.fixture(scope="session")
def gateway(sandbox_path: str) -> SandboxGateway:
    """What the provider holds (read directly from the sandbox store)."""
    return SandboxGateway(sandbox_path)


def server_env(sandbox_path: str, *, worker: bool) -> dict[str, str]:
    return {
        "QUITTANCE_SANDBOX_PATH": sandbox_path,
        "QUITTANCE_PAYMENT_RECOVERY_AFTER": "3",
        "QUITTANCE_PAYMENT_POLL_INTERVAL": "0.5",
        "QUITTANCE_PROVIDER_TIMEOUT": "20",
        "QUITTANCE_EMBEDDED_WORKER": "true" if worker else "false",
        "QUITTANCE_WORKER_INTERVAL": "0.2",
    }


@pytest.fixture(scope="session")
def pay_server(database_url: str, sandbox_path: str) -> Iterator[LiveServer]:
    """A real server (worker off) on the test database and our sandbox store."""
    server = start_server(database_url, **server_env(sandbox_path, worker=False))
    yield server
    stop_server(server)
