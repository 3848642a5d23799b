"""`QUITTANCE_OPENTELEMETRY`: off (the default), a request does not look for an OpenTelemetry
provider at all; on, FastAPI's instrumentation looks for one on every request."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace

from quittance.app import create_app
from quittance.config import Settings
from quittance.db.uow import Database


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every look-up of the global tracer provider, which FastAPI makes per request when on."""
    seen: list[str] = []
    real = trace.get_tracer_provider

    def counted() -> trace.TracerProvider:
        seen.append("tracer")
        return real()

    monkeypatch.setattr(trace, "get_tracer_provider", counted)
    yield seen


@pytest.mark.parametrize("enabled", [False, True])
def test_requests_look_for_a_provider_only_when_opentelemetry_is_on(
    settings: Settings, db: Database, lookups: list[str], enabled: bool
) -> None:
    app = create_app(settings.model_copy(update={"opentelemetry": enabled}), db)
    with TestClient(app) as client:
        lookups.clear()
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
    assert (len(lookups) >= 3) if enabled else (lookups == [])
