"""Idempotency-Key semantics (DESIGN §5), on both databases."""

import threading
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from quittance import clock
from quittance.config import Settings
from quittance.db.uow import Database
from quittance.jobs.worker import Worker
from quittance.models import IdempotencyKey, Invoice
from tests.conftest import LiveServer
from tests.factories import Api, MerchantFactory, snapshot

BODY = {"amount": 1999, "currency": "EUR", "reference": "order-7"}


def _count_invoices(db: Database, merchant_id: str) -> int:
    with db.read() as session:
        return int(
            session.scalar(select(func.count()).where(Invoice.merchant_id == merchant_id)) or 0
        )


def test_replay_is_byte_identical(api: Api, db: Database) -> None:
    headers = {"Idempotency-Key": "k-replay"}
    first = api.post("/v1/invoices", json=BODY, headers=headers)
    second = api.post("/v1/invoices", json=BODY, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert _count_invoices(db, api.merchant.id) == 1


def test_key_order_and_whitespace_do_not_make_a_different_body(api: Api) -> None:
    headers = {"Idempotency-Key": "k-canonical", "Content-Type": "application/json"}
    first = api.post("/v1/invoices", content=b'{"amount":5,"currency":"EUR"}', headers=headers)
    second = api.post(
        "/v1/invoices", content=b'{ "currency": "EUR",  "amount": 5 }', headers=headers
    )
    assert first.status_code == 201
    assert second.content == first.content


def test_a_different_body_gets_422_and_changes_nothing(api: Api, db: Database) -> None:
    headers = {"Idempotency-Key": "k-diff"}
    first = api.post("/v1/invoices", json=BODY, headers=headers)
    assert first.status_code == 201
    before = snapshot(db, api.merchant.id)
    changes = ({**BODY, "amount": 2000}, {**BODY, "currency": "USD"}, {**BODY, "reference": "o"})
    for changed in changes:
        response = api.post("/v1/invoices", json=changed, headers=headers)
        assert response.status_code == 422, changed
        assert response.json()["code"] == "idempotency_key_reused"
        assert response.headers["content-type"] == "application/problem+json"
    # The same key on another endpoint is a different request too.
    other = api.post(f"/v1/invoices/{first.json()['id']}/cancel", headers=headers)
    assert other.json()["code"] == "idempotency_key_reused"
    assert snapshot(db, api.merchant.id) == before


def test_a_request_in_flight_gets_409(api: Api, db: Database) -> None:
    now = clock.now()
    with db.write() as session:
        session.add(
            IdempotencyKey(
                merchant_id=api.merchant.id, livemode=False, key="k-busy", method="POST",
                path="/v1/invoices", fingerprint=_fingerprint(BODY), state="in_flight",
                locked_at=now, created_at=now, expires_at=now + timedelta(hours=72),
            )
        )  # fmt: skip
    before = snapshot(db, api.merchant.id)
    response = api.post("/v1/invoices", json=BODY, headers={"Idempotency-Key": "k-busy"})
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_in_use"
    assert snapshot(db, api.merchant.id) == before


def test_a_stale_claim_left_by_a_dead_process_is_taken_over(api: Api, db: Database) -> None:
    old = clock.now() - timedelta(minutes=10)
    with db.write() as session:
        session.add(
            IdempotencyKey(
                merchant_id=api.merchant.id, livemode=False, key="k-stale", method="POST",
                path="/v1/invoices", fingerprint=_fingerprint(BODY), state="in_flight",
                locked_at=old, created_at=old, expires_at=old + timedelta(hours=72),
            )
        )  # fmt: skip
    response = api.post("/v1/invoices", json=BODY, headers={"Idempotency-Key": "k-stale"})
    assert response.status_code == 201
    assert _count_invoices(db, api.merchant.id) == 1


def test_business_errors_are_stored_and_replayed(api: Api, db: Database) -> None:
    invoice = api.create_invoice()
    headers = {"Idempotency-Key": "k-error"}
    path = f"/v1/invoices/{invoice['id']}/finalize"
    first = api.post(path, headers=headers)
    assert first.status_code == 409
    assert first.json()["code"] == "invoice_not_draft"
    second = api.post(path, headers=headers)
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"


def test_validation_errors_are_not_stored(api: Api, db: Database) -> None:
    headers = {"Idempotency-Key": "k-invalid"}
    bad = api.post("/v1/invoices", json={"amount": 0, "currency": "EUR"}, headers=headers)
    assert bad.status_code == 422
    assert snapshot(db, api.merchant.id)["idempotency_keys"] == 0
    good = api.post("/v1/invoices", json=BODY, headers=headers)
    assert good.status_code == 201


def test_keys_belong_to_one_merchant_and_mode(
    api: Api, merchants: MerchantFactory, db: Database
) -> None:
    headers = {"Idempotency-Key": "k-shared"}
    other = Api(api.client, merchants.create())
    ids = {
        caller.post("/v1/invoices", json=BODY, headers=headers).json()["id"]
        for caller in (api, api.as_live(), other)
    }
    assert len(ids) == 3


def test_invalid_keys_are_refused(api: Api, db: Database) -> None:
    before = snapshot(db, api.merchant.id)
    for key in ("x" * 256, "has space", "tab\tkey"):
        response = api.post("/v1/invoices", json=BODY, headers={"Idempotency-Key": key})
        assert response.status_code in (400, 422), key
        assert response.json()["code"] in ("idempotency_key_invalid", "too_long"), key
    assert snapshot(db, api.merchant.id) == before


def test_keys_are_kept_72_hours_then_forgotten(api: Api, db: Database, settings: Settings) -> None:
    headers = {"Idempotency-Key": "k-old"}
    first = api.post("/v1/invoices", json=BODY, headers=headers)
    with db.read() as session:
        row = session.get(IdempotencyKey, (api.merchant.id, False, "k-old"))
        assert row is not None
        assert row.expires_at - row.created_at == timedelta(hours=72)
    with db.write() as session:
        row = session.get(IdempotencyKey, (api.merchant.id, False, "k-old"))
        assert row is not None
        row.expires_at = clock.now() - timedelta(seconds=1)
    Worker(db, settings).run_once()
    with db.read() as session:
        assert session.get(IdempotencyKey, (api.merchant.id, False, "k-old")) is None
    again = api.post("/v1/invoices", json=BODY, headers=headers)
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]


def test_fifty_concurrent_identical_creates_make_one_invoice(
    live_server: LiveServer, merchants: MerchantFactory, db: Database
) -> None:
    merchant = merchants.create()
    headers = {"Authorization": f"Bearer {merchant.test_key}", "Idempotency-Key": "k-race"}
    barrier = threading.Barrier(50)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def create() -> None:
        with httpx.Client(base_url=live_server.url, timeout=60) as client:
            barrier.wait()
            response = client.post("/v1/invoices", json=BODY, headers=headers)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=create) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(responses) == 50
    statuses = sorted({r.status_code for r in responses})
    assert set(statuses) <= {201, 409}, [r.text for r in responses if r.status_code >= 500]
    created = [r for r in responses if r.status_code == 201]
    assert created, "at least the first request succeeds"
    assert len({r.content for r in created}) == 1, "every success is the same invoice"
    for conflict in (r for r in responses if r.status_code == 409):
        assert conflict.json()["code"] == "idempotency_key_in_use"
    assert _count_invoices(db, merchant.id) == 1


def _fingerprint(body: dict[str, object]) -> str:
    import orjson

    from quittance.idempotency.service import fingerprint

    return fingerprint("POST", "/v1/invoices", orjson.dumps(body))
