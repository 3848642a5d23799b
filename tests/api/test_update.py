"""PATCH /v1/invoices/{id}, finalize and cancel."""

import threading
from datetime import timedelta
from typing import Any

import pytest

from quittance.db.uow import Database
from tests.api.helpers import assert_problem, ts, unchanged
from tests.factories import Api, snapshot


def _patch_ok(api: Api, invoice_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.patch(f"/v1/invoices/{invoice_id}", json=body)
    assert response.status_code == 200, response.text
    patched: dict[str, Any] = response.json()
    assert api.get(f"/v1/invoices/{invoice_id}").json() == patched
    return patched


def _statuses(api: Api, invoice_id: str) -> list[tuple[str, str | None, str | None, str | None]]:
    events = api.get(f"/v1/invoices/{invoice_id}/events").json()["data"]
    return [(e["type"], e["previous_status"], e["status"], e["trigger"]) for e in events]


def test_patch_draft_fields(api: Api) -> None:
    draft = api.create_invoice(status="draft", reference="r-1", description="first")
    patched = _patch_ok(
        api,
        draft["id"],
        {
            "reference": "r-2",
            "description": "second",
            "currency": "jpy",
            "customer": {"email": "ada@example.com", "name": "Ada", "country": "gb"},
            "return_url": "https://shop.example/done",
            "lifetime": 600,
            "attempts_limit": 2,
            "metadata": {"k": "v"},
        },
    )
    assert patched == {
        **draft,
        "reference": "r-2",
        "description": "second",
        "currency": "JPY",
        "customer": {"email": "ada@example.com", "name": "Ada", "country": "GB"},
        "return_url": "https://shop.example/done",
        "lifetime": 600,
        "attempts_limit": 2,
        "metadata": {"k": "v"},
        "updated_at": patched["updated_at"],
    }
    assert ts(patched["updated_at"]) >= ts(draft["updated_at"])
    assert patched["status"] == "draft"
    assert patched["expires_at"] is None


def test_patch_only_changes_the_fields_given(api: Api) -> None:
    draft = api.create_invoice(
        status="draft",
        reference="keep",
        description="keep too",
        customer={"email": "ada@example.com"},
        metadata={"a": "1"},
    )
    patched = _patch_ok(api, draft["id"], {"description": "new"})
    assert patched == {**draft, "description": "new", "updated_at": patched["updated_at"]}


def test_patch_can_clear_optional_fields(api: Api) -> None:
    draft = api.create_invoice(
        status="draft",
        reference="r",
        description="d",
        customer={"email": "ada@example.com"},
        return_url="https://shop.example/r",
        metadata={"a": "1"},
    )
    patched = _patch_ok(
        api,
        draft["id"],
        {
            "reference": None,
            "description": None,
            "customer": None,
            "return_url": None,
            "metadata": {},
        },
    )
    assert (patched["reference"], patched["description"], patched["customer"]) == (None,) * 3
    assert (patched["return_url"], patched["metadata"]) == (None, {})


def test_patch_switches_between_amount_and_line_items(api: Api, db: Database) -> None:
    draft = api.create_invoice(status="draft", amount=1000)
    assert snapshot(db, api.merchant.id)["lines"] == 0

    with_lines = _patch_ok(
        api,
        draft["id"],
        {
            "line_items": [
                {"description": "Mug", "quantity": 2, "unit_amount": 1250, "tax_rate": "19"},
                {"description": "Card", "unit_amount": 199},
            ]
        },
    )
    assert with_lines["amount"] == 3174  # 2500 + 475 + 199
    assert with_lines["amount_due"] == 3174
    untouched = {"quantity_cancelled": 0, "quantity_delivered": 0, "quantity_refunded": 0}
    assert with_lines["line_items"] == [
        {"id": f"li_{draft['id'][4:]}_0", "description": "Mug", "quantity": 2,
         "unit_amount": 1250, "tax_rate": "19", "amount_net": 2500, "amount_tax": 475,
         "amount": 2975, **untouched},
        {"id": f"li_{draft['id'][4:]}_1", "description": "Card", "quantity": 1,
         "unit_amount": 199, "tax_rate": "0", "amount_net": 199, "amount_tax": 0, "amount": 199,
         **untouched},
    ]  # fmt: skip
    assert snapshot(db, api.merchant.id)["lines"] == 2

    replaced = _patch_ok(
        api,
        draft["id"],
        {
            "line_items": [
                {"description": "Tea", "quantity": 3, "unit_amount": 333, "tax_rate": "7"}
            ]
        },
    )
    assert replaced["amount"] == 1069  # 999 + 69.93 -> 70
    assert [line["description"] for line in replaced["line_items"]] == ["Tea"]
    assert snapshot(db, api.merchant.id)["lines"] == 1

    back = _patch_ok(api, draft["id"], {"amount": 500})
    assert back["amount"] == 500
    assert back["amount_due"] == 500
    assert back["line_items"] == []
    assert snapshot(db, api.merchant.id)["lines"] == 0

    # A draft created with line items can switch to an amount too.
    other = api.post(
        "/v1/invoices",
        json={
            "currency": "EUR",
            "status": "draft",
            "line_items": [{"description": "A", "unit_amount": 100}],
        },
    ).json()
    assert _patch_ok(api, other["id"], {"amount": 42})["line_items"] == []
    assert snapshot(db, api.merchant.id)["lines"] == 0


def test_patch_currency_keeps_line_items(api: Api) -> None:
    draft = api.post(
        "/v1/invoices",
        json={
            "currency": "EUR",
            "status": "draft",
            "line_items": [{"description": "A", "unit_amount": 100, "tax_rate": "10"}],
        },
    ).json()
    patched = _patch_ok(api, draft["id"], {"currency": "KWD"})
    assert patched["currency"] == "KWD"
    assert patched["line_items"] == draft["line_items"]
    assert patched["amount"] == 110


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"amount": 0}, "amount", "amount_not_positive"),
        ({"amount": 12.5}, "amount", "amount_not_integer"),
        ({"amount": "5"}, "amount", "invalid_type"),
        ({"amount": None}, "body", "field_not_nullable"),
        ({"currency": None}, "body", "field_not_nullable"),
        ({"lifetime": None}, "body", "field_not_nullable"),
        ({"line_items": None}, "body", "field_not_nullable"),
        ({"currency": "XYZ"}, "currency", "currency_not_supported"),
        (
            {"amount": 5, "line_items": [{"description": "a", "unit_amount": 1}]},
            "body",
            "amount_and_line_items",
        ),
        ({"line_items": []}, "line_items", "too_few_items"),
        ({"colour": "red"}, "colour", "unknown_field"),
        ({"lifetime": 10}, "lifetime", "out_of_range"),
        ({"status": "created"}, "status", "invalid_value"),
        ({"status": "draft"}, "status", "invalid_value"),
        ({"status": "expired"}, "status", "invalid_value"),
        ({"status": None}, "body", "invalid_value"),
        ({"status": "cancelled", "reference": "x"}, "body", "status_with_other_fields"),
        ({"status": "cancelled", "amount": 5}, "body", "status_with_other_fields"),
    ],
)
def test_invalid_patch_changes_nothing(
    api: Api, db: Database, body: dict[str, Any], field: str, code: str
) -> None:
    draft = api.create_invoice(status="draft")
    created = api.create_invoice()
    for invoice in (draft, created):
        with unchanged(db, api.merchant.id):
            response = api.patch(f"/v1/invoices/{invoice['id']}", json=body)
        assert_problem(response, 422, code, field=field)
        assert api.get(f"/v1/invoices/{invoice['id']}").json() == invoice


