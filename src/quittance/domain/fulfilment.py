"""Cancellations and deliveries (DESIGN §3, §4 "Capture on delivery"), as pure rules.

A capture-on-delivery method authorises the invoice's amount when the payer pays; the merchant
then delivers (the provider captures) or cancels (the provider releases) it, all at once or by
line items. Each unit of a line is taken once, by a cancellation or a delivery, and its amount
is the line's cumulative share (`line_items.share`), so the shares of a line always add up to
the line's amount, whatever order the steps come in.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from quittance.domain.errors import InvalidTransition, QuittanceError
from quittance.domain.line_items import share

# Payment methods that authorise at payment and capture when the merchant confirms delivery.
CAPTURE_ON_DELIVERY = frozenset({"invoice"})


class FulfilmentStatus(StrEnum):
    """The state of a cancellation or a delivery: pending until the provider answers."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


F = FulfilmentStatus
FULFILMENT_TRANSITIONS: dict[FulfilmentStatus, frozenset[FulfilmentStatus]] = {
    F.PENDING: frozenset({F.SUCCEEDED, F.FAILED}),
    F.SUCCEEDED: frozenset(),
    F.FAILED: frozenset(),
}


def check_fulfilment_transition(source: FulfilmentStatus, target: FulfilmentStatus) -> None:
    """Raise `invalid_fulfilment_transition` unless a cancellation or delivery may move so."""
    if target not in FULFILMENT_TRANSITIONS[source]:
        raise InvalidTransition(
            f"A cancellation or delivery cannot go from {source.value} to {target.value}.",
            code="invalid_fulfilment_transition",
            fulfilment_status=source.value,
            target_status=target.value,
        )


class LineItemNotFound(QuittanceError):
    status = 422
    code = "line_item_not_found"
    title = "No such line item"


class LineItemQuantityExceeded(QuittanceError):
    status = 422
    code = "line_item_quantity_exceeded"
    title = "More units than are open"


@dataclass(frozen=True, slots=True)
class Line:
    """One invoice line as far as fulfilment is concerned."""

    id: str
    quantity: int
    amount: int
    cancelled: int
    delivered: int

    @property
    def open(self) -> int:
        """Units neither cancelled nor delivered yet."""
        return self.quantity - self.cancelled - self.delivered


@dataclass(frozen=True, slots=True)
class Taken:
    """Units of one line cancelled or delivered by one operation, and what they are worth."""

    line_item: str
    quantity: int
    amount: int

    def as_dict(self) -> dict[str, str | int]:
        return {"line_item": self.line_item, "quantity": self.quantity, "amount": self.amount}


def take(lines: Sequence[Line], wanted: Sequence[tuple[str, int]]) -> list[Taken]:
    """Take `quantity` open units of each named line, in the order asked.

    A line named twice is taken twice, cumulatively (the second step starts where the first
    ended). Raises `line_item_not_found` or `line_item_quantity_exceeded`.
    """
    by_id = {line.id: line for line in lines}
    used: dict[str, int] = {}
    taken = []
    for line_id, quantity in wanted:
        line = by_id.get(line_id)
        if line is None:
            raise LineItemNotFound(f"The invoice has no line item {line_id!r}.",
                                   line_item=line_id)  # fmt: skip
        before = used.get(line_id, 0)
        available = line.open - before
        if not 0 < quantity <= available:
            raise LineItemQuantityExceeded(
                f"Line item {line_id} has {available} open units (neither cancelled nor "
                f"delivered); {quantity} were asked.",
                line_item=line_id,
                available=available,
            )
        start = line.cancelled + line.delivered + before
        taken.append(Taken(line_id, quantity, share(line.amount, line.quantity, start, quantity)))
        used[line_id] = before + quantity
    return taken


def take_all(lines: Sequence[Line]) -> list[Taken]:
    """Take every open unit of every line."""
    return take(lines, [(line.id, line.open) for line in lines if line.open > 0])


def total(taken: Sequence[Taken]) -> int:
    """The amount of all units taken."""
    return sum(t.amount for t in taken)


@dataclass(frozen=True, slots=True)
class Authorisation:
    """A payment's authorisation, in the invoice's currency and as the provider holds it.

    `amount` is what the payment authorised of the invoice and `open` what of it is neither
    delivered nor released (invoice currency). The provider holds `payer_amount` in the
    payer's currency: `payer_plain` (the amount, converted when the payer pays in another
    currency) plus any commission the payer pays on top.
    """

    amount: int
    open: int
    payer_amount: int
    payer_plain: int

    def provider_amount(self, taking: int) -> int:
        """What the provider captures or releases (payer's currency) for `taking` of `open`.

        The plain part is allocated cumulatively, like units of a line, so the steps add up
        to `payer_plain` exactly. The commission on top goes with the last step: a capture
        counts towards the invoice before the commission (`domain.fees`), so capturing
        it earlier would record more paid than delivered.
        """
        if not 0 <= taking <= self.open:
            raise ValueError(f"cannot take {taking} of {self.open} authorised")
        step = share(self.payer_plain, self.amount, self.amount - self.open, taking)
        if taking == self.open:
            step += self.payer_amount - self.payer_plain
        return step
