"""The hot path's process-wide settings (its batches are tested through the broker tiers)."""

from __future__ import annotations

import gc

from streams.hotpath import YOUNG_COLLECTION_EVERY, tune_gc


def test_tune_gc_freezes_what_is_alive_and_collects_the_young_less_often():
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (YOUNG_COLLECTION_EVERY, *before[1:])
        assert gc.get_freeze_count() > 0
        assert gc.isenabled()  # fewer collections, not none: cycles made later are still freed
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
