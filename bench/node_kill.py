"""A Kafka node SIGKILLed under load: how long until verdicts flow again (issue 30, part 2).

    .venv/bin/python bench/node_kill.py [--runs 10] [--guarantee exactly_once|at_least_once] [--rate 500]

A three-node KRaft cluster (replication 3, min ISR 2), one worker, a steady load of distinct
numbers. Each run kills the node that coordinates the worker's consumer group (the case where
librdkafka's commit got stuck, #5456/#5511), 10 s into the run, loads on for 30 s, then restarts
the node and waits until every partition is in sync again before the next run.

Per run: `worst_wait_s`, the longest any submission sent from 1 s before the kill to 30 s after
it waited for its verdict (arrival at a read_committed reader minus sending), and `gap_s`, the
longest time without any verdict arriving. At the end: every submission has exactly one verdict
(exactly once) or one decision (at least once), and the auditor's report. Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import orjson
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from streams import settings as settings_mod
from streams.audit import audit
from streams.clients import Publisher
from streams.cluster import KafkaCluster
from streams.core.check_digits import s10_number
from streams.kafka import ensure_topics
from streams.launch import WorkerProcess

WINDOW_BEFORE_S, WINDOW_AFTER_S, KILL_AT_S = 1.0, 30.0, 10.0


class Arrivals:
    """event id -> when its verdicts reached a read_committed reader (wall clock)."""

    def __init__(self, settings: settings_mod.Settings) -> None:
        self.settings = settings
        self.at: dict[str, list[float]] = {}
        self.decisions: dict[str, set[tuple[str, str]]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        c = Consumer(
            self.settings.client_config(
                **{"group.id": "node-kill-reader", "isolation.level": "read_committed", "enable.auto.commit": False}
            )
        )
        topics = list(self.settings.topics.verdicts)
        md = c.list_topics(timeout=10)
        c.assign([TopicPartition(t, p, 0) for t in topics for p in md.topics[t].partitions])
        while not self.stop.is_set():
            for m in c.consume(1000, 0.05):
                if m.error():
                    continue
                now = time.time()
                v = orjson.loads(m.value())
                self.at.setdefault(v["event_id"], []).append(now)
                self.decisions.setdefault(v["event_id"], set()).add((v["verdict"], v["reason"]))
        c.close()


def coordinator(cluster: KafkaCluster, group: str) -> int:
    admin = AdminClient(cluster.client_config())
    return admin.describe_consumer_groups([group])[group].result().coordinator.id


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--guarantee", choices=["exactly_once", "at_least_once"], default="exactly_once")
    ap.add_argument("--rate", type=float, default=500.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tg-node-kill-"))
    cluster = KafkaCluster(nodes=3, workdir=work / "kafka").start()
    worker = None
    try:
        settings = settings_mod.load(broker=cluster.address, data_dir=work / "data", replication=3)
        ensure_topics(settings)
        arrivals = Arrivals(settings)
        arrivals.thread.start()
        worker = WorkerProcess(
            cluster.address,
            work / "data",
            work / "worker.log",
            env={"TRACKGUARD_GUARANTEE": args.guarantee, "TRACKGUARD_REPLICATION": "3"},
        ).start()
        publisher = Publisher(settings)
        sent_at: dict[str, float] = {}
        seq = 0

        def send(n: int) -> None:
            nonlocal seq
            for _ in range(n):
                event_id = f"nk-{seq}"
                publisher.send(
                    {
                        "event_id": event_id,
                        "license_id": "L1",
                        "store_id": "S1",
                        "order_id": f"O-{seq}",
                        "carrier_code": "CHINAPOST",
                        "tracking_no": s10_number(seq),
                        "shipped_at": "2026-11-20T08:00:00+08:00",
                    }
                )
                sent_at[event_id] = time.time()
                seq += 1

        send(1)
        deadline = time.time() + 120
        while "nk-0" not in arrivals.at and time.time() < deadline:
            time.sleep(0.2)
        assert "nk-0" in arrivals.at, "the worker decided nothing"
        results = []
        for run in range(1, args.runs + 1):
            victim = coordinator(cluster, settings.app_id)
            start = time.time()
            killed_at = None
            while time.time() - start < KILL_AT_S + WINDOW_AFTER_S + 5:
                tick = time.time()
                send(max(1, int(args.rate / 20)))
                if killed_at is None and tick - start >= KILL_AT_S:
                    cluster.kill_node(victim)
                    killed_at = time.time()
                time.sleep(max(0.0, 0.05 - (time.time() - tick)))
            publisher.flush(30)
            window = [
                e
                for e, t in sent_at.items()
                if killed_at - WINDOW_BEFORE_S <= t <= killed_at + WINDOW_AFTER_S  # type: ignore[operator]
            ]
            deadline = time.time() + 180
            while any(e not in arrivals.at for e in window) and time.time() < deadline:
                time.sleep(0.5)
            waits = [min(arrivals.at[e]) - sent_at[e] for e in window if e in arrivals.at]
            firsts = sorted(min(arrivals.at[e]) for e in window if e in arrivals.at)
            gaps = [b - a for a, b in zip(firsts, firsts[1:])]
            result = {
                "run": run,
                "guarantee": args.guarantee,
                "killed_node": victim,
                "submissions_in_window": len(window),
                "missing": sum(e not in arrivals.at for e in window),
                "worst_wait_s": round(max(waits), 2) if waits else None,
                "gap_s": round(max(gaps), 2) if gaps else None,
            }
            results.append(result)
            print(json.dumps(result), flush=True)
            cluster.start_node(victim)
            cluster.wait_in_sync()
        publisher.flush(30)
        deadline = time.time() + 120
        while any(e not in arrivals.at for e in sent_at) and time.time() < deadline:
            time.sleep(0.5)
        arrivals.stop.set()
        arrivals.thread.join(10)
        twice = sum(1 for e in sent_at if len(arrivals.at.get(e, [])) > 1)
        changed = sum(1 for e in sent_at if len(arrivals.decisions.get(e, ())) > 1)
        report = audit(settings, idle_s=2.0)
        worst = [r["worst_wait_s"] for r in results if r["worst_wait_s"] is not None]
        print(
            json.dumps(
                {
                    "guarantee": args.guarantee,
                    "runs": len(results),
                    "worst_wait_s_min_median_max": [min(worst), statistics.median(worst), max(worst)]
                    if worst
                    else None,
                    "runs_within_15_s": sum(1 for w in worst if w <= 15.0),
                    "submissions": len(sent_at),
                    "without_a_verdict": sum(1 for e in sent_at if e not in arrivals.at),
                    "with_two_verdicts": twice,
                    "with_two_decisions": changed,
                    "audit_ok": report.ok,
                    "audit_violations": report.violations[:5],
                    "worker_log": str(work / "worker.log"),
                }
            ),
            flush=True,
        )
    finally:
        if worker is not None:
            worker.stop()
        cluster.stop()
        shutil.rmtree(work / "data", ignore_errors=True)


if __name__ == "__main__":
    main()
