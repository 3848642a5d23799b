"""Invoices this process has just created, kept for the pay that often follows at once.

A shop that creates an invoice and then pays it by API sends the pay right after the create.
The pay's attempt locks and reads the invoice with its lines (on PostgreSQL the costliest part
of the attempt); the create has just written that very row. So the create keeps its invoice
(detached, once committed, with the version of its row: `db.rows.ROW_VERSION`), and the first
pay that asks for it takes it (it is then gone from here) and writes it back expecting that
version. If anyone wrote the row since (another request, another process, the worker), that
write fails, the attempt's unit of work rolls back, and it runs again on the row read and
locked (`payment/endpoints.py`): a kept invoice may be stale, never wrong.

PostgreSQL only (SQLite has no row versions, and its reads are cheap). Bounded: the oldest go
first past `MOST`, and an invoice kept longer than `SECONDS` is not used (by then the payer is
on the hosted page, and the row has likely been written since).
"""

import threading
import time
from collections import OrderedDict

from quittance.db.rows import row_version
from quittance.models import Invoice

MOST = 4096
SECONDS = 60.0

_Key = tuple[str, bool, str]  # merchant, livemode, invoice id: a caller sees its own only

_kept: OrderedDict[_Key, tuple[float, Invoice]] = OrderedDict()
_lock = threading.Lock()


def keep(invoice: Invoice) -> None:
    """Keep a committed invoice as its creation wrote it (if its write noted the version)."""
    if row_version(invoice) is None:
        return
    key = (invoice.merchant_id, invoice.livemode, invoice.id)
    with _lock:
        _kept[key] = (time.monotonic() + SECONDS, invoice)
        while len(_kept) > MOST:
            _kept.popitem(last=False)


def take(merchant_id: str, livemode: bool, invoice_id: str) -> Invoice | None:
    """The invoice kept for this caller, if any and still recent; it is kept no longer."""
    with _lock:
        found = _kept.pop((merchant_id, livemode, invoice_id), None)
    if found is None or found[0] < time.monotonic():
        return None
    return found[1]
