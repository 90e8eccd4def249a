"""Recovery and start-up: changelog restore rate, start to first verdict, the pause when a worker joins.

    .venv/bin/python bench/recovery.py [--events 200000]

1. A worker decides N distinct numbers (N changelog records), then stops.
2. A worker starts on a wiped data directory: the restore's records/s (from its log lines
   "Restoring state from changelog topics" -> "Done reading from changelog topics", and the
   changelog record count read back from the broker), and seconds from process start to the
   verdict of a submission published at that moment.
3. While one worker decides a steady 2,000 submissions/s, a second joins: the longest gap between
   consecutive verdicts is the pause the rebalance costs.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from streams import settings as settings_mod
from streams.broker import EmbeddedBroker
from streams.clients import Publisher
from streams.core.check_digits import s10_number
from streams.kafka import VerdictCollector, ensure_topics, read_topics
from streams.launch import WorkerProcess

LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def number(i: int) -> str:
    return s10_number(i)


def event(i: int, order: str = "O1") -> dict:
    return {
        "event_id": f"r{i}-{order}",
        "license_id": "L1",
        "store_id": "S1",
        "order_id": order,
        "carrier_code": "CHINAPOST",
        "tracking_no": number(i),
        "shipped_at": "2026-11-20T08:00:00+08:00",
    }


def log_time(log: str, needle: str) -> float | None:
    for line in log.splitlines():
        if needle in line:
            m = LOG_TIME.match(line)
            if m:
                return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tg-recovery-"))
    broker = EmbeddedBroker(log_path=work / "broker.log").start()
    workers: list[WorkerProcess] = []
    try:
        settings = settings_mod.load(broker=broker.address, data_dir=work / "a")
        ensure_topics(settings)
        pub = Publisher(settings)
        for i in range(args.events):
            pub.send(event(i))
        pub.flush()
        collector = VerdictCollector(settings).start()
        a = WorkerProcess(broker.address, work / "a", work / "a.log").start()
        workers.append(a)
        assert collector.wait_count(args.events, timeout=600), "worker A did not decide everything"
        a.stop()

        changelog = f"{settings.app_id}-numbers-changelog"
        records = sum(1 for _ in read_topics(settings, [changelog], until_idle_s=3))
        shutil.rmtree(work / "a")
        started = time.time()
        b = WorkerProcess(broker.address, work / "b", work / "b.log").start()
        workers.append(b)
        pub.send(event(args.events + 1))
        pub.flush()
        collector.verdict(f"r{args.events + 1}-O1", timeout=600)
        first_verdict_s = time.time() - started
        log = b.log_text()
        t_restore, t_done = (
            log_time(log, "Restoring state from changelog"),
            log_time(log, "Done reading from changelog"),
        )
        restore_s = (t_done - t_restore) if t_restore and t_done else float("nan")
        print(f"changelog records: {records:,}; restore {restore_s:.2f} s = {records / restore_s:,.0f} records/s")
        print(f"wiped worker: start to first verdict {first_verdict_s:.1f} s")

        # 3. A steady stream, then a second worker joins.
        stop = threading.Event()
        base = args.events + 10

        def steady() -> None:
            i = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                for _ in range(200):
                    pub.send(event(base + i))
                    i += 1
                pub.producer.poll(0)
                time.sleep(max(0.0, 0.1 - (time.perf_counter() - t0)))  # 2,000 events/s

        before = len(collector.verdicts)
        feeder = threading.Thread(target=steady, daemon=True)
        feeder.start()
        time.sleep(5)
        workers.append(WorkerProcess(broker.address, work / "c", work / "c.log").start())
        time.sleep(25)
        stop.set()
        feeder.join()
        pub.flush()
        time.sleep(3)
        stamps = sorted(v["_ts"] for v in collector.verdicts[before:])
        gaps = [(b - a) / 1000 for a, b in zip(stamps, stamps[1:])] or [0.0]
        print(
            f"second worker joined 5 s into a 2,000/s stream: longest gap between verdicts {max(gaps):.2f} s "
            f"({len(stamps):,} verdicts in 30 s); median gap {sorted(gaps)[len(gaps) // 2] * 1000:.1f} ms"
        )
        collector.stop()
    finally:
        for w in workers:
            w.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
