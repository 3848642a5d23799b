"""Customer fixtures: an app whose sandbox store is a file of our own (never the default
./quittance-sandbox.db), and a merchant calling it."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from quittance.app import create_app
from quittance.config import Settings
from quittance.db.uow import Database
from tests.factories import Api, MerchantFactory


@pytest.fixture(scope="session")
def customer_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    path: Path = tmp_path_factory.mktemp("customer-sandbox") / "sandbox.db"
    return settings.model_copy(update={"sandbox_path": str(path)})


@pytest.fixture(scope="session")
def customer_client(customer_settings: Settings, db: Database) -> Iterator[TestClient]:
    app = create_app(customer_settings, db)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def capi(customer_client: TestClient, merchants: MerchantFactory) -> Api:
    """A brand-new merchant (test key) on the app with our sandbox store."""
    return Api(customer_client, merchants.create())
