"""Refunds: money sent back through a payment, and their own small state machine (DESIGN §3)."""

from enum import StrEnum

from quittance.domain.errors import InvalidTransition


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
