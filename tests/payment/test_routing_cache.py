"""The pay path's cache of method routings: forgotten on every change, never holding a read
of a transaction that did not commit."""

import pytest
from sqlalchemy.orm import Session

from quittance.db.cache import MISSING, MerchantCache
from quittance.db.uow import Database
from quittance.models import MethodConfig, ProviderConnection
from quittance.payment.routing import MethodRouting, method_routing
from tests.factories import Api
from tests.payment.helpers import SUCCEEDS, card, paid, pay, problem


def test_a_method_setting_changed_through_the_api_applies_to_the_next_pay(papi: Api) -> None:
    assert paid(papi, papi.create_invoice()["id"], card(SUCCEEDS))["status"] == "succeeded"
    response = papi.patch("/v1/settings/methods/card", json={"enabled": False})
    assert response.status_code == 200, response.text
    created = papi.create_invoice()
    problem(pay(papi, created["id"], card(SUCCEEDS)), 422, "payment_method_not_available")
    response = papi.patch("/v1/settings/methods/card", json={"enabled": True, "max_amount": 1000})
    assert response.status_code == 200, response.text
    problem(pay(papi, created["id"], card(SUCCEEDS)), 422, "payment_method_not_available")
    assert paid(papi, papi.create_invoice(amount=1000)["id"], card(SUCCEEDS))["amount"] == 1000


def test_a_paused_connection_applies_to_the_next_pay(papi: Api, db: Database) -> None:
    assert paid(papi, papi.create_invoice()["id"], card(SUCCEEDS))["status"] == "succeeded"
    with db.write() as session:
        config = session.get(MethodConfig, (papi.merchant.id, False, "card"))
        assert config is not None
        connection = session.get(ProviderConnection, config.connection_ids[0])
        assert connection is not None
        connection.enabled = False
    created = papi.create_invoice()
    problem(pay(papi, created["id"], card(SUCCEEDS)), 422, "payment_method_not_available")


def test_a_routing_read_of_a_rolled_back_change_is_not_kept(papi: Api, db: Database) -> None:
    key = (papi.merchant.id, False, "card")
    with pytest.raises(RuntimeError), db.write() as session:
        config = session.get(MethodConfig, key)
        assert config is not None
        config.enabled = False
        session.flush()
        seen = method_routing(session, *key)
        assert seen is not None and not seen.enabled  # its own change, not committed
        raise RuntimeError("roll back")
    with db.read() as session:
        kept = method_routing(session, *key)
    assert kept is not None and kept.enabled
    assert paid(papi, papi.create_invoice()["id"], card(SUCCEEDS))["status"] == "succeeded"


def test_a_value_read_before_a_change_is_not_stored_after_it() -> None:
    cache: MerchantCache[MethodRouting] = MerchantCache("test")
    value = MethodRouting(True, None, None, None, None, ("pcn_x",), ())
    generation = cache.generation
    cache.forget("mer_x", False)  # a change committed while the value was being read
    with Session() as session:
        cache.put(session, "mer_x", False, "card", value, generation)
        assert cache.get("mer_x", False, "card") is MISSING
        cache.put(session, "mer_x", False, "card", value, cache.generation)
    assert cache.get("mer_x", False, "card") == value
