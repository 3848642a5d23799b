"""Payments: one attempt at a provider, and its own small state machine (DESIGN §3)."""

from enum import StrEnum

from quittance.domain.errors import InvalidTransition


class PaymentStatus(StrEnum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


P = PaymentStatus
# Where a payment may go from each status; succeeded and cancelled go nowhere.
PAYMENT_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    P.PENDING: frozenset({P.REQUIRES_ACTION, P.AUTHORIZED, P.SUCCEEDED, P.FAILED, P.CANCELLED}),
    P.REQUIRES_ACTION: frozenset({P.PENDING, P.AUTHORIZED, P.SUCCEEDED, P.FAILED, P.CANCELLED}),
    P.AUTHORIZED: frozenset({P.SUCCEEDED, P.CANCELLED}),
    P.SUCCEEDED: frozenset(),
    # Only a provider's late answer reopens a failed payment: the money did arrive after all.
    P.FAILED: frozenset({P.SUCCEEDED, P.AUTHORIZED}),
    P.CANCELLED: frozenset(),
}
OPEN = frozenset({P.PENDING, P.REQUIRES_ACTION})
EVENTS = {
    P.REQUIRES_ACTION: "payment.requires_action",
    P.AUTHORIZED: "payment.authorized",
    P.SUCCEEDED: "payment.succeeded",
    P.FAILED: "payment.failed",
    P.CANCELLED: "payment.cancelled",
}


def check_payment_transition(source: PaymentStatus, target: PaymentStatus) -> None:
    """Raise `invalid_payment_transition` unless the payment may go from `source` to `target`."""
    if target not in PAYMENT_TRANSITIONS[source]:
        raise InvalidTransition(
            f"A payment cannot go from {source.value} to {target.value}.",
            code="invalid_payment_transition",
            payment_status=source.value,
            target_status=target.value,
        )


def luhn_valid(number: str) -> bool:
    """Tell whether a card number passes the Luhn check."""
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0
