"""The serving process's garbage-collector settings (services/runtime/gctune.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.runtime.gctune import GEN0_THRESHOLD, tune_for_serving


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_startup_objects_leave_the_collectors_walks_and_young_collections_are_spaced_out() -> None:
    kept: list[list[int]] = [[] for _ in range(1000)]  # lists are tracked by the collector
    _, gen1, gen2 = gc.get_threshold()
    tune_for_serving()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold() == (GEN0_THRESHOLD, gen1, gen2)
    assert gc.isenabled()  # spaced out, not off: reference cycles made while serving are still collected