def test_line_items_adding_up_to_zero_are_refused_on_patch(api: Api, db: Database) -> None:
    draft = api.create_invoice(status="draft")
    with unchanged(db, api.merchant.id):
        response = api.patch(
            f"/v1/invoices/{draft['id']}",
            json={"line_items": [{"description": "free", "unit_amount": 0}]},
        )
    assert_problem(response, 422, "amount_not_positive", field="line_items")


def test_patch_non_draft_is_refused(api: Api, db: Database) -> None:
    created = api.create_invoice(reference="fixed")
    cancelled = api.create_invoice()
    api.post(f"/v1/invoices/{cancelled['id']}/cancel")
    expired = api.create_invoice()
    api.post(f"/v1/test_helpers/invoices/{expired['id']}/expire")
    for invoice_id, status in (
        (created["id"], "created"),
        (cancelled["id"], "cancelled"),
        (expired["id"], "expired"),
    ):
        for body in ({"reference": "changed"}, {"amount": 1}, {}):
            with unchanged(db, api.merchant.id):
                response = api.patch(f"/v1/invoices/{invoice_id}", json=body)
            problem = assert_problem(response, 409, "invoice_not_draft")
            assert problem["invoice_status"] == status
    assert api.get(f"/v1/invoices/{created['id']}").json() == created


