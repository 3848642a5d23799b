"""Background work on invoices: expiry after the lifetime."""

from sqlalchemy.orm import Session

from quittance import clock
from quittance.auth.dependencies import Caller
from quittance.domain.invoice import Status, Trigger
from quittance.invoice import repository
from quittance.invoice.service import change_status


def expire_overdue(session: Session, base_url: str, *, limit: int = 200) -> int:
    """Expire up to `limit` invoices whose lifetime has passed; return how many."""
    invoices = repository.overdue(session, clock.now(), limit=limit)
    for invoice in invoices:
        change_status(session, invoice, Status.EXPIRED, Trigger.EXPIRE, base_url)
    return len(invoices)


def expire_overdue_for(session: Session, caller: Caller, base_url: str) -> int:
    """Expire all of one merchant's overdue invoices in one mode (before a list is shown)."""
    total = 0
    while True:
        invoices = repository.overdue(session, clock.now(), limit=500, caller=caller)
        for invoice in invoices:
            change_status(session, invoice, Status.EXPIRED, Trigger.EXPIRE, base_url)
        session.flush()
        total += len(invoices)
        if len(invoices) < 500:
            return total
