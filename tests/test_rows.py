"""Rows inserted through the driver read back as SQLAlchemy wrote them, and a refused insert
raises SQLAlchemy's error and leaves nothing behind (both databases)."""

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapper, Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from quittance import clock
from quittance.db.base import Base
from quittance.db.rows import (
    build,
    column_keys,
    defer_writes,
    discard_deferred,
    family_read,
    fetch,
    flush_deferred,
    insert_rows,
    row_version,
    rows_read,
    select_family,
    select_rows,
    write_back,
)
from quittance.db.uow import Database
from quittance.domain.ids import new_ordered_id
from quittance.invoice.repository import lock_detached
from quittance.models import Event, Invoice, InvoiceLineItem, Payment
from tests.factories import Api, MerchantFactory


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


# --- select_rows, build and write_back -------------------------------------------------------

CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}
DECLINED_CARD = {**CARD, "number": "4000000000000002"}


def _columns(obj: Base, model: type[Base]) -> dict[str, tuple[object, ...]]:
    """Each column attribute's value with its type (so `0` is not taken for `False`) and, for a
    datetime, its UTC offset (aware datetimes compare equal across time zones)."""
    mapper: Mapper[Any] = sa_inspect(model)
    columns: dict[str, tuple[object, ...]] = {}
    for prop in mapper.column_attrs:
        value = getattr(obj, prop.key)
        offset = value.utcoffset() if isinstance(value, datetime) else None
        columns[prop.key] = (type(value), value, offset)
    return columns


def _pay(api: Api, invoice_id: str, card: dict[str, object]) -> dict[str, Any]:
    body = {"payment_method": {"type": "card", "card": card}}
    response = api.post(f"/v1/invoices/{invoice_id}/pay", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _orm_invoice(db: Database, invoice_id: str) -> tuple[Invoice, list[Payment]]:
    with db.read() as session:
        invoice = session.get(Invoice, invoice_id, options=[selectinload(Invoice.line_items)])
        assert invoice is not None
        payments = session.scalars(
            select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.attempt)
        ).all()
        return invoice, list(payments)


def _assert_reads_as_the_orm(db: Database, merchant_id: str, invoice_id: str) -> None:
    loaded, loaded_payments = _orm_invoice(db, invoice_id)
    with db.write() as session:
        invoices = select_rows(session, Invoice, {"id": invoice_id, "merchant_id": merchant_id})
        locked = lock_detached(session, merchant_id, invoice_id, livemode=False)
        payments = select_rows(
            session, Payment, {"invoice_id": invoice_id, "merchant_id": merchant_id},
            order_by="attempt",
        )  # fmt: skip
        assert locked is not None
        assert not session.new and not session.dirty and len(session.identity_map) == 0
    assert len(invoices) == 1 and loaded_payments
    for read in (invoices[0], locked):
        assert sa_inspect(read).detached
        assert sa_inspect(read).identity == (invoice_id,)
        assert _columns(read, Invoice) == _columns(loaded, Invoice)
    lines = locked.line_items  # attached: no lazy load (the relationship raises on one)
    assert [line.position for line in lines] == sorted(line.position for line in lines)
    assert [_columns(line, InvoiceLineItem) for line in lines] == [
        _columns(line, InvoiceLineItem) for line in loaded.line_items
    ]
    assert all(sa_inspect(line).detached for line in lines)
    assert [_columns(p, Payment) for p in payments] == [
        _columns(p, Payment) for p in loaded_payments
    ]
    assert all(sa_inspect(p).detached for p in payments)