def test_patch_unknown_invoice_is_404(api: Api, db: Database) -> None:
    missing = "inv_01JD3Z7Q8W0000000000000000"
    with unchanged(db, api.merchant.id):
        response = api.patch(f"/v1/invoices/{missing}", json={"reference": "x"})
    assert_problem(response, 404, "invoice_not_found")
    with unchanged(db, api.merchant.id):
        response = api.patch(f"/v1/invoices/{missing}", json={"status": "cancelled"})
    assert_problem(response, 404, "invoice_not_found")


def test_finalize_draft(api: Api) -> None:
    draft = api.create_invoice(status="draft", lifetime=900)
    response = api.post(f"/v1/invoices/{draft['id']}/finalize")
    assert response.status_code == 200, response.text
    final = response.json()
    assert final["status"] == "created"
    finalized_at = ts(final["finalized_at"])
    assert finalized_at >= ts(draft["created_at"])
    assert ts(final["expires_at"]) - finalized_at == timedelta(seconds=900)
    assert ts(final["updated_at"]) >= finalized_at
    assert final["created_at"] == draft["created_at"]
    assert final["redirect_url"] == draft["redirect_url"]
    assert {k: v for k, v in final.items() if k not in ("status", "updated_at", "finalized_at",
                                                        "expires_at")} == {
        k: v for k, v in draft.items() if k not in ("status", "updated_at", "finalized_at",
                                                    "expires_at")
    }  # fmt: skip
    assert api.get(f"/v1/invoices/{draft['id']}").json() == final
    assert _statuses(api, draft["id"]) == [
        ("invoice.created", None, "draft", "create_draft"),
        ("invoice.finalized", "draft", "created", "finalize"),
    ]


def test_finalize_uses_the_lifetime_patched_into_the_draft(api: Api) -> None:
    draft = api.create_invoice(status="draft")
    _patch_ok(api, draft["id"], {"lifetime": 120})
    final = api.post(f"/v1/invoices/{draft['id']}/finalize").json()
    assert ts(final["expires_at"]) - ts(final["finalized_at"]) == timedelta(seconds=120)


def test_finalize_twice_is_refused(api: Api, db: Database) -> None:
    draft = api.create_invoice(status="draft")
    assert api.post(f"/v1/invoices/{draft['id']}/finalize").status_code == 200
    with unchanged(db, api.merchant.id):
        response = api.post(f"/v1/invoices/{draft['id']}/finalize")
    problem = assert_problem(response, 409, "invoice_not_draft")
    assert problem["invoice_status"] == "created"


def test_finalize_non_drafts_is_refused(api: Api, db: Database) -> None:
    created = api.create_invoice()
    cancelled_draft = api.create_invoice(status="draft")
    api.post(f"/v1/invoices/{cancelled_draft['id']}/cancel")
    for invoice_id, status in ((created["id"], "created"), (cancelled_draft["id"], "cancelled")):
        with unchanged(db, api.merchant.id):
            response = api.post(f"/v1/invoices/{invoice_id}/finalize")
        assert assert_problem(response, 409, "invoice_not_draft")["invoice_status"] == status
    with unchanged(db, api.merchant.id):
        response = api.post("/v1/invoices/inv_01JD3Z7Q8W0000000000000000/finalize")
    assert_problem(response, 404, "invoice_not_found")


def _cancel(api: Api, invoice_id: str, how: str) -> Any:
    if how == "post":
        return api.post(f"/v1/invoices/{invoice_id}/cancel")
    return api.patch(f"/v1/invoices/{invoice_id}", json={"status": "cancelled"})


@pytest.mark.parametrize("how", ["post", "patch"])
@pytest.mark.parametrize("start", ["draft", "created"])
def test_cancel(api: Api, how: str, start: str) -> None:
    invoice = api.create_invoice(status="draft") if start == "draft" else api.create_invoice()
    response = _cancel(api, invoice["id"], how)
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled == {**invoice, "status": "cancelled", "updated_at": cancelled["updated_at"]}
    assert ts(cancelled["updated_at"]) >= ts(invoice["updated_at"])
    assert api.get(f"/v1/invoices/{invoice['id']}").json() == cancelled
    first = ("invoice.created", None, start, "create" if start == "created" else "create_draft")
    assert _statuses(api, invoice["id"]) == [
        first,
        ("invoice.cancelled", start, "cancelled", "cancel"),
    ]


