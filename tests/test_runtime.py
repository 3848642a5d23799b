"""The long-running commands' collector settings (`quittance.runtime`)."""

import gc
import weakref
from collections.abc import Iterator

import pytest

from quittance.runtime import YOUNGEST_THRESHOLD, tune_garbage_collector


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def tuned() -> Iterator[None]:
    threshold = gc.get_threshold()
    tune_garbage_collector()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_start_up_objects_are_frozen_and_young_ones_collected_less_often(tuned: None) -> None:
    assert gc.get_freeze_count() > 1000  # this process's modules, at least
    assert gc.get_threshold()[0] == YOUNGEST_THRESHOLD
    assert gc.isenabled()


def test_reference_cycles_are_still_collected_without_being_asked(tuned: None) -> None:
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second
    assert gone() is not None  # a cycle: reference counting alone does not free it
    kept = [[] for _ in range(YOUNGEST_THRESHOLD * 3)]  # new containers: the collector runs
    assert gone() is None
    assert len(kept) == YOUNGEST_THRESHOLD * 3