def test_select_rows_reads_what_an_orm_load_reads(
    db: Database, api: Api, merchants: MerchantFactory
) -> None:
    created = api.create_invoice(
        amount=None, currency="EUR", reference="order-7", description="Tea and cups",
        customer={"email": "ada@example.com", "name": "Ada", "country": "DE"},
        metadata={"order": "7", "channel": "web"},
        line_items=[
            {"description": "Tea", "quantity": 3, "unit_amount": 700, "tax_rate": "7"},
            {"description": "Cup", "quantity": 2, "unit_amount": 1250, "tax_rate": "19.5"},
            {"description": "Gift wrap", "unit_amount": 300},
        ],
    )  # fmt: skip
    invoice_id, merchant_id = created["id"], api.merchant.id

    declined = _pay(api, invoice_id, DECLINED_CARD)
    assert declined["status"] == "failed"
    loaded, _ = _orm_invoice(db, invoice_id)
    assert loaded.last_payment_error is not None and loaded.attempts_count == 1
    _assert_reads_as_the_orm(db, merchant_id, invoice_id)

    succeeded = _pay(api, invoice_id, CARD)
    assert succeeded["status"] == "succeeded", succeeded
    loaded, payments = _orm_invoice(db, invoice_id)
    assert loaded.status == "processed" and loaded.amount_paid == loaded.amount
    assert loaded.customer_email == "ada@example.com" and loaded.metadata_["order"] == "7"
    assert [line.tax_rate for line in loaded.line_items] == [
        Decimal("7"), Decimal("19.5"), Decimal("0")
    ]  # fmt: skip
    assert len(payments) == 2 and payments[1].routing
    _assert_reads_as_the_orm(db, merchant_id, invoice_id)

    other = merchants.create()
    with db.write() as session:
        missing = {"id": new_ordered_id("inv"), "merchant_id": merchant_id}
        assert select_rows(session, Invoice, missing) == []
        assert lock_detached(session, merchant_id, missing["id"]) is None
        # Another merchant's id finds nothing of this one's, nor does the other mode.
        assert select_rows(session, Invoice, {"id": invoice_id, "merchant_id": other.id}) == []
        assert lock_detached(session, other.id, invoice_id) is None
        assert lock_detached(session, merchant_id, invoice_id, livemode=True) is None
        children = {"invoice_id": invoice_id, "merchant_id": other.id}
        assert select_rows(session, InvoiceLineItem, children) == []
        assert select_rows(session, Payment, children) == []


