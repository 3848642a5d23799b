"""Refunds: money sent back through payments, and their own small state machine (DESIGN §3).

A refund request may need more than one payment's room: it is split into one refund per
payment (`split`), each with its own state; the invoice's status follows the request as a
whole (`round_outcome`, `invoice_after_round`). Commission and payer-currency money go back
in proportion to the money refunded (`proportional`); refunds by line items take cumulative
shares of each line (`LineUnits`).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from quittance.domain.errors import InvalidTransition
from quittance.domain.invoice import Status, Trigger
from quittance.domain.line_items import share


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


R = RefundStatus
# A refund is pending until the provider answers; succeeded and failed go nowhere.
REFUND_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    R.PENDING: frozenset({R.SUCCEEDED, R.FAILED}),
    R.SUCCEEDED: frozenset(),
    R.FAILED: frozenset(),
}
EVENTS = {R.PENDING: "refund.pending", R.SUCCEEDED: "refund.succeeded", R.FAILED: "refund.failed"}


def check_refund_transition(source: RefundStatus, target: RefundStatus) -> None:
    """Raise `invalid_refund_transition` unless the refund may go from `source` to `target`."""
    if target not in REFUND_TRANSITIONS[source]:
        raise InvalidTransition(
            f"A refund cannot go from {source.value} to {target.value}.",
            code="invalid_refund_transition",
            refund_status=source.value,
            target_status=target.value,
        )


def refundable(amount_paid: int, amount_refunded: int, pending: int) -> int:
    """Return what may still be refunded: received, less refunded, less refunds under way."""
    return max(0, amount_paid - amount_refunded - pending)


def split(amount: int, rooms: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """Split `amount` over payments: most room first (ties: the older payment), one part each.

    `rooms` pairs a payment id with what it can still send back. The fewest payments are
    used; each part is at most its payment's room, and the parts add up to `amount`.
    """
    if amount <= 0 or amount > sum(room for _, room in rooms if room > 0):
        raise ValueError(f"cannot split {amount} over rooms {list(rooms)}")
    parts: list[tuple[str, int]] = []
    left = amount
    for payment_id, room in sorted(rooms, key=lambda r: (-r[1], r[0])):
        if left == 0:
            break
        if room > 0:
            take = min(room, left)
            parts.append((payment_id, take))
            left -= take
    return parts


def proportional(total: int, received: int, refunded_before: int, amount: int) -> int:
    """Return the part of `total` (commission, payer-currency money) that `amount` sends back.

    Allocated cumulatively over the payment's received money, as line shares are: the refunds
    of a payment's whole `received` return exactly `total`, whatever their order or size.
    """
    if total == 0 or received == 0:
        return 0
    return share(total, received, refunded_before, amount)


@dataclass(frozen=True, slots=True)
class LineUnits:
    """One invoice line as a refund by items sees it.

    `amount` is spread over `quantity` units (cumulative shares); the first `offset` units are
    not the payer's (cancelled before payment), the next `paid` ones were paid for, and of
    those `refunded` went back already or are going back. A line paid up front is
    `LineUnits(line amount, quantity, cancelled, quantity - cancelled, refunded)`; a line of a
    capture-on-delivery invoice spreads what its deliveries captured over the delivered units:
    `LineUnits(captured, delivered, 0, delivered, refunded)`.
    """

    amount: int
    quantity: int
    offset: int
    paid: int
    refunded: int

    @property
    def refundable(self) -> int:
        """Units paid for and not refunded yet."""
        return max(0, self.paid - self.refunded)

    def refund_amount(self, taking: int) -> int:
        """Return what refunding `taking` more units sends back.

        Refunded units follow the ones already refunded, so the refund of the last units
        takes exactly what remains of the money paid for the line.
        """
        if not 0 <= taking <= self.refundable:
            raise ValueError(f"cannot refund {taking} of {self.refundable} units")
        return share(self.amount, self.quantity, self.offset + self.refunded, taking)


def round_outcome(statuses: Iterable[RefundStatus]) -> RefundStatus:
    """Sum up the refunds of one request: pending while any is, else succeeded if any did."""
    seen = set(statuses)
    if R.PENDING in seen:
        return R.PENDING
    return R.SUCCEEDED if R.SUCCEEDED in seen else R.FAILED


def invoice_after_round(
    outcome: RefundStatus, amount_paid: int, amount_refunded: int, amount_authorized: int = 0
) -> tuple[Status, Trigger]:
    """Return the invoice status (and trigger) that a refund request's outcome leads to.

    `refunded` (final) needs everything received back and no authorisation left to capture.
    """
    if outcome is R.PENDING:
        return Status.REFUND_PENDING, Trigger.REFUND_PENDING
    if outcome is R.FAILED:
        return Status.REFUND_FAILED, Trigger.REFUND_FAILED
    if amount_refunded >= amount_paid and amount_authorized == 0:
        return Status.REFUNDED, Trigger.REFUND_SUCCEEDED
    return Status.PARTIALLY_REFUNDED, Trigger.REFUND_PARTIAL
