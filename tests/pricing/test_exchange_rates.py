"""`/v1/exchange_rates` and `quittance rates import`: rates set by API or imported from CSV."""

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from quittance.db.uow import Database
from quittance.models import ExchangeRate
from tests.factories import Api, MerchantFactory
from tests.payment.helpers import problem
from tests.pricing.helpers import everything, set_rate


def test_each_rate_is_a_new_row_and_the_list_is_newest_first(papi: Api) -> None:
    first = set_rate(papi, "EUR", "USD", "1.0800")
    assert {k: v for k, v in first.items() if k not in ("id", "created_at")} == {
        "object": "exchange_rate", "livemode": False, "base": "EUR", "quote": "USD",
        "rate": "1.08", "source": "api",
    }  # fmt: skip
    assert first["id"].startswith("xr_") and len(first["id"]) == 29
    second = set_rate(papi, "eur", "usd", "1.0842")
    set_rate(papi, "EUR", "JPY", "161.23")
    listed = papi.get("/v1/exchange_rates").json()
    assert [r["rate"] for r in listed["data"]] == ["161.23", "1.0842", "1.08"]
    pair = papi.get("/v1/exchange_rates", params={"base": "EUR", "quote": "USD"}).json()
    assert [r["id"] for r in pair["data"]] == [second["id"], first["id"]]
    page = papi.get("/v1/exchange_rates", params={"limit": 1, "quote": "USD"}).json()
    assert page["has_more"] is True and page["next_cursor"] == second["id"]
    rest = papi.get(
        "/v1/exchange_rates", params={"limit": 1, "quote": "USD", "starting_after": second["id"]}
    )
    assert [r["id"] for r in rest.json()["data"]] == [first["id"]]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"base": "EUR", "quote": "USD", "rate": 1.0842}, "invalid_type"),
        ({"base": "EUR", "quote": "USD", "rate": "0"}, "invalid_exchange_rate"),
        ({"base": "EUR", "quote": "USD", "rate": "-1.2"}, "invalid_exchange_rate"),
        ({"base": "EUR", "quote": "USD", "rate": "1.0000000000001"}, "invalid_exchange_rate"),
        ({"base": "EUR", "quote": "USD", "rate": "abc"}, "invalid_exchange_rate"),
        ({"base": "EUR", "quote": "eur", "rate": "1"}, "invalid_exchange_rate"),
        ({"base": "EUR", "quote": "XYZ", "rate": "1"}, "currency_not_supported"),
        ({"base": "EUR", "rate": "1"}, "field_required"),
    ],
)
def test_an_invalid_rate_is_refused_and_nothing_is_stored(
    papi: Api, db: Database, body: dict[str, Any], code: str
) -> None:
    before = everything(db, papi.merchant.id)
    problem(papi.post("/v1/exchange_rates", json=body), 422, code)
    assert everything(db, papi.merchant.id) == before


def test_rates_belong_to_one_merchant_and_mode(papi: Api, merchants: MerchantFactory) -> None:
    set_rate(papi, "EUR", "USD", "1.0842")
    other = Api(papi.client, merchants.create())
    assert other.get("/v1/exchange_rates").json()["data"] == []
    assert papi.as_live().get("/v1/exchange_rates").json()["data"] == []


def quittance(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUITTANCE_DATABASE_URL": database_url, "QUITTANCE_ENV": "test",
           "QUITTANCE_LOG_LEVEL": "WARNING"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "quittance", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def stored(db: Database, merchant_id: str) -> list[tuple[bool, str, str, Decimal, str]]:
    with db.read() as session:
        rows = session.scalars(
            select(ExchangeRate)
            .where(ExchangeRate.merchant_id == merchant_id)
            .order_by(ExchangeRate.id)
        )
        return [(r.livemode, r.base, r.quote, r.rate, r.source) for r in rows]


@pytest.mark.slow
def test_a_csv_file_is_imported_in_one_go(
    database_url: str, db: Database, merchants: MerchantFactory, tmp_path: Path
) -> None:
    merchant = merchants.create()
    path = tmp_path / "rates.csv"
    path.write_text("base,quote,rate\nEUR,USD,1.0842\n\neur,jpy, 161.23 \nUSD,EUR,0.9223\n")
    result = quittance(database_url, "rates", "import", str(path), "--merchant", merchant.id,
                       "--mode", "live")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "3"
    assert "imported 3 exchange rate(s)" in result.stderr
    assert stored(db, merchant.id) == [
        (True, "EUR", "USD", Decimal("1.0842"), "import"),
        (True, "EUR", "JPY", Decimal("161.23"), "import"),
        (True, "USD", "EUR", Decimal("0.9223"), "import"),
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content", "line", "why"),
    [
        ("base,quote,rate\nEUR,USD,1.0842\nEUR,GBP,0,86\n", 3, "expected 3 columns"),
        ("base,quote,rate\nEUR,USD,1.0842\nEUR,XYZ,1.2\n", 3, "'XYZ'"),
        ("base,quote,rate\nEUR,USD,1.0842\nEUR,GBP,abc\n", 3, "such as 2.9; 'abc' is not one"),
        ("base,quote,rate\nEUR,USD,1.0842\nEUR,EUR,1\n", 3, "two different currencies"),
        ("base,quote,rate\nEUR,USD,1.0842\nEUR,GBP,-0.86\n", 3, "above 0"),
        ("quote,base,rate\nEUR,USD,1.0842\n", 1, "header base,quote,rate"),
        ("base,quote,rate\n", 1, "no rates"),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_imported(
    database_url: str, db: Database, merchants: MerchantFactory, tmp_path: Path,
    content: str, line: int, why: str,
) -> None:  # fmt: skip
    merchant = merchants.create()
    path = tmp_path / "rates.csv"
    path.write_text(content)
    result = quittance(database_url, "rates", "import", str(path), "--merchant", merchant.id)
    assert result.returncode == 1, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert f"Line {line}:" in message or (line == 1 and "The file holds no rates" in message)
    assert why in message and "Nothing was imported." in message
    assert stored(db, merchant.id) == []


@pytest.mark.slow
def test_an_import_needs_a_merchant_a_mode_and_a_file(
    database_url: str, tmp_path: Path
) -> None:  # fmt: skip
    path = tmp_path / "rates.csv"
    path.write_text("base,quote,rate\nEUR,USD,1.0842\n")
    unknown = quittance(database_url, "rates", "import", str(path), "--merchant", "mer_nope")
    assert unknown.returncode == 1 and "mer_nope" in unknown.stderr
    mode = quittance(database_url, "rates", "import", str(path), "--merchant", "m", "--mode", "x")
    assert mode.returncode == 2
    missing = quittance(database_url, "rates", "import", str(tmp_path / "nope.csv"),
                        "--merchant", "m")  # fmt: skip
    assert missing.returncode == 2 and "cannot read" in missing.stderr
