import pytest

from quittance.domain.errors import InvalidTransition
from quittance.domain.invoice import (
    STATUS_INFO,
    STATUSES,
    TRANSITIONS,
    Status,
    Trigger,
    apply_transition,
    can_transition,
    mermaid,
)

# DESIGN §3: (final, sleeping) for each of the 15 statuses.
EXPECTED = {
    "draft": (False, False),
    "created": (False, False),
    "processing": (False, True),
    "process_pending": (False, True),
    "processed": (False, False),
    "partially_processed": (False, False),
    "process_failed": (True, False),
    "expired": (True, False),
    "terminated": (True, False),
    "cancelled": (True, False),
    "refunding": (False, True),
    "refund_pending": (False, True),
    "partially_refunded": (False, False),
    "refunded": (True, False),
    "refund_failed": (False, False),
}


def test_the_status_table_matches_the_design() -> None:
    assert len(STATUSES) == 15
    assert {info.status.value: (info.final, info.sleeping) for info in STATUSES} == EXPECTED


def test_main_transitions_of_the_design_are_allowed() -> None:
    S, T = Status, Trigger
    for source, target, trigger in [
        (S.DRAFT, S.CREATED, T.FINALIZE),
        (S.DRAFT, S.CANCELLED, T.CANCEL),
        (S.CREATED, S.CANCELLED, T.CANCEL),
        (S.CREATED, S.TERMINATED, T.PAYER_ABORT),
        (S.CREATED, S.EXPIRED, T.EXPIRE),
        (S.PARTIALLY_PROCESSED, S.EXPIRED, T.EXPIRE),
        (S.CREATED, S.PROCESSING, T.ATTEMPT_START),
        (S.PROCESSING, S.PROCESSED, T.PAYMENT_SUCCEEDED),
        (S.PROCESSING, S.PROCESS_PENDING, T.PAYMENT_PENDING),
        (S.PROCESSING, S.CREATED, T.PAYMENT_FAILED),
        (S.PROCESSING, S.PROCESS_FAILED, T.ATTEMPTS_EXHAUSTED),
        (S.PROCESS_PENDING, S.PROCESSED, T.PAYMENT_SUCCEEDED),
        (S.PROCESSED, S.CANCELLED, T.CANCEL_AUTHORIZATION),
        (S.PROCESSED, S.REFUNDING, T.REFUND_START),
        (S.REFUNDING, S.REFUND_PENDING, T.REFUND_PENDING),
        (S.REFUND_PENDING, S.REFUNDED, T.REFUND_SUCCEEDED),
        (S.REFUND_PENDING, S.PARTIALLY_REFUNDED, T.REFUND_PARTIAL),
        (S.REFUND_PENDING, S.REFUND_FAILED, T.REFUND_FAILED),
    ]:
        assert apply_transition(source, target, trigger).target is target


@pytest.mark.parametrize(
    ("source", "target", "trigger"),
    [
        (Status.CANCELLED, Status.CREATED, Trigger.FINALIZE),
        (Status.CREATED, Status.CREATED, Trigger.FINALIZE),
        (Status.PROCESSED, Status.EXPIRED, Trigger.EXPIRE),
        (Status.REFUNDED, Status.REFUNDING, Trigger.REFUND_START),
        (Status.PROCESS_FAILED, Status.PROCESSING, Trigger.ATTEMPT_START),
        (Status.DRAFT, Status.PROCESSING, Trigger.ATTEMPT_START),
        (Status.CREATED, Status.CANCELLED, Trigger.EXPIRE),
    ],
)
def test_anything_else_is_rejected_with_a_stable_code(
    source: Status, target: Status, trigger: Trigger
) -> None:
    with pytest.raises(InvalidTransition) as caught:
        apply_transition(source, target, trigger)
    assert caught.value.code == "invalid_status_transition"
    assert caught.value.status == 409
    assert caught.value.extra == {"invoice_status": source.value, "target_status": target.value}


def test_final_statuses_only_leave_to_refund_money_they_hold() -> None:
    for t in TRANSITIONS:
        if t.source is not None and STATUS_INFO[t.source].final:
            assert t.trigger is Trigger.REFUND_START, t
            assert t.source in (Status.EXPIRED, Status.TERMINATED), t


def test_every_status_is_reachable_from_creation() -> None:
    reached = {t.target for t in TRANSITIONS if t.source is None}
    frontier = set(reached)
    while frontier:
        frontier = {t.target for t in TRANSITIONS if t.source in frontier} - reached
        reached |= frontier
    assert reached == set(Status)


def test_each_transition_names_its_event() -> None:
    assert apply_transition(None, Status.CREATED, Trigger.CREATE).event == "invoice.created"
    assert apply_transition(Status.DRAFT, Status.CREATED, Trigger.FINALIZE).event == (
        "invoice.finalized"
    )
    assert all(t.event.startswith("invoice.") for t in TRANSITIONS)
    assert can_transition(Status.CREATED, Status.EXPIRED, Trigger.EXPIRE)
    assert not can_transition(Status.EXPIRED, Status.CREATED, Trigger.EXPIRE)


def test_the_diagram_is_rendered_from_the_table() -> None:
    diagram = mermaid()
    assert diagram.startswith("stateDiagram-v2\n")
    for t in TRANSITIONS:
        source = "[*]" if t.source is None else t.source.value
        assert f"    {source} --> {t.target.value}: {t.trigger.value}\n" in diagram
