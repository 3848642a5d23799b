from tests.factories import Api


def test_create_and_retrieve(api: Api) -> None:
    created = api.create_invoice(reference="order-1")
    assert created["status"] == "created"
    fetched = api.get(f"/v1/invoices/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == created
