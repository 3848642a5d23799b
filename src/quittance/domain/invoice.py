"""Invoice statuses and the transition table (DESIGN §3), as data.

`TRANSITIONS` lists every allowed `(source, target, trigger)`; `apply_transition` is the only
way a status changes, and it rejects anything else with `invalid_status_transition`. The API
(`GET /v1/invoice_statuses`) and `docs/invoice-statuses.md` are both rendered from this data.
"""

from dataclasses import dataclass
from enum import StrEnum

from quittance.domain.errors import InvalidTransition


class Status(StrEnum):
    DRAFT = "draft"
    CREATED = "created"
    PROCESSING = "processing"
    PROCESS_PENDING = "process_pending"
    PROCESSED = "processed"
    PARTIALLY_PROCESSED = "partially_processed"
    PROCESS_FAILED = "process_failed"
    EXPIRED = "expired"
    TERMINATED = "terminated"
    CANCELLED = "cancelled"
    REFUNDING = "refunding"
    REFUND_PENDING = "refund_pending"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    REFUND_FAILED = "refund_failed"


@dataclass(frozen=True, slots=True)
class StatusInfo:
    status: Status
    final: bool
    sleeping: bool
    description: str


STATUSES: tuple[StatusInfo, ...] = (
    StatusInfo(Status.DRAFT, False, False, "Editable, not payable; finalize makes it created."),
    StatusInfo(Status.CREATED, False, False,
               "Payable; not yet processed, or the last attempt failed with attempts left."),
    StatusInfo(Status.PROCESSING, False, True, "An attempt is under way at a provider."),
    StatusInfo(Status.PROCESS_PENDING, False, True,
               "The provider's answer is not known yet and may take long."),
    StatusInfo(Status.PROCESSED, False, False,
               "Paid in full (or authorised, for capture-on-delivery methods); refundable."),
    StatusInfo(Status.PARTIALLY_PROCESSED, False, False,
               "Less than the amount has been received; more may follow."),
    StatusInfo(Status.PROCESS_FAILED, True, False,
               "The attempts limit was reached without success."),
    StatusInfo(Status.EXPIRED, True, False,
               "The lifetime passed without full payment; money it had received stays refundable."),
    StatusInfo(Status.TERMINATED, True, False,
               "The payer gave up on the hosted page; money it had received stays refundable."),
    StatusInfo(Status.CANCELLED, True, False,
               "The merchant cancelled before money moved (or released an authorisation)."),
    StatusInfo(Status.REFUNDING, False, True, "A refund is under way."),
    StatusInfo(Status.REFUND_PENDING, False, True, "The refund's result is unknown for now."),
    StatusInfo(Status.PARTIALLY_REFUNDED, False, False,
               "Part of the received money went back; more may be refunded."),
    StatusInfo(Status.REFUNDED, True, False, "Everything received went back."),
    StatusInfo(Status.REFUND_FAILED, False, False,
               "The last refund failed; received money is still refundable."),
)  # fmt: skip

STATUS_INFO = {info.status: info for info in STATUSES}

# Statuses in which a payer may start a payment.
PAYABLE = frozenset({Status.CREATED, Status.PARTIALLY_PROCESSED})
# Statuses that the lifetime ends (DESIGN §4 "Lifetime").
EXPIRABLE = frozenset({Status.CREATED, Status.PARTIALLY_PROCESSED})


class Trigger(StrEnum):
    CREATE = "create"
    CREATE_DRAFT = "create_draft"
    FINALIZE = "finalize"
    CANCEL = "cancel"
    PAYER_ABORT = "payer_abort"
    EXPIRE = "expire"
    ATTEMPT_START = "attempt_start"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_PARTIAL = "payment_partial"
    PAYMENT_PENDING = "payment_pending"
    PAYMENT_FAILED = "payment_failed"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    CANCEL_AUTHORIZATION = "cancel_authorization"
    REFUND_START = "refund_start"
    REFUND_SUCCEEDED = "refund_succeeded"
    REFUND_PARTIAL = "refund_partial"
    REFUND_PENDING = "refund_pending"
    REFUND_FAILED = "refund_failed"


@dataclass(frozen=True, slots=True)
class Transition:
    source: Status | None  # None: the invoice is being created
    target: Status
    trigger: Trigger
    event: str  # the event type written when this transition is applied


def _t(
    source: Status | None, target: Status, trigger: Trigger, event: str | None = None
) -> Transition:
    return Transition(source, target, trigger, event or f"invoice.{target.value}")


