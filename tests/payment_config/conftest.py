"""Payment-settings fixtures: an app whose sandbox store is a file of this test session."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from quittance.app import create_app
from quittance.config import Settings
from quittance.db.uow import Database
from tests.factories import Api, MerchantFactory


@pytest.fixture(scope="session")
def config_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The test settings with a sandbox store of our own (never ./quittance-sandbox.db)."""
    path: Path = tmp_path_factory.mktemp("sandbox-config") / "sandbox.db"
    return settings.model_copy(update={"sandbox_path": str(path)})


@pytest.fixture(scope="session")
def config_client(config_settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(config_settings, db), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def api(config_client: TestClient, merchants: MerchantFactory) -> Api:
    """A brand-new merchant (test key) on the app with our sandbox store."""
    return Api(config_client, merchants.create())
