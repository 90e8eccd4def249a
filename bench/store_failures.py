"""One busy store: the cost of a failure against the store's size (issue 30, part 4).

    .venv/bin/python bench/store_failures.py [--broker tansu|kafka] [--failures 200000]

One store binds N numbers (licence L1, store S-bind), then store S-big pushes every one of them
again for another order: N USED_BY_LICENSE failures of one store in one month. Then the first
1,000 of those pushes are sent again with the same event ids (replays: counted once, not again).

Read back afterwards, not polled: the stores changelog holds every summary the worker wrote, each
with its `failed` count and the time it was produced, so the time per failure from the first
thousand to the last comes from the worker's own writes; the largest record of that changelog is
held against Kafka's default 1 MiB limit (message.max.bytes, 1,048,588). The worker's CPU seconds
over the failures' span come from /proc. Prints one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson
from benchlib import cpu_seconds

from streams import settings as settings_mod
from streams.broker import EmbeddedBroker
from streams.clients import Publisher
from streams.core.check_digits import s10_number
from streams.core.performance import store_key
from streams.kafka import VerdictCollector, ensure_topics, read_topics
from streams.launch import WorkerProcess

KAFKA_RECORD_LIMIT = 1_048_588  # message.max.bytes, Kafka's default
TOKENS = {"TRACKGUARD_TOKENS": "L1=bench-token"}


def event(i: int, store: str, order: str) -> dict:
    return {
        "event_id": f"b{i}-{order}",
        "license_id": "L1",
        "store_id": store,
        "order_id": order,
        "carrier_code": "CHINAPOST",
        "tracking_no": s10_number(i),
        "shipped_at": "2026-11-20T08:00:00+08:00",
    }


def counted(port: int) -> int:
    """Failures of S-big the worker's view shows (0 while it does not answer)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/stores/S-big/performance", headers={"Authorization": "Bearer bench-token"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return sum(m["failed"] for m in json.loads(answer.read())["months"])
    except (OSError, ValueError):
        return 0


def publish(publisher: Publisher, events: list[dict]) -> None:
    for e in events:
        publisher.send(e)
    publisher.flush()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", choices=["tansu", "kafka"], default="tansu")
    ap.add_argument("--failures", type=int, default=200_000)
    args = ap.parse_args()
    n = args.failures
    work = Path(tempfile.mkdtemp(prefix="tg-store-failures-"))
    if args.broker == "tansu":
        broker = EmbeddedBroker(log_path=work / "broker.log").start()
        address, version = broker.address, "Tansu (embedded)"
    else:
        from streams.cluster import KafkaCluster, kafka_version

        broker = KafkaCluster(nodes=1, workdir=work / "kafka").start()
        address, version = broker.address, f"Apache Kafka {kafka_version()} (KRaft, 1 node)"
    worker = None
    try:
        settings = settings_mod.load(broker=address, data_dir=work / "data")
        ensure_topics(settings)
        publisher = Publisher(settings)
        collector = VerdictCollector(settings).start()
        worker = WorkerProcess(address, work / "data", work / "worker.log", env=TOKENS).start()
        publish(publisher, [event(i, "S-bind", "B") for i in range(n)])
        assert collector.wait_count(n, timeout=900), "the bindings were not all decided"
        cpu0, t0 = cpu_seconds(worker.pid), time.monotonic()
        publish(publisher, [event(i, "S-big", "X") for i in range(n)])
        publish(publisher, [event(i, "S-big", "X") for i in range(1000)])  # replays: counted once
        key = store_key("L1", "S-big")
        changelog = f"{settings.app_id}-{settings_mod.STORES_TABLE}-changelog"

        def written() -> tuple[list[tuple[int, int]], int]:
            """(failed, produced at ms) of every summary of S-big written; the largest record."""
            summaries, largest = [], 0
            for record in read_topics(settings, [changelog], until_idle_s=3.0, max_s=600):
                largest = max(largest, len(record.value() or b""))
                if record.key() == key and record.value():
                    state = orjson.loads(record.value())
                    failed = sum(m.get("failed", len(m.get("ids", []))) for m in state["months"].values())
                    summaries.append((failed, record.timestamp()[1]))
            return summaries, largest

        deadline = time.monotonic() + 3600
        while counted(worker.web_port) < n and time.monotonic() < deadline:
            time.sleep(1)  # the worker's own view: cheap, unlike re-reading the changelog
        cpu = cpu_seconds(worker.pid) - cpu0
        wall = time.monotonic() - t0
        time.sleep(15)  # the replays, sent last, have had their turn: nothing more may be counted
        final_view = counted(worker.web_port)
        summaries, largest = written()
        at = {failed: ts for failed, ts in summaries}  # the first summary that shows each count
        final = max(at) if at else 0

        def ms_per_1000(lo: int) -> float | None:
            hi = lo + 1000
            return at[hi] - at[lo] if lo in at and hi in at else None

        alerts = [
            orjson.loads(r.value())
            for r in read_topics(settings, [settings.topics.alerts], until_idle_s=2.0, max_s=60)
            if r.value()
        ]
        print(
            json.dumps(
                {
                    "broker": version,
                    "failures_sent": n,
                    "replays_sent": 1000,
                    "failed_counted": final,
                    "failed_shown_by_the_view": final_view,
                    "summaries_written": len(summaries),
                    "ms_per_1000_failures_first": ms_per_1000(1),
                    "ms_per_1000_failures_from_10000": ms_per_1000(10_000),
                    "ms_per_1000_failures_middle": ms_per_1000(n // 2),
                    "ms_per_1000_failures_last": ms_per_1000(n - 1001),
                    "largest_stores_changelog_record_bytes": largest,
                    "kafka_record_limit_bytes": KAFKA_RECORD_LIMIT,
                    "alert_ids": sorted({a["alert_id"] for a in alerts}),
                    "alert_records": len(alerts),
                    "worker_cpu_s_during_failures": round(cpu, 1),
                    "wall_s_during_failures": round(wall, 1),
                    "worker_cpu_us_per_failure": round(cpu / n * 1e6, 1),
                }
            )
        )
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
