"""Invoice queries; every one is scoped to one merchant and mode."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, bindparam, exists, select
from sqlalchemy.orm import Session, joinedload, selectinload

from quittance.auth.dependencies import Caller
from quittance.db.rows import Read, family_read, fetch
from quittance.domain.invoice import EXPIRABLE
from quittance.models import Invoice


@dataclass(frozen=True, slots=True)
class InvoiceFilters:
    statuses: tuple[str, ...] = ()
    reference: str | None = None
    customer_email: str | None = None
    customer_id: str | None = None
    currency: str | None = None
    amount_gte: int | None = None
    amount_lte: int | None = None
    created_gte: datetime | None = None
    created_lte: datetime | None = None
    q: str | None = None


def scoped(caller: Caller) -> Select[Invoice]:
    return (
        select(Invoice)
        .where(Invoice.merchant_id == caller.merchant_id, Invoice.livemode == caller.livemode)
        .options(selectinload(Invoice.line_items))
    )


# One invoice with its lines in one statement (a join, not selectin's second query): these run
# at the start of every change. A lock applies to the invoice row only. Built once, with bound
# parameters: building a statement per call costs its construction and its cache key each time.
_GET = (
    select(Invoice)
    .where(
        Invoice.merchant_id == bindparam("merchant_id"),
        Invoice.livemode == bindparam("livemode"),
        Invoice.id == bindparam("invoice_id"),
    )
    .options(joinedload(Invoice.line_items))
)
_GET_LOCKED = _GET.with_for_update(of=Invoice)
_LOCK = (
    select(Invoice)
    .where(Invoice.id == bindparam("invoice_id"), Invoice.merchant_id == bindparam("merchant_id"))
    .options(joinedload(Invoice.line_items))
    .with_for_update(of=Invoice)
)


def get(session: Session, caller: Caller, invoice_id: str, *, lock: bool = False) -> Invoice | None:
    parameters = {"merchant_id": caller.merchant_id, "livemode": caller.livemode,
                  "invoice_id": invoice_id}  # fmt: skip
    return session.scalars(_GET_LOCKED if lock else _GET, parameters).unique().one_or_none()


def lock(session: Session, merchant_id: str, invoice_id: str) -> Invoice:
    """Lock an invoice known to exist (found through a payment or refund of the merchant)."""
    parameters = {"merchant_id": merchant_id, "invoice_id": invoice_id}
    return session.scalars(_LOCK, parameters).unique().one()


def lock_detached(
    session: Session, merchant_id: str, invoice_id: str, *, livemode: bool | None = None
) -> Invoice | None:
    """Lock an invoice of the merchant (in `livemode`, when given) and read it with its lines
    through the driver, detached: for the pay path, which writes its changes with
    `db.rows.write_back` (a load through the ORM costs more than the whole statement)."""
    return fetch(session, locked_read(session, merchant_id, invoice_id, livemode=livemode))[0]


def locked_read(
    session: Session, merchant_id: str, invoice_id: str, *, livemode: bool | None = None
) -> Read[Invoice | None]:
    """`lock_detached`, prepared to be sent with other reads (`db.rows.fetch`)."""
    where: dict[str, object] = {"id": invoice_id, "merchant_id": merchant_id}
    if livemode is not None:
        where["livemode"] = livemode
    return family_read(
        session, Invoice, where, attribute="line_items", lock=True, order_by="position",
        link={"invoice_id": "id", "merchant_id": "merchant_id"},
    )  # fmt: skip


def is_invoice_id(value: str) -> bool:
    """Tell whether `value` has the shape of an invoice id (anything else cannot exist)."""
    return len(value) == 30 and value.startswith("inv_") and value[4:].isalnum()


def filtered(caller: Caller, filters: InvoiceFilters) -> Select[Invoice]:
    query = scoped(caller)
    if filters.statuses:
        query = query.where(Invoice.status.in_(filters.statuses))
    if filters.reference is not None:
        query = query.where(Invoice.reference == filters.reference)
    if filters.customer_email is not None:
        query = query.where(Invoice.customer_email == filters.customer_email)
    if filters.customer_id is not None:
        query = query.where(Invoice.customer_id == filters.customer_id)
    if filters.currency is not None:
        query = query.where(Invoice.currency == filters.currency)
    if filters.amount_gte is not None:
        query = query.where(Invoice.amount >= filters.amount_gte)
    if filters.amount_lte is not None:
        query = query.where(Invoice.amount <= filters.amount_lte)
    if filters.created_gte is not None:
        query = query.where(Invoice.created_at >= filters.created_gte)
    if filters.created_lte is not None:
        query = query.where(Invoice.created_at <= filters.created_lte)
    if filters.q:
        query = query.where(Invoice.search_text.contains(filters.q.casefold(), autoescape=True))
    return query


def search_text(invoice: Invoice) -> str:
    """The text free-text search looks in, case-folded (one field per line)."""
    fields = (invoice.reference, invoice.description, invoice.customer_email,
              invoice.customer_name)  # fmt: skip
    return "\n".join(field for field in fields if field).casefold()


def any_overdue(session: Session, caller: Caller, now: datetime) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    Invoice.merchant_id == caller.merchant_id,
                    Invoice.livemode == caller.livemode,
                    Invoice.status.in_(EXPIRABLE),
                    Invoice.expires_at <= now,
                )
            )
        )
    )


def overdue(
    session: Session, now: datetime, *, limit: int, caller: Caller | None = None
) -> list[Invoice]:
    """Lock and return invoices whose lifetime has passed (skipping rows others hold)."""
    query = (
        select(Invoice)
        .options(selectinload(Invoice.line_items))
        .where(Invoice.status.in_(EXPIRABLE), Invoice.expires_at <= now)
        .order_by(Invoice.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Invoice)
    )
    if caller is not None:
        query = query.where(
            Invoice.merchant_id == caller.merchant_id, Invoice.livemode == caller.livemode
        )
    return list(session.scalars(query))
