"""CPU cost of the decision path alone: parse + normalize + check digit + rules + orjson + RocksDB.

No broker: the same GuardProcessor the worker runs, over the demo's sample, with state in a
rocksdict database. Prints µs per event; run under py-spy to see where it goes.
    .venv/bin/python bench/decision_path.py [--events 60000] [--batch 2000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from faust.stores.rocksdb import RocksDBOptions
from rocksdict import WriteBatch

from streams import native
from streams import settings as settings_mod
from streams.clients import submission_key
from streams.hotpath import tune_gc
from streams.partitioning import partition_for
from streams.processor import GuardProcessor, InRecord
from streams.sample import generate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--batch", type=int, default=2_000)
    ap.add_argument("--gc", choices=("worker", "default"), default="worker", help="the worker's tuning, or Python's")
    args = ap.parse_args()
    settings = settings_mod.load()
    sample = generate(args.events, settings.carriers, end_ms=int(time.time() * 1000))
    records = []
    for i, e in enumerate(sample):
        key = submission_key(e.value)
        part = partition_for(key, settings.partitions) if key else 0
        records.append(InRecord(settings.topics.submitted, part, i, key, e.value, e.ts_ms))
    path = tempfile.mkdtemp()
    db = RocksDBOptions().open(Path(path))  # opened as the worker's store opens each partition
    proc = GuardProcessor(settings)
    if args.gc == "worker":
        tune_gc()  # as the worker does once it is up
    try:
        t0 = time.perf_counter()
        for i in range(0, len(records), args.batch):
            result = proc.process(records[i : i + args.batch], lambda p, k: db.get(k))
            wb = WriteBatch(raw_mode=True)
            for items in result.state_writes.values():
                for k, v in items.items():
                    wb.put(k, v)
            db.write(wb)
        dt = time.perf_counter() - t0
        print(
            f"{len(records)} events in {dt:.2f} s: {len(records) / dt:,.0f} events/s, {1e6 * dt / len(records):.1f} µs/event"
            f" (decision path {native.build}, gc {args.gc})"
        )
    finally:
        db.close()
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
