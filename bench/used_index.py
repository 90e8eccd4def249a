"""The used list and reconciliation at 1 M numbers: the licence's index against a scan of the table.

No broker: a real Faust `rocksdb://` table (8 partitions) reached through `streams.store`, filled
with states the rules made (`decide`) and the index entries the processor writes with each
binding. One licence holds `--mine` numbers, the rest belong to 500 others. Timed, same run:

- `used page`: the first page of 500 (`streams.web.used_rows`, what a worker serves), and the
  whole list, through the index; against the pre-index code (scan every key of every partition,
  decode, keep the licence's).
- `reconcile`: an ERP log of the licence's numbers (95% matching, 3% another carrier, 2% unknown)
  through `streams.web.reconcile_partitions`; against the same core fed from a full scan.

    .venv/bin/python bench/used_index.py [--numbers 1000000] [--mine 20000]
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

import faust

from streams.core import state as state_codec
from streams.core.events import Submission
from streams.core.queries import used_entry
from streams.core.reconcile import ErpRow, reconcile
from streams.core.rules import Policy, decide
from streams.partitioning import partition_for
from streams.store import PartitionStore
from streams.web import reconcile_partitions, used_rows

PARTITIONS = 8
SHIPPED = 1_795_132_800_000  # 2026-11-20T08:00+08:00
TZ = "Asia/Shanghai"


def build(store: PartitionStore, n: int, mine: int) -> list[str]:
    policy, rng = Policy(), random.Random(7)
    numbers = [f"RB{i:09d}CN" for i in range(n)]
    owned = set(rng.sample(range(n), mine))
    pending: dict[int, dict[bytes, bytes]] = {p: {} for p in range(PARTITIONS)}
    for i, number in enumerate(numbers):
        lic = "L1" if i in owned else f"L{2 + i % 500}"
        sub = Submission(f"e{i}", lic, "S1", f"O{i}", "CHINAPOST", number, SHIPPED, None, SHIPPED)
        state = decide(None, sub, policy)[1]
        key = number.encode()
        p = partition_for(key, PARTITIONS)
        pending[p][key] = state_codec.encode(state)
        pending[p][state_codec.used_index_key(lic, key)] = state_codec.INDEX_VALUE
        if len(pending[p]) >= 20_000:
            store.write(p, pending[p])
            pending[p] = {}
    for p, items in pending.items():
        store.write(p, items)
    return [numbers[i] for i in sorted(owned)]


def scan_used(store: PartitionStore, license_id: str, limit: int | None) -> list[dict]:
    """The used list before the index (streams/web.py before 99414a3): every key, decoded."""
    rows = []
    for p in range(PARTITIONS):
        taken = 0
        for key, raw in store.scan(p):
            row = used_entry(key.decode(), state_codec.decode(raw), license_id)
            if row is not None:
                rows.append(row)
                taken += 1
                if limit and taken >= limit:
                    break
    rows.sort(key=lambda r: r["tracking_no"])
    return rows[:limit] if limit else rows


def timed(fn, reps: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--numbers", type=int, default=1_000_000)
    ap.add_argument("--mine", type=int, default=20_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tg-used-index-"))
    try:
        app = faust.App("bench-index", broker="kafka://127.0.0.1:1", store="rocksdb://", datadir=str(work))
        store = PartitionStore(app.Table("numbers", partitions=PARTITIONS, key_type=bytes, value_type=bytes))
        t0 = time.perf_counter()
        mine = build(store, args.numbers, args.mine)
        print(f"built {args.numbers:,} numbers ({args.mine:,} of L1) in {time.perf_counter() - t0:.0f} s")
        parts = list(range(PARTITIONS))
        rng = random.Random(8)
        erp = []
        for line, number in enumerate(mine, 2):
            roll = rng.random()
            carrier = "YANWEN" if roll < 0.03 else "CHINAPOST"
            erp.append(ErpRow(line, number if roll < 0.98 else f"RC{line:09d}CN", carrier, SHIPPED, "S1", "O"))
        results = []
        index_page, page = timed(lambda: used_rows(store, parts, "L1", "", 500))
        scan_page, old_page = timed(lambda: scan_used(store, "L1", 500), reps=1)
        assert page == old_page
        results.append(("used list, first page of 500", index_page, scan_page))
        index_all, everything = timed(lambda: used_rows(store, parts, "L1", "", args.mine))
        scan_all, old_all = timed(lambda: scan_used(store, "L1", None), reps=1)
        assert everything == old_all and len(everything) == args.mine
        results.append((f"used list, all {args.mine:,}", index_all, scan_all))

        def by_index():
            return reconcile_partitions(store, parts, PARTITIONS, "L1", erp, "2026-11", TZ, SHIPPED)

        def by_scan():  # one pass over the table: the ERP's numbers' states and the licence's numbers
            wanted = {r.tracking_no for r in erp}
            states: dict = dict.fromkeys(wanted)
            used = []
            for p in parts:
                for key, raw in store.scan(p):
                    number, state = key.decode(), state_codec.decode(raw)
                    if number in wanted:
                        states[number] = state
                    if state.get("binding", {}).get("license") == "L1":
                        used.append((number, state))
            return reconcile("L1", erp, states, used, month="2026-11", timezone=TZ, now_ms=SHIPPED)

        index_rec, report = timed(by_index)
        scan_rec, old_report = timed(by_scan, reps=1)
        assert report.counts == old_report.counts, (report.counts, old_report.counts)
        results.append((f"reconcile {len(erp):,} ERP rows", index_rec, scan_rec))
        print(f"counts: {dict(report.counts)}")
        print(f"| {args.numbers:,} numbers, 8 partitions | index | full scan (before) | |")
        print("|---|---:|---:|---:|")
        for what, fast, slow in results:
            print(f"| {what} | {fast * 1000:,.0f} ms | {slow * 1000:,.0f} ms | {slow / fast:,.0f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