def _invoice_values(merchant_id: str) -> dict[str, Any]:
    """An invoice's columns, some left out to take their defaults (amount_paid, ...)."""
    created = datetime(2030, 5, 17, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    return {
        "merchant_id": merchant_id, "livemode": False, "status": "created", "currency": "EUR",
        "amount": 4200, "payment_currency": "USD", "payment_amount": 4620,
        "exchange_rate": Decimal("1.10000"), "paid_late": True, "reference": "r-1",
        "description": None, "customer_id": None, "customer_email": "bob@example.com",
        "customer_name": "Bob", "customer_country": "FR", "return_url": None, "lifetime": 3600,
        "expires_at": created + timedelta(hours=1), "attempts_limit": 3,
        "last_payment_error": {"code": "card_declined", "message": "No.", "payment": None},
        "metadata_": {"k": "v", "n": [1, 2.5, True, None]}, "search_text": "r-1\nbob",
        "created_at": created, "updated_at": created, "finalized_at": created,
    }  # fmt: skip


def test_build_makes_what_the_constructor_makes_and_inserts_it_as_the_orm_would(
    db: Database, merchants: MerchantFactory
) -> None:
    merchant = merchants.create()
    values = _invoice_values(merchant.id)
    keys = column_keys(Invoice)
    missing = object()
    built = build(Invoice, id=new_ordered_id("inv"), pay_token=uuid.uuid4().hex, **values)
    constructed = Invoice(id=new_ordered_id("inv"), pay_token=uuid.uuid4().hex, **values)
    assert type(built) is Invoice and sa_inspect(built).transient
    differ = {"id", "pay_token"}
    assert {k: built.__dict__.get(k, missing) for k in keys - differ} == {
        k: constructed.__dict__.get(k, missing) for k in keys - differ
    }
    with db.write() as session:
        insert_rows(session, [built])
        session.add(constructed)
    assert sa_inspect(built).transient  # only written, never tracked
    with db.read() as session:
        from_build = session.get(Invoice, built.id)
        from_orm = session.get(Invoice, constructed.id)
        assert from_build is not None and from_orm is not None
        read, expected = _columns(from_build, Invoice), _columns(from_orm, Invoice)
    for key in differ:
        del read[key], expected[key]
    assert read == expected
    assert (from_build.amount_paid, from_build.payments_count, from_build.paid_late) == (0, 0, True)
    assert from_build.created_at == values["created_at"]
    assert from_build.exchange_rate == Decimal("1.1")


def test_build_refuses_an_unknown_column_and_nothing_is_inserted(
    db: Database, merchants: MerchantFactory
) -> None:
    merchant = merchants.create()
    values = _invoice_values(merchant.id)
    invoice_id = new_ordered_id("inv")
    with pytest.raises(TypeError, match="bogus"), db.write() as session:
        insert_rows(session, [build(Invoice, id=invoice_id, pay_token=uuid.uuid4().hex, **values)])
        build(Invoice, id=new_ordered_id("inv"), bogus=1, **values)
    refused: list[dict[str, Any]] = [{"metadata": {}}, {"line_items": []}]
    for unknown in refused:  # a column's name (not its attribute's), a relationship
        with pytest.raises(TypeError):
            build(Invoice, **unknown)
    with db.read() as session:
        count = session.scalar(
            select(func.count()).select_from(Invoice).where(Invoice.merchant_id == merchant.id)
        )
    assert count == 0


def _paid_invoice(api: Api) -> tuple[str, str]:
    created = api.create_invoice(metadata={"a": "b"})
    payment = _pay(api, created["id"], CARD)
    assert payment["status"] == "succeeded", payment
    return created["id"], payment["id"]


def _pending_payment(merchant_id: str, invoice_id: str) -> Payment:
    """A built (not yet inserted) pending payment of the invoice, which nothing refers to."""
    now = clock.now()
    return build(
        Payment, id=new_ordered_id("pay"), merchant_id=merchant_id, livemode=False,
        invoice_id=invoice_id, attempt=99, status="pending", method="card", amount=1,
        currency="EUR", amount_received=0, amount_authorized=0, routing=[],
        created_at=now, updated_at=now,
    )  # fmt: skip


def _orm_payment(db: Database, payment_id: str) -> Payment:
    with db.read() as session:
        payment = session.get(Payment, payment_id)
        assert payment is not None
        return payment


def test_write_back_updates_only_the_changed_columns(db: Database, api: Api) -> None:
    _, payment_id = _paid_invoice(api)
    before = _columns(_orm_payment(db, payment_id), Payment)
    check_at = datetime(2031, 1, 2, 3, 4, 5, 678000, tzinfo=timezone(timedelta(hours=-5)))
    response = {"answer": "changed", "items": [1, None, "x"]}
    with db.write() as session:
        [payment] = select_rows(
            session, Payment, {"id": payment_id, "merchant_id": api.merchant.id}, lock=True
        )
        payment.status = "refunded"
        payment.next_check_at = check_at
        payment.provider_response = response
        payment.amount = payment.amount  # assigned, unchanged
        payment.updated_at = payment.updated_at
        read_code = payment.error_code
        payment.error_code = "temporary"  # changed, then back to what was read
        payment.error_code = read_code
        write_back(session, payment)
        assert sa_inspect(payment).detached
    after = _columns(_orm_payment(db, payment_id), Payment)
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {"status", "next_check_at", "provider_response"}
    assert after["status"][1] == "refunded"
    assert after["next_check_at"][1] == check_at and after["next_check_at"][2] == timedelta(0)
    assert after["provider_response"][1] == response


def test_write_back_without_a_change_writes_nothing(db: Database, api: Api) -> None:
    """No change issues no UPDATE: it would fail on a row that is gone (StaleDataError), and
    after a write_back what it wrote is the object's loaded state again."""
    invoice_id, _ = _paid_invoice(api)
    with db.write() as session:
        [invoice] = select_rows(session, Invoice, {"id": invoice_id})
        payment = _pending_payment(api.merchant.id, invoice_id)
        insert_rows(session, [payment])
    with db.write() as session:
        [payment] = select_rows(session, Payment, {"id": payment.id})
        payment.status = "failed"
        write_back(session, payment)  # written: the row is there
        session.execute(delete(Payment).where(Payment.id == payment.id))
        write_back(session, payment)  # nothing left to write
        payment.status = "failed"
        payment.amount = 1
        write_back(session, payment)  # assigned, not changed
        payment.status = "succeeded"
        with pytest.raises(StaleDataError):
            write_back(session, payment)  # a real change looks for the row, and it is gone
        invoice.status = invoice.status
        write_back(session, invoice)
    with db.read() as session:
        stored = session.get(Invoice, invoice_id)
        assert stored is not None
        assert _columns(stored, Invoice) == _columns(invoice, Invoice)


def test_select_family_refuses_a_where_that_names_several_parents(db: Database, api: Api) -> None:
    first = api.create_invoice(amount=1000, currency="EUR")
    second = api.create_invoice(amount=2000, currency="EUR")
    family = {"attribute": "line_items", "link": {"invoice_id": "id"}, "order_by": "position"}
    with db.read() as session:
        both = {"merchant_id": api.merchant.id, "livemode": False}
        with pytest.raises(ValueError, match="matches 2 rows of Invoice"):
            select_family(session, Invoice, both, **family)
        one = select_family(session, Invoice, {"id": second["id"]}, **family)
        assert one is not None and (one.id, one.amount, one.line_items) == (second["id"], 2000, [])
        assert first["id"] != second["id"]


# --- held back (`defer_writes`, as a group commit's batch runs) ---------------------------------

DEFERRED_KEY = "quittance_deferred_writes"


def _status(session: Session, payment_id: str) -> str:
    [payment] = select_rows(session, Payment, {"id": payment_id})
    return payment.status


def test_a_held_back_write_back_is_seen_by_every_later_read(db: Database, api: Api) -> None:
    """A held-back UPDATE goes out before the next statement of the transaction, whichever way
    that statement comes: a read through the driver, the ORM, Core or a plain SQL string."""
    _, payment_id = _paid_invoice(api)
    where = {"id": payment_id, "merchant_id": api.merchant.id}
    with db.write() as session:
        defer_writes(session)
        [payment] = select_rows(session, Payment, where, lock=True)
        payment.status = "refunded"
        write_back(session, payment)
        assert _status(session, payment_id) == "refunded"  # the driver
        payment.status = "failed"
        write_back(session, payment)
        orm = session.scalar(select(Payment.status).where(Payment.id == payment_id))
        assert orm == "failed"  # the ORM
        payment.status = "pending"
        write_back(session, payment)
        plain = session.connection().execute(
            text("SELECT status FROM payments WHERE id = :id"), {"id": payment_id}
        )
        assert plain.scalar_one() == "pending"  # a plain statement
        payment.status = "canceled"
        write_back(session, payment)
        flush_deferred(session)
        assert DEFERRED_KEY not in session.info
        assert DEFERRED_KEY not in session.connection().info
    assert _orm_payment(db, payment_id).status == "canceled"


def test_held_back_write_backs_of_one_row_are_sent_in_their_order(db: Database, api: Api) -> None:
    """Different sets of changed columns are different UPDATEs; the last value wins."""
    _, payment_id = _paid_invoice(api)
    check_at = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    with db.write() as session:
        defer_writes(session)
        [payment] = select_rows(session, Payment, {"id": payment_id}, lock=True)
        payment.status = "refunded"
        write_back(session, payment)
        payment.status = "failed"
        payment.next_check_at = check_at
        write_back(session, payment)
        payment.status = "pending"
        write_back(session, payment)
        flush_deferred(session)
    stored = _orm_payment(db, payment_id)
    assert (stored.status, stored.next_check_at) == ("pending", check_at)


@pytest.mark.parametrize("commit", [False, True], ids=["sent", "sent-with-the-commit"])
def test_a_held_back_write_back_that_finds_no_row_fails_and_nothing_is_stored(
    db: Database, api: Api, commit: bool
) -> None:
    """Sent with the COMMIT (PostgreSQL, `commit=True`), the write-back's row check is made by
    the statement itself, so the COMMIT does not run."""
    invoice_id, _ = _paid_invoice(api)
    lone = _pending_payment(api.merchant.id, invoice_id)
    with db.write() as session:
        insert_rows(session, [lone])
    before = _columns(_orm_payment(db, lone.id), Payment)
    event_id = new_ordered_id("evt")
    stale = r"matched (0 rows|no row), not 1"
    with pytest.raises(StaleDataError, match=stale), db.write() as session:
        defer_writes(session)
        try:
            [payment] = select_rows(session, Payment, {"id": lone.id}, lock=True)
            session.execute(delete(Payment).where(Payment.id == lone.id))
            insert_rows(session, [_event(api.merchant.id, event_id, {})])
            payment.status = "failed"
            write_back(session, payment)  # held back: its row is gone
            flush_deferred(session, commit=commit)
        finally:
            discard_deferred(session)
    assert _columns(_orm_payment(db, lone.id), Payment) == before  # the delete rolled back
    with db.read() as session:
        assert session.get(Event, event_id) is None  # sent before the check: rolled back too


def test_the_commit_goes_with_the_last_writes_unless_the_session_has_its_own_to_flush(
    db: Database, merchants: MerchantFactory, backend: str
) -> None:
    merchant = merchants.create()

    def stored(event_id: str) -> bool:
        with db.read() as other:  # another connection: sees only what is committed
            return other.get(Event, event_id) is not None

    sent = new_ordered_id("evt")
    with db.write() as session:
        defer_writes(session)
        insert_rows(session, [_event(merchant.id, sent, {})])
        flush_deferred(session, commit=True)
        # PostgreSQL committed with the rows; SQLite commits when the session does.
        assert stored(sent) == (backend == "postgresql")
    assert stored(sent)

    rows, through_the_orm = new_ordered_id("evt"), new_ordered_id("evt")
    with db.write() as session:
        defer_writes(session)
        insert_rows(session, [_event(merchant.id, rows, {})])
        session.add(_event(merchant.id, through_the_orm, {}))  # the session's own, unflushed
        flush_deferred(session, commit=True)
        assert not stored(rows)  # not committed yet: the session's commit flushes its own first
    assert stored(rows) and stored(through_the_orm)


def test_a_rolled_back_transaction_leaves_nothing_held_back_on_its_connection(
    db: Database, api: Api
) -> None:
    """What is held back is kept in the connection's `info`, which outlives the transaction: a
    failed unit must not leave its UPDATE there for the connection's next transaction."""
    _, payment_id = _paid_invoice(api)
    single = Database(str(db.engine.url.render_as_string(hide_password=False)), pool_size=1)
    try:
        with pytest.raises(RuntimeError), single.write() as session:
            defer_writes(session)
            try:
                [payment] = select_rows(session, Payment, {"id": payment_id}, lock=True)
                payment.status = "refunded"
                write_back(session, payment)
                raise RuntimeError("the unit fails")
            finally:
                discard_deferred(session)
        with single.write() as session:  # the same (only) connection
            assert DEFERRED_KEY not in session.connection().info
            assert _status(session, payment_id) == "succeeded"
    finally:
        single.dispose()
    assert _orm_payment(db, payment_id).status == "succeeded"


def test_many_held_back_rows_of_a_table_are_all_stored_as_given(
    db: Database, merchants: MerchantFactory
) -> None:
    """On PostgreSQL they go in multi-row INSERTs of 64, 32, ... rows: 100 = 64 + 32 + 4."""
    merchant = merchants.create()
    written = [_event(merchant.id, new_ordered_id("evt"), {"n": n}) for n in range(100)]
    with db.write() as session:
        defer_writes(session)
        insert_rows(session, written[:70])
        insert_rows(session, written[70:])
        flush_deferred(session)
    with db.read() as session:
        stored = session.scalars(
            select(Event).where(Event.merchant_id == merchant.id).order_by(Event.id)
        ).all()
        assert [(e.id, e.data, e.type) for e in stored] == [(e.id, e.data, e.type) for e in written]


def test_reads_fetched_together_answer_as_each_alone(db: Database, api: Api) -> None:
    """`fetch` sends several reads at once (one round trip on PostgreSQL), after the held-back
    write-backs, and each answers what it would answer alone."""
    invoice_id, payment_id = _paid_invoice(api)
    family = {"attribute": "line_items", "link": {"invoice_id": "id"}, "order_by": "position"}
    with db.write() as session:
        defer_writes(session)
        [payment] = select_rows(session, Payment, {"id": payment_id}, lock=True)
        payment.status = "refunded"
        write_back(session, payment)  # held back
        invoice, payments = fetch(
            session,
            family_read(session, Invoice, {"id": invoice_id}, lock=True, **family),
            rows_read(session, Payment, {"invoice_id": invoice_id}, lock=True),
        )
        missing, none = fetch(
            session,
            family_read(session, Invoice, {"id": "inv_" + "0" * 26}, **family),
            rows_read(session, Payment, {"id": "pay_" + "0" * 26}),
        )
        flush_deferred(session)
    assert invoice is not None and invoice.id == invoice_id
    assert _columns(invoice, Invoice) == _columns(_orm_invoice(db, invoice_id)[0], Invoice)
    assert [(p.id, p.status) for p in payments] == [(payment_id, "refunded")]
    assert (missing, none) == (None, [])


def test_a_tracked_row_is_written_back_later_without_a_read_while_it_is_unchanged(
    db: Database, api: Api, backend: str
) -> None:
    """PostgreSQL: a tracked insert or write-back notes its row's version, and fills in what the
    row holds (defaults, identity), so that another transaction can write the object back as
    it is. SQLite has no row versions: tracking does nothing, and expecting one is refused."""
    invoice_id, _ = _paid_invoice(api)
    payment = _pending_payment(api.merchant.id, invoice_id)
    with db.write() as session:
        defer_writes(session)
        try:
            [invoice] = select_rows(session, Invoice, {"id": invoice_id}, lock=True)
            insert_rows(session, [payment], track=True)
            invoice.description = "tracked"
            write_back(session, invoice, track=True)
            flush_deferred(session, commit=True)
        finally:
            discard_deferred(session)
    if backend == "sqlite":
        assert row_version(payment) is None and row_version(invoice) is None
        with db.write() as session, pytest.raises(ValueError, match="no row version"):
            write_back(session, payment, expect_version=True)
        return
    assert row_version(payment) is not None and row_version(invoice) is not None
    assert sa_inspect(payment).detached  # as if read: it has its identity
    assert _columns(payment, Payment) == _columns(_orm_payment(db, payment.id), Payment)
    payment.status = "failed"
    with db.write() as session:
        write_back(session, invoice, expect_version=True)  # unchanged: still checked, and locked
        write_back(session, payment, expect_version=True)
    assert _orm_payment(db, payment.id).status == "failed"
    assert row_version(payment) is None  # its row is another version now
    with db.read() as session:
        stored = session.get(Invoice, invoice_id)
        assert stored is not None and stored.description == "tracked"


@pytest.mark.parametrize("change", ["another transaction", "the same transaction"])
@pytest.mark.parametrize("commit", [False, True], ids=["alone", "with-the-commit"])
def test_a_write_back_expecting_a_version_fails_if_the_row_changed_since(
    db: Database, api: Api, backend: str, change: str, commit: bool
) -> None:
    """Any write of the row after the tracked one makes another row version, even in the same
    transaction: the write-back that expects the old one then fails as if its row were missing,
    and the transaction it is in stores nothing (sent with the COMMIT, the COMMIT does not run)."""
    invoice_id, _ = _paid_invoice(api)
    payment = _pending_payment(api.merchant.id, invoice_id)
    other_write = text("UPDATE payments SET amount = 2 WHERE id = :id")
    with db.write() as session:
        insert_rows(session, [payment], track=True)
        if change == "the same transaction":
            session.execute(other_write, {"id": payment.id})
    if backend == "sqlite":  # no version to expect: the caller reads the row instead
        assert row_version(payment) is None
        return
    if change == "another transaction":
        with db.write() as session:
            session.execute(other_write, {"id": payment.id})
    before = _columns(_orm_payment(db, payment.id), Payment)
    event_id = new_ordered_id("evt")
    payment.status = "failed"
    stale = r"matched (0 rows|no row), not 1"
    with pytest.raises(StaleDataError, match=stale), db.write() as session:
        defer_writes(session)
        try:
            insert_rows(session, [_event(api.merchant.id, event_id, {})])
            write_back(session, payment, expect_version=True)
            flush_deferred(session, commit=commit)
        finally:
            discard_deferred(session)
    assert _columns(_orm_payment(db, payment.id), Payment) == before
    with db.read() as session:
        assert session.get(Event, event_id) is None
