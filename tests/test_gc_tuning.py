"""The serving process's collector settings (`oversync_server.gc_tuning`)."""

from __future__ import annotations

import gc

from oversync_server import gc_tuning


def test_tune_freezes_the_heap_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        gc_tuning.tune()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == gc_tuning.THRESHOLDS
        cycle: list[object] = []
        cycle.append(cycle)  # reference cycles made after the freeze are still collected
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
