"""The `quittance` command, run as a real process on both databases."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import func, select

from quittance.db.uow import Database
from quittance.models import ApiKey, Merchant
from tests.conftest import start_server, stop_server


def quittance(
    database_url: str, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "QUITTANCE_DATABASE_URL": database_url,
        "QUITTANCE_LOG_LEVEL": "WARNING",
        "QUITTANCE_ENV": "test",
    }
    result = subprocess.run(
        [sys.executable, "-m", "quittance", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stderr
    return result


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_merchant_and_key_creation_print_their_ids_last(database_url: str, db: Database) -> None:
    quittance(database_url, "migrate")
    merchant_id = last_line(quittance(database_url, "merchant", "create", "--name", "Shop A"))
    assert merchant_id.startswith("mer_")
    key = last_line(quittance(database_url, "key", "create", "--merchant", merchant_id,
                              "--mode", "live"))  # fmt: skip
    assert key.startswith("qk_live_")
    with db.read() as session:
        merchant = session.get(Merchant, merchant_id)
        assert merchant is not None and merchant.name == "Shop A"
        stored = session.scalars(select(ApiKey).where(ApiKey.merchant_id == merchant_id)).one()
        assert stored.livemode is True
        # Only the digest is stored, never the key.
        assert key not in (stored.key_hash, stored.prefix) and len(stored.key_hash) == 64


def test_key_creation_refuses_unknown_merchants_and_modes(database_url: str, db: Database) -> None:
    with db.read() as session:
        keys_before = session.scalar(select(func.count()).select_from(ApiKey))
    missing = quittance(database_url, "key", "create", "--merchant", "mer_nope", check=False)
    assert missing.returncode == 1
    assert "mer_nope" in missing.stderr
    bad_mode = quittance(database_url, "key", "create", "--merchant", "m", "--mode", "prod",
                         check=False)  # fmt: skip
    assert bad_mode.returncode == 2
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(ApiKey)) == keys_before


def test_demo_creates_the_merchant_once_and_prints_a_working_key(database_url: str) -> None:
    first = quittance(database_url, "demo")
    second = quittance(database_url, "demo")
    key_one, key_two = last_line(first), last_line(second)
    assert key_one.startswith("qk_test_") and key_two.startswith("qk_test_")
    assert key_one != key_two
    assert "curl" in first.stdout and key_one in first.stdout
    server = start_server(database_url, QUITTANCE_EMBEDDED_WORKER="false")
    try:
        merchants = set()
        for key in (key_one, key_two):
            headers = {"Authorization": f"Bearer {key}"}
            created = httpx.post(f"{server.url}/v1/invoices", headers=headers,
                                 json={"amount": 100, "currency": "EUR"})  # fmt: skip
            assert created.status_code == 201, created.text
            assert created.json()["redirect_url"].startswith(f"{server.url}/pay/")
            options = httpx.get(f"{server.url}/v1/settings/payment_options", headers=headers)
            merchants.add(options.json()["updated_at"])
        assert len(merchants) == 1, "both keys belong to the one demo merchant"
    finally:
        stop_server(server)


def test_statuses_prints_the_generated_document(database_url: str) -> None:
    from quittance.docs import status_document

    assert quittance(database_url, "statuses").stdout == status_document()


def test_production_refuses_the_placeholder_secret_with_a_sentence(tmp_path: Path) -> None:
    env = {**os.environ, "QUITTANCE_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}"}
    env.pop("QUITTANCE_ENV", None)
    env.pop("QUITTANCE_SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "-m", "quittance", "migrate"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "QUITTANCE_SECRET_KEY must be set" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "p.db").exists(), "nothing was created"
