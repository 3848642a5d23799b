"""Factory functions and a thin API client for tests."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from quittance.app import create_app
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.merchant.service import create_api_key, create_merchant
from quittance.models import Event, IdempotencyKey, Invoice, InvoiceLineItem


@dataclass
class MerchantKeys:
    id: str
    test_key: str
    live_key: str


@dataclass
class MerchantFactory:
    db: Database
    count: int = 0

    def create(self, name: str = "Test Shop") -> MerchantKeys:
        with self.db.write() as session:
            merchant = create_merchant(session, name)
            _, test_key = create_api_key(session, merchant.id, livemode=False)
            _, live_key = create_api_key(session, merchant.id, livemode=True)
        self.count += 1
        return MerchantKeys(merchant.id, test_key, live_key)


@dataclass
class Api:
    """Calls the API as one merchant (test key unless `live=True`)."""

    client: TestClient
    merchant: MerchantKeys
    live: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        key = self.merchant.live_key if self.live else self.merchant.test_key
        return {"Authorization": f"Bearer {key}", **self.headers, **(extra or {})}

    def as_live(self) -> "Api":
        return Api(self.client, self.merchant, live=True)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = self._headers(kwargs.pop("headers", None))
        return self.client.get(path, headers=headers, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        headers = self._headers(kwargs.pop("headers", None))
        return self.client.post(path, json=json, headers=headers, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        headers = self._headers(kwargs.pop("headers", None))
        return self.client.patch(path, json=json, headers=headers, **kwargs)

    def create_invoice(self, **fields: Any) -> dict[str, Any]:
        body = {"amount": 1999, "currency": "EUR", **fields}
        response = self.post("/v1/invoices", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())


def snapshot(db: Database, merchant_id: str) -> dict[str, Any]:
    """Everything a merchant has stored, to assert that a failed request changed nothing."""
    with db.read() as session:
        invoices = session.scalars(
            select(Invoice).where(Invoice.merchant_id == merchant_id).order_by(Invoice.id)
        ).all()
        return {
            "invoices": [
                {c.key: getattr(inv, c.key) for c in Invoice.__mapper__.column_attrs}
                for inv in invoices
            ],
            "lines": session.scalar(
                select(func.count()).where(InvoiceLineItem.merchant_id == merchant_id)
            ),
            "events": session.scalar(select(func.count()).where(Event.merchant_id == merchant_id)),
            "idempotency_keys": session.scalar(
                select(func.count()).where(IdempotencyKey.merchant_id == merchant_id)
            ),
        }


def record_lane(monkeypatch: Any, lane: type[Any]) -> list[bool]:
    """Record whether `lane` (a fast lane class) served each request it was offered (False:
    it passed the request on to the route)."""
    outcomes: list[bool] = []
    original = lane.__call__

    async def recording(self: Any, *args: Any) -> bool:
        outcome = bool(await original(self, *args))
        outcomes.append(outcome)
        return outcome

    monkeypatch.setattr(lane, "__call__", recording)
    return outcomes


def route_only_client(settings: Settings, db: Database) -> Iterator[TestClient]:
    """A client of the same app with the fast lanes switched off: every request takes its
    FastAPI route (for a fixture: `yield from route_only_client(settings, db)`)."""
    app = create_app(settings.model_copy(update={"fast_lane": False}), db)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
