"""State scale: millions of distinct tracking numbers on one worker's RocksDB.

The worker's decision path (GuardProcessor) and RocksDB opened with the options Faust's
`rocksdb://` store uses, without the broker (10 M events through Tansu would hold ~10 GB of topic
data in its memory-only storage). Reports RSS, disk and events/s at each checkpoint, to show
whether memory stays flat as keys grow.
    .venv/bin/python bench/scale.py [--keys 10000000] [--every 1000000] [--batch 5000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import orjson
from faust.stores.rocksdb import RocksDBOptions
from rocksdict import WriteBatch

from streams import settings as settings_mod
from streams.core.check_digits import s10_number
from streams.partitioning import partition_for
from streams.processor import GuardProcessor, InRecord


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disk_mib(path: str) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def events(settings, start: int, n: int, now_ms: int) -> list[InRecord]:
    out = []
    for i in range(start, start + n):
        number = s10_number(i, "RR" if i < 100_000_000 else "RS")
        key = number.encode()
        value = orjson.dumps(
            {
                "event_id": f"e{i}",
                "license_id": f"L{i % 3}",
                "store_id": f"S{i % 11}",
                "order_id": f"O{i}",
                "carrier_code": "CHINAPOST",
                "tracking_no": number,
                "shipped_at": "2026-11-20T08:00:00+08:00",
                "source": "erp",
            }
        )
        out.append(
            InRecord(settings.topics.submitted, partition_for(key, settings.partitions), i, key, value, now_ms + i)
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=10_000_000)
    ap.add_argument("--every", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--dir", default=None, help="where RocksDB lives (default: a temp dir, removed after)")
    args = ap.parse_args()
    settings = settings_mod.load()
    root = args.dir or tempfile.mkdtemp(prefix="tg-scale-")
    options = RocksDBOptions()  # what faust's rocksdb:// store opens its partitions with
    dbs = {p: options.open(Path(root) / f"p{p}.db") for p in range(settings.partitions)}
    proc = GuardProcessor(settings)
    now_ms = int(time.time() * 1000)
    print(f"{'keys':>10} {'events/s (last chunk)':>22} {'RSS MiB':>9} {'disk MiB':>9}")
    try:
        done, spent, chunk = 0, 0.0, 0
        while done < args.keys:
            n = min(args.batch, args.keys - done)
            batch = events(settings, done, n, now_ms)  # generating them is not timed
            t0 = time.perf_counter()
            result = proc.process(batch, lambda p, k: dbs[p].get(k))
            for p, items in result.state_writes.items():
                wb = WriteBatch(raw_mode=True)
                for k, v in items.items():
                    wb.put(k, v)
                dbs[p].write(wb)
            spent += time.perf_counter() - t0
            done += n
            chunk += n
            if done % args.every == 0 or done == args.keys:
                print(f"{done:>10,} {chunk / spent:>22,.0f} {rss_mib():>9.0f} {disk_mib(root):>9.0f}", flush=True)
                spent, chunk = 0.0, 0
    finally:
        for db in dbs.values():
            db.close()
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
