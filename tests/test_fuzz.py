"""No request of any shape gets a 500, and a refused request stores nothing."""

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quittance.db.uow import Database
from tests.factories import Api, snapshot

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ["amount", "currency", "line_items", "reference", "description", "customer",
          "return_url", "lifetime", "attempts_limit", "metadata", "status"]  # fmt: skip
line_item = st.fixed_dictionaries(
    {},
    optional={
        "description": json_values, "quantity": json_values, "unit_amount": json_values,
        "tax_rate": json_values,
    },
)  # fmt: skip
invoice_bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            **{name: json_values for name in FIELDS},
            "amount": st.integers(min_value=-(10**20), max_value=10**20) | json_values,
            "currency": st.sampled_from(["EUR", "eur", "JPY", "KWD", "XXX", "", "EURO"]),
            "line_items": st.lists(line_item, max_size=3) | json_values,
        },
    )
    | json_values
)
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _check(api: Api, db: Database, method: str, path: str, body: Any) -> None:
    before = snapshot(db, api.merchant.id)
    response = api.client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {api.merchant.test_key}"}
    )
    assert response.status_code < 500, (body, response.text)
    if response.status_code >= 400:
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert problem["code"] and problem["request_id"] and problem["detail"]
        assert snapshot(db, api.merchant.id) == before, (body, response.text)


@SETTINGS
@given(body=invoice_bodies)
def test_create_invoice_never_fails_with_500(api: Api, db: Database, body: Any) -> None:
    _check(api, db, "POST", "/v1/invoices", body)


@SETTINGS
@given(body=invoice_bodies)
def test_update_draft_never_fails_with_500(api: Api, db: Database, body: Any) -> None:
    draft = api.create_invoice(status="draft")
    _check(api, db, "PATCH", f"/v1/invoices/{draft['id']}", body)


@SETTINGS
@given(body=json_values | st.dictionaries(st.sampled_from(
    ["invoice_lifetime", "attempts_limit", "include_commission", "descriptor_template",
     "return_url", "default_locale"]), json_values))  # fmt: skip
def test_payment_options_never_fail_with_500(api: Api, db: Database, body: Any) -> None:
    _check(api, db, "PATCH", "/v1/settings/payment_options", body)


@SETTINGS
@given(
    params=st.dictionaries(
        st.sampled_from(["status", "currency", "amount_gte", "amount_lte", "created_gte",
                         "created_lte", "q", "limit", "starting_after", "ending_before",
                         "reference", "customer_email"]),
        st.text(max_size=40),
        max_size=4,
    )
)  # fmt: skip
def test_list_never_fails_with_500(api: Api, params: dict[str, str]) -> None:
    response = api.get("/v1/invoices", params=params)
    assert response.status_code < 500, (params, response.text)
    assert response.status_code in (200, 400, 422), (params, response.text)


@SETTINGS
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "PUT", "DELETE"]),
    path=st.sampled_from(["/v1/invoices/inv_x", "/v1/invoices/%00", "/v1/nope", "/v1/events/e",
                          "/v1/invoices/inv_x/finalize", "/v1/invoices/inv_x/cancel"]),
    raw=st.binary(max_size=64),
)  # fmt: skip
def test_any_method_path_and_raw_body_is_a_4xx(
    api: Api, method: str, path: str, raw: bytes
) -> None:
    response = api.client.request(
        method, path, content=raw,
        headers={"Authorization": f"Bearer {api.merchant.test_key}",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["code"]