@pytest.mark.parametrize("how", ["post", "patch"])
@pytest.mark.parametrize("end", ["cancelled", "expired"])
def test_cancel_final_invoice_is_refused(api: Api, db: Database, how: str, end: str) -> None:
    invoice = api.create_invoice()
    if end == "cancelled":
        assert api.post(f"/v1/invoices/{invoice['id']}/cancel").status_code == 200
    else:
        assert api.post(f"/v1/test_helpers/invoices/{invoice['id']}/expire").status_code == 200
    before = api.get(f"/v1/invoices/{invoice['id']}").json()
    with unchanged(db, api.merchant.id):
        response = _cancel(api, invoice["id"], how)
    problem = assert_problem(response, 409, "invoice_not_cancellable")
    assert problem["invoice_status"] == end
    assert api.get(f"/v1/invoices/{invoice['id']}").json() == before


def test_cancel_unknown_invoice_is_404(api: Api, db: Database) -> None:
    with unchanged(db, api.merchant.id):
        response = api.post("/v1/invoices/inv_01JD3Z7Q8W0000000000000000/cancel")
    assert_problem(response, 404, "invoice_not_found")
    with unchanged(db, api.merchant.id):
        response = api.post("/v1/invoices/not-an-id/cancel")
    assert_problem(response, 404, "invoice_not_found")


def test_cancel_with_idempotency_key_replays(api: Api, db: Database) -> None:
    invoice = api.create_invoice()
    key = {"Idempotency-Key": "cancel-1"}
    first = api.post(f"/v1/invoices/{invoice['id']}/cancel", headers=key)
    assert first.status_code == 200
    with unchanged(db, api.merchant.id):
        again = api.post(f"/v1/invoices/{invoice['id']}/cancel", headers=key)
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    # Without the key the second cancel is a conflict.
    with unchanged(db, api.merchant.id):
        response = api.post(f"/v1/invoices/{invoice['id']}/cancel")
    assert_problem(response, 409, "invoice_not_cancellable")


def _race(api: Api, method: str, path: str, body: Any = None, n: int = 8) -> list[Any]:
    """Send `n` identical requests at once, from `n` threads."""
    barrier = threading.Barrier(n)
    responses: list[Any] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        response = api.patch(path, json=body) if method == "PATCH" else api.post(path, json=body)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=send) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(responses) == n
    return responses


def test_concurrent_finalize_succeeds_once(api: Api) -> None:
    draft = api.create_invoice(status="draft")
    responses = _race(api, "POST", f"/v1/invoices/{draft['id']}/finalize")
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 7, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "invoice_not_draft")
    assert _statuses(api, draft["id"]) == [
        ("invoice.created", None, "draft", "create_draft"),
        ("invoice.finalized", "draft", "created", "finalize"),
    ]


@pytest.mark.parametrize("how", ["post", "patch"])
def test_concurrent_cancel_succeeds_once(api: Api, how: str) -> None:
    invoice = api.create_invoice()
    if how == "post":
        responses = _race(api, "POST", f"/v1/invoices/{invoice['id']}/cancel")
    else:
        responses = _race(api, "PATCH", f"/v1/invoices/{invoice['id']}", {"status": "cancelled"})
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 7, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "invoice_not_cancellable")
    assert _statuses(api, invoice["id"]) == [
        ("invoice.created", None, "created", "create"),
        ("invoice.cancelled", "created", "cancelled", "cancel"),
    ]


def test_concurrent_finalize_and_cancel_of_a_draft(api: Api) -> None:
    """Whichever wins, the history is one consistent chain of table rows."""
    draft = api.create_invoice(status="draft")
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def run(name: str, path: str) -> None:
        barrier.wait()
        results[name] = api.post(path)

    threads = [
        threading.Thread(target=run, args=("finalize", f"/v1/invoices/{draft['id']}/finalize")),
        threading.Thread(target=run, args=("cancel", f"/v1/invoices/{draft['id']}/cancel")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results["cancel"].status_code == 200, results["cancel"].text
    history = _statuses(api, draft["id"])
    if results["finalize"].status_code == 200:
        assert history == [
            ("invoice.created", None, "draft", "create_draft"),
            ("invoice.finalized", "draft", "created", "finalize"),
            ("invoice.cancelled", "created", "cancelled", "cancel"),
        ]
    else:
        assert_problem(results["finalize"], 409, "invoice_not_draft")
        assert history == [
            ("invoice.created", None, "draft", "create_draft"),
            ("invoice.cancelled", "draft", "cancelled", "cancel"),
        ]
    assert api.get(f"/v1/invoices/{draft['id']}").json()["status"] == "cancelled"
