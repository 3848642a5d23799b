"""The status table, health endpoints, OpenAPI and the documentation page."""

from fastapi.testclient import TestClient

from tests.api.helpers import INVOICE_KEYS, assert_problem

# DESIGN §3: (status, final, sleeping), in the order of the table.
STATUSES = [
    ("draft", False, False),
    ("created", False, False),
    ("processing", False, True),
    ("process_pending", False, True),
    ("processed", False, False),
    ("partially_processed", False, False),
    ("process_failed", True, False),
    ("expired", True, False),
    ("terminated", True, False),
    ("cancelled", True, False),
    ("refunding", False, True),
    ("refund_pending", False, True),
    ("partially_refunded", False, False),
    ("refunded", True, False),
    ("refund_failed", False, False),
]

# DESIGN §3 "Main transitions": each must be a row of the table.
MAIN_TRANSITIONS = [
    (None, "created", "create"),
    (None, "draft", "create_draft"),
    ("draft", "created", "finalize"),
    ("draft", "cancelled", "cancel"),
    ("created", "cancelled", "cancel"),
    ("created", "terminated", "payer_abort"),
    ("created", "expired", "expire"),
    ("partially_processed", "expired", "expire"),
    ("created", "processing", "attempt_start"),
    ("partially_processed", "processing", "attempt_start"),
    ("processing", "processed", "payment_succeeded"),
    ("processing", "partially_processed", "payment_partial"),
    ("processing", "process_pending", "payment_pending"),
    ("processing", "created", "payment_failed"),
    ("processing", "process_failed", "attempts_exhausted"),
    ("process_pending", "processed", "payment_succeeded"),
    ("process_pending", "partially_processed", "payment_partial"),
    ("process_pending", "created", "payment_failed"),
    ("process_pending", "process_failed", "attempts_exhausted"),
    ("processed", "cancelled", "cancel_authorization"),
    ("processed", "refunding", "refund_start"),
    ("expired", "refunding", "refund_start"),
    ("terminated", "refunding", "refund_start"),
    ("refunding", "refunded", "refund_succeeded"),
    ("refunding", "partially_refunded", "refund_partial"),
    ("refunding", "refund_pending", "refund_pending"),
    ("refunding", "refund_failed", "refund_failed"),
    ("refund_pending", "refunded", "refund_succeeded"),
    ("refund_pending", "partially_refunded", "refund_partial"),
    ("refund_pending", "refund_failed", "refund_failed"),
]


def test_invoice_statuses_table(client: TestClient) -> None:
    response = client.get("/v1/invoice_statuses")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    table = response.json()
    assert table["object"] == "invoice_status_table"
    statuses = table["statuses"]
    assert len(statuses) == 15
    assert [(s["status"], s["final"], s["sleeping"]) for s in statuses] == STATUSES
    for status in statuses:
        assert set(status) == {"status", "final", "sleeping", "description"}
        assert isinstance(status["description"], str) and status["description"]


def test_transitions_table(client: TestClient) -> None:
    table = client.get("/v1/invoice_statuses").json()
    names = {s["status"] for s in table["statuses"]}
    final = {s["status"] for s in table["statuses"] if s["final"]}
    rows = [(t["from"], t["to"], t["trigger"]) for t in table["transitions"]]
    assert len(rows) == len(set(rows)), "a transition is listed twice"
    for row in MAIN_TRANSITIONS:
        assert row in rows, row
    for transition in table["transitions"]:
        assert set(transition) == {"from", "to", "trigger", "event"}
        assert transition["from"] is None or transition["from"] in names
        assert transition["to"] in names
        assert transition["event"].startswith("invoice.")
    events = {(t["from"], t["to"], t["trigger"]): t["event"] for t in table["transitions"]}
    assert events[(None, "created", "create")] == "invoice.created"
    assert events[(None, "draft", "create_draft")] == "invoice.created"
    assert events[("draft", "created", "finalize")] == "invoice.finalized"
    assert events[("created", "cancelled", "cancel")] == "invoice.cancelled"
    assert events[("created", "expired", "expire")] == "invoice.expired"
    # Creation is the only way in; nothing leads back to draft.
    assert {r[1] for r in rows if r[0] is None} == {"created", "draft"}
    assert all(r[1] != "draft" for r in rows if r[0] is not None)
    # Final statuses change no more, except that money an expired or terminated invoice
    # received stays refundable (DESIGN §3, footnote).
    for source, target, trigger in rows:
        if source in final:
            assert source in ("expired", "terminated"), (source, target, trigger)
            assert (target, trigger) == ("refunding", "refund_start")
    # Every status can be reached.
    assert {r[1] for r in rows} == names


def test_invoice_statuses_needs_no_key_and_is_stable(client: TestClient) -> None:
    first = client.get("/v1/invoice_statuses")
    second = client.get("/v1/invoice_statuses", headers={"Authorization": "Bearer nonsense"})
    assert second.status_code == 200
    assert first.content == second.content


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"].startswith("req_")


def test_readyz(client: TestClient, backend: str) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": backend}


def test_request_id_header_is_echoed_or_made(client: TestClient) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-Id": "abc.123"}).headers["x-request-id"]
        == "abc.123"
    )
    made = client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert made.headers["x-request-id"].startswith("req_")
    other = client.get("/healthz")
    assert other.headers["x-request-id"] != made.headers["x-request-id"]


def test_openapi_lists_the_invoice_api(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "Quittance"
    paths = document["paths"]
    expected = {
        "/v1/invoices": {"get", "post"},
        "/v1/invoices/{invoice_id}": {"get", "patch"},
        "/v1/invoices/{invoice_id}/finalize": {"post"},
        "/v1/invoices/{invoice_id}/cancel": {"post"},
        "/v1/invoices/{invoice_id}/events": {"get"},
        "/v1/test_helpers/invoices/{invoice_id}/expire": {"post"},
        "/v1/invoice_statuses": {"get"},
        "/v1/events": {"get"},
        "/v1/events/{event_id}": {"get"},
        "/v1/settings/payment_options": {"get", "patch"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    create = paths["/v1/invoices"]["post"]
    assert "201" in create["responses"]
    schema_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema_ref.endswith("/InvoiceCreate")
    schemas = document["components"]["schemas"]
    assert {"amount", "currency", "line_items", "lifetime"} <= set(
        schemas["InvoiceCreate"]["properties"]
    )
    invoice_ref = paths["/v1/invoices/{invoice_id}"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]["$ref"]
    invoice_schema = schemas[invoice_ref.rsplit("/", 1)[1]]
    assert invoice_schema["title"] == "Invoice"
    assert set(invoice_schema["properties"]) == INVOICE_KEYS
    list_params = {p["name"] for p in paths["/v1/invoices"]["get"]["parameters"]}
    assert {
        "status", "reference", "customer_email", "currency", "amount_gte", "amount_lte",
        "created_gte", "created_lte", "q", "limit", "starting_after", "ending_before",
    } <= list_params  # fmt: skip
    idempotency = {p["name"].lower() for p in create.get("parameters", []) if p["in"] == "header"}
    assert "idempotency-key" in idempotency


def test_docs_page(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing-here"), 404, "not_found")
    assert_problem(client.delete("/v1/invoice_statuses"), 405, "method_not_allowed")
