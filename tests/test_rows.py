"""Rows inserted through the driver read back as SQLAlchemy wrote them, and a refused insert
raises SQLAlchemy's error and leaves nothing behind (both databases)."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from quittance import clock
from quittance.db.rows import insert_rows
from quittance.db.uow import Database
from quittance.domain.ids import new_ordered_id
from quittance.models import Event
from tests.factories import MerchantFactory


def _event(merchant_id: str, event_id: str, data: dict[str, object]) -> Event:
    return Event(
        id=event_id, merchant_id=merchant_id, livemode=False, type="invoice.created",
        invoice_id=None, previous_status=None, status="created", trigger="create", data=data,
        created_at=clock.now(),
    )  # fmt: skip


def test_rows_read_back_with_their_types(db: Database, merchants: MerchantFactory) -> None:
    merchant = merchants.create()
    event_id = new_ordered_id("evt")
    data = {"object": {"amount": 1999, "nested": [1, "two", None]}, "flag": True}
    written = _event(merchant.id, event_id, data)
    with db.write() as session:
        insert_rows(session, [written])
    with db.read() as session:
        row = session.get(Event, event_id)
        assert row is not None
        assert (row.data, row.livemode, row.trigger) == (data, False, "create")
        assert row.created_at == written.created_at and row.created_at.tzinfo is not None


def test_a_refused_insert_raises_sqlalchemys_error_and_stores_nothing(
    db: Database, merchants: MerchantFactory
) -> None:
    merchant = merchants.create()
    event_id = new_ordered_id("evt")
    with db.write() as session:
        insert_rows(session, [_event(merchant.id, event_id, {})])
    second = new_ordered_id("evt")
    with pytest.raises(IntegrityError), db.write() as session:
        insert_rows(session, [_event(merchant.id, second, {})])
        insert_rows(session, [_event(merchant.id, event_id, {})])  # the same id again
    with db.read() as session:
        count = session.scalar(
            select(func.count()).select_from(Event).where(Event.merchant_id == merchant.id)
        )
    assert count == 1  # the first insert of the failed unit of work was rolled back too
    with db.write() as session:  # the connection is usable again
        insert_rows(session, [_event(merchant.id, second, {})])
