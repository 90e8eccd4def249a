"""The hot path's process-wide settings and how batches join (their flow is tested through the broker tiers)."""

from __future__ import annotations

import gc
from collections import Counter

from faust.types import TP

from streams.hotpath import YOUNG_COLLECTION_EVERY, Pending, tune_gc
from streams.processor import BatchResult, OutRecord


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


def _pending(
    topic: str, offsets: list[int], *, generation: int = 5, epoch: int = 2, group: bytes | None = b"g5"
) -> Pending:
    result = BatchResult(
        produce=[OutRecord("verdicts", b"k", f"{topic}{o}".encode()) for o in offsets],
        state_writes={0: {b"k": f"{topic}{offsets[-1]}".encode()}},
        counts=Counter(accepted=len(offsets)),
    )
    pending = Pending(result, len(offsets), 0.001 * len(offsets), 10.0 + offsets[0])
    pending.taken = {TP(topic, 0): list(offsets)}
    pending.generation, pending.epoch, pending.group = generation, epoch, group
    return pending


def test_a_batch_decided_during_a_commit_joins_the_batch_before_it():
    first = _pending("a", [1, 2])
    first.absorb(_pending("a", [3]))
    first.absorb(_pending("b", [7]))
    assert first.taken == {TP("a", 0): [1, 2, 3], TP("b", 0): [7]}  # acked in order, per partition
    assert first.source_offsets == {("a", 0): 4, ("b", 0): 8}
    assert [r.value for r in first.result.produce] == [b"a1", b"a2", b"a3", b"b7"]
    assert first.result.state_writes == {0: {b"k": b"b7"}}  # the key's last state
    assert first.result.counts == Counter(accepted=4)
    assert (first.records, first.started) == (4, 11.0)  # its acks are timed from the first decision
    assert (first.generation, first.epoch, first.group) == (5, 2, b"g5")


def test_batches_decided_under_different_assignments_never_commit_or_ack_together():
    for later, void in (
        (_pending("a", [3], epoch=3), "epoch"),
        (_pending("a", [3], generation=6), "generation"),
        (_pending("a", [3], group=b"g6"), "group"),
        (_pending("a", [3], group=None), "group"),
    ):
        first = _pending("a", [1, 2])
        first.absorb(later)
        assert {"epoch": first.epoch == -1, "generation": first.generation == -2, "group": first.group is None} == {
            name: name == void for name in ("epoch", "generation", "group")
        }