S, T = Status, Trigger
_REFUNDABLE_SOURCES = (
    S.PROCESSED,
    S.PARTIALLY_PROCESSED,
    S.PARTIALLY_REFUNDED,
    S.REFUND_FAILED,
    S.EXPIRED,
    S.TERMINATED,
)
_SETTLING_SOURCES = (S.PROCESSING, S.PROCESS_PENDING)
# A failed attempt that leaves attempts returns to a payable status; its event says what happened.
_FAILED = "invoice.payment_failed"

TRANSITIONS: tuple[Transition, ...] = (
    _t(None, S.CREATED, T.CREATE, "invoice.created"),
    _t(None, S.DRAFT, T.CREATE_DRAFT, "invoice.created"),
    _t(S.DRAFT, S.CREATED, T.FINALIZE, "invoice.finalized"),
    _t(S.DRAFT, S.CANCELLED, T.CANCEL),
    _t(S.CREATED, S.CANCELLED, T.CANCEL),
    _t(S.CREATED, S.TERMINATED, T.PAYER_ABORT),
    _t(S.CREATED, S.EXPIRED, T.EXPIRE),
    _t(S.PARTIALLY_PROCESSED, S.EXPIRED, T.EXPIRE),
    _t(S.CREATED, S.PROCESSING, T.ATTEMPT_START),
    _t(S.PARTIALLY_PROCESSED, S.PROCESSING, T.ATTEMPT_START),
    *(_t(src, S.PROCESSED, T.PAYMENT_SUCCEEDED) for src in _SETTLING_SOURCES),
    *(_t(src, S.PARTIALLY_PROCESSED, T.PAYMENT_PARTIAL) for src in _SETTLING_SOURCES),
    # A failed attempt returns the invoice to where it was: unpaid or partly paid.
    *(_t(src, S.CREATED, T.PAYMENT_FAILED, _FAILED) for src in _SETTLING_SOURCES),
    *(_t(src, S.PARTIALLY_PROCESSED, T.PAYMENT_FAILED, _FAILED) for src in _SETTLING_SOURCES),
    *(_t(src, S.PROCESS_FAILED, T.ATTEMPTS_EXHAUSTED) for src in _SETTLING_SOURCES),
    _t(S.PROCESSING, S.PROCESS_PENDING, T.PAYMENT_PENDING),
    # Money outside an attempt (a later transfer, a provider's late answer after the attempt
    # was given up) moves a payable invoice on without a new attempt.
    _t(S.PARTIALLY_PROCESSED, S.PROCESSED, T.PAYMENT_SUCCEEDED),
    _t(S.CREATED, S.PROCESSED, T.PAYMENT_SUCCEEDED),
    _t(S.CREATED, S.PARTIALLY_PROCESSED, T.PAYMENT_PARTIAL),
    _t(S.PROCESSED, S.CANCELLED, T.CANCEL_AUTHORIZATION),
    *(_t(src, S.REFUNDING, T.REFUND_START) for src in _REFUNDABLE_SOURCES),
    *(_t(src, S.REFUNDED, T.REFUND_SUCCEEDED) for src in (S.REFUNDING, S.REFUND_PENDING)),
    *(_t(src, S.PARTIALLY_REFUNDED, T.REFUND_PARTIAL) for src in (S.REFUNDING, S.REFUND_PENDING)),
    _t(S.REFUNDING, S.REFUND_PENDING, T.REFUND_PENDING),
    *(_t(src, S.REFUND_FAILED, T.REFUND_FAILED) for src in (S.REFUNDING, S.REFUND_PENDING)),
)  # fmt: skip

_BY_KEY = {(t.source, t.target, t.trigger): t for t in TRANSITIONS}
assert len(_BY_KEY) == len(TRANSITIONS), "the transition table lists a row twice"


def apply_transition(source: Status | None, target: Status, trigger: Trigger) -> Transition:
    """Return the table row for this change, or raise `invalid_status_transition`."""
    row = _BY_KEY.get((source, target, trigger))
    if row is None:
        origin = source.value if source is not None else "(new)"
        raise InvalidTransition(
            f"An invoice cannot go from {origin} to {target.value} by {trigger.value}.",
            invoice_status=origin,
            target_status=target.value,
        )
    return row


def can_transition(source: Status, target: Status, trigger: Trigger) -> bool:
    """Tell whether the table allows this change."""
    return (source, target, trigger) in _BY_KEY


def mermaid() -> str:
    """Render the transition table as a Mermaid state diagram."""
    lines = ["stateDiagram-v2"]
    for t in TRANSITIONS:
        source = "[*]" if t.source is None else t.source.value
        lines.append(f"    {source} --> {t.target.value}: {t.trigger.value}")
    for info in STATUSES:
        if info.final:
            lines.append(f"    {info.status.value} --> [*]")
    return "\n".join(lines) + "\n"
