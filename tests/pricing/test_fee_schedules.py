"""`/v1/fee_schedules`: set, read, list and delete a method's commission per currency."""

from typing import Any

import pytest

from quittance.db.uow import Database
from tests.factories import Api, MerchantFactory
from tests.payment.helpers import problem
from tests.pricing.helpers import delete, everything, put, set_schedule

CARD = {"currency": "EUR", "percent": "2.9", "fixed": 30, "minimum": None, "maximum": 500}


def test_a_schedule_is_set_read_listed_replaced_and_deleted(papi: Api) -> None:
    response = put(papi, "/v1/fee_schedules/card", CARD)
    assert response.status_code == 200, response.text
    created = response.json()
    assert {k: v for k, v in created.items() if not k.endswith("_at")} == {
        "object": "fee_schedule", "livemode": False, "method": "card", "currency": "EUR",
        "percent": "2.9", "fixed": 30, "minimum": None, "maximum": 500,
    }  # fmt: skip
    assert papi.get("/v1/fee_schedules/card/eur").json() == created
    # A JSON integer is exact; trailing zeros of a decimal string do not matter.
    set_schedule(papi, "bank_transfer", "JPY", "1.50")
    kwd = set_schedule(papi, "bank_transfer", "KWD", 3, fixed=250, minimum=500)
    assert (kwd["percent"], kwd["fixed"], kwd["minimum"]) == ("3", 250, 500)
    listed = papi.get("/v1/fee_schedules").json()
    assert listed["object"] == "list" and listed["has_more"] is False
    assert [(s["method"], s["currency"], s["percent"]) for s in listed["data"]] == [
        ("bank_transfer", "JPY", "1.5"), ("bank_transfer", "KWD", "3"), ("card", "EUR", "2.9"),
    ]  # fmt: skip
    only = papi.get("/v1/fee_schedules", params={"method": "bank_transfer", "currency": "jpy"})
    assert [s["currency"] for s in only.json()["data"]] == ["JPY"]
    # PUT replaces the schedule of that method and currency, keeping when it was created.
    replaced = set_schedule(papi, "card", "EUR", "0")
    assert (replaced["percent"], replaced["fixed"], replaced["maximum"]) == ("0", 0, None)
    assert replaced["created_at"] == created["created_at"]
    gone = delete(papi, "/v1/fee_schedules/card/EUR")
    assert gone.status_code == 200
    assert gone.json() == {"object": "fee_schedule", "method": "card", "currency": "EUR",
                           "deleted": True}  # fmt: skip
    problem(papi.get("/v1/fee_schedules/card/EUR"), 404, "fee_schedule_not_found")
    problem(delete(papi, "/v1/fee_schedules/card/EUR"), 404, "fee_schedule_not_found")


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"percent": 2.9}, "invalid_type", "percent"),  # a float has lost the merchant's digits
        ({"percent": True}, "invalid_type", "percent"),
        ({"percent": "2,9"}, "invalid_fee_schedule", "percent"),
        ({"percent": "NaN"}, "invalid_fee_schedule", "percent"),
        ({"percent": "1e2"}, "invalid_fee_schedule", "percent"),
        ({"percent": "100.5"}, "invalid_fee_schedule", "percent"),
        ({"percent": "-1"}, "invalid_fee_schedule", "percent"),
        ({"percent": "1.23456"}, "invalid_fee_schedule", "percent"),
        ({"minimum": 600}, "invalid_fee_schedule", "minimum"),  # above the maximum of 500
        ({"fixed": -1}, "amount_negative", "fixed"),
        ({"fixed": 1.5}, "amount_not_integer", "fixed"),
        ({"maximum": 10**12}, "amount_too_large", "maximum"),
        ({"currency": "XYZ"}, "currency_not_supported", "currency"),
        ({"percent": None}, "invalid_type", "percent"),
        ({"surcharge": 1}, "unknown_field", "surcharge"),
    ],
)
def test_an_invalid_schedule_is_refused_and_nothing_is_stored(
    papi: Api, db: Database, change: dict[str, Any], code: str, field: str
) -> None:
    set_schedule(papi, "card", "EUR", "1")
    before = everything(db, papi.merchant.id)
    body = problem(put(papi, "/v1/fee_schedules/card", {**CARD, **change}), 422, code)
    assert body.get("field", field) == field
    if "errors" in body:
        assert body["errors"][0]["field"] == field
    assert everything(db, papi.merchant.id) == before


def test_a_schedule_needs_a_known_method_and_currency(papi: Api, db: Database) -> None:
    before = everything(db, papi.merchant.id)
    problem(put(papi, "/v1/fee_schedules/cheque", CARD), 404, "method_not_found")
    problem(papi.get("/v1/fee_schedules/cheque/EUR"), 404, "method_not_found")
    problem(papi.get("/v1/fee_schedules", params={"method": "cheque"}), 404, "method_not_found")
    problem(papi.get("/v1/fee_schedules/card/XYZ"), 422, "currency_not_supported")
    assert everything(db, papi.merchant.id) == before


def test_schedules_belong_to_one_merchant_and_mode(papi: Api, merchants: MerchantFactory,
                                                   db: Database) -> None:  # fmt: skip
    set_schedule(papi, "card", "EUR", "2.9", 30)
    other = Api(papi.client, merchants.create())
    live = papi.as_live()
    for stranger in (other, live):
        assert stranger.get("/v1/fee_schedules").json()["data"] == []
        problem(stranger.get("/v1/fee_schedules/card/EUR"), 404, "fee_schedule_not_found")
        problem(delete(stranger, "/v1/fee_schedules/card/EUR"), 404, "fee_schedule_not_found")
    # The live mode has a schedule of its own; the test one is untouched.
    response = put(live, "/v1/fee_schedules/card", {**CARD, "percent": "1.4"})
    assert response.status_code == 200 and response.json()["livemode"] is True
    assert papi.get("/v1/fee_schedules/card/EUR").json()["percent"] == "2.9"
    assert live.get("/v1/fee_schedules/card/EUR").json()["percent"] == "1.4"
    assert everything(db, other.merchant.id)["schedules"] == []


def test_a_replayed_put_answers_the_same(papi: Api) -> None:
    headers = {"Idempotency-Key": "fee-1"}
    first = papi.client.put("/v1/fee_schedules/card", json=CARD,
                            headers={**papi._headers(None), **headers})  # fmt: skip
    again = papi.client.put("/v1/fee_schedules/card", json=CARD,
                            headers={**papi._headers(None), **headers})  # fmt: skip
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
