"""Synchronous submit (POST /shipments) latency under load, beside the Kafka path in the same run.

    .venv/bin/python bench/sync_submit.py [--kafka] [--rate 2000] [--requests 400] [--workers 2]

One broker (Tansu, or a one-node Kafka from Maven's jars with --kafka) and `--workers` workers.
A background publisher sends `--rate` submissions a second through Kafka (fresh numbers, keyed by
number), while one client posts single shipments to POST /shipments, one at a time, alternating
between the workers (so with two, about half are published and awaited by the other worker), then
batches of 100. Reported: p50/p95/p99/max of the HTTP round trip, and, as the peer in the same run,
the Kafka path's submission-to-verdict time for the background submissions sent meanwhile
(publisher's timestamp to the verdict record's). Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
import urllib.request
from itertools import count
from pathlib import Path

import orjson

from streams import settings as settings_mod
from streams.broker import EmbeddedBroker
from streams.clients import Publisher
from streams.core.check_digits import s10_number
from streams.kafka import VerdictCollector, ensure_topics
from streams.launch import WorkerProcess

TOKEN = "bench-token"
SHIP = {"license_id": "L1", "store_id": "S1", "carrier_code": "CHINAPOST", "shipped_at": "2026-11-20T08:00:00Z"}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def line(name: str, values: list[float]) -> str:
    return (
        f"{name}: n={len(values)}  p50 {pct(values, 50):.1f} ms  p95 {pct(values, 95):.1f} ms  "
        f"p99 {pct(values, 99):.1f} ms  max {max(values):.1f} ms"
    )


def post(port: int, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/shipments",
        data=orjson.dumps(body),
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=40) as r:
        return r.status, orjson.loads(r.read())


class Background:
    """`rate` submissions a second, paced in 10 ms slices, each one's send time kept by event id."""

    def __init__(self, settings, rate: int, numbers: count) -> None:
        self.pub, self.rate, self.numbers = Publisher(settings), rate, numbers
        self.sent: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        per_slice, t = max(1, self.rate // 100), time.time()
        while not self.stop.is_set():
            for _ in range(per_slice):
                i = next(self.numbers)
                eid = f"bg-{i}"
                self.sent[eid] = time.time() * 1000
                self.pub.send({**SHIP, "event_id": eid, "order_id": f"O{i}", "tracking_no": s10_number(i)})
            self.pub.producer.poll(0)
            t += 0.01
            time.sleep(max(0.0, t - time.time()))
        self.pub.flush()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kafka", action="store_true", help="a one-node Kafka (Maven's jars) instead of Tansu")
    ap.add_argument("--rate", type=int, default=2000, help="background submissions a second through Kafka")
    ap.add_argument("--requests", type=int, default=400, help="single-shipment POSTs")
    ap.add_argument("--batches", type=int, default=20, help="POSTs of 100 shipments")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tg-sync-"))
    if args.kafka:
        from streams.cluster import KafkaCluster

        broker = KafkaCluster(1, workdir=work / "kafka").start()
    else:
        broker = EmbeddedBroker(log_path=work / "broker.log").start()
    env = {"TRACKGUARD_TOKENS": f"L1={TOKEN}"}
    workers: list[WorkerProcess] = []
    background = None
    try:
        settings = settings_mod.load(broker=broker.address)
        ensure_topics(settings)
        collector = VerdictCollector(settings).start()
        workers = [
            WorkerProcess(broker.address, work / f"d{i}", work / f"w{i}.log", env=env).start()
            for i in range(args.workers)
        ]
        ports = [w.web_port for w in workers]
        numbers = count(1)
        # Warm up until every worker answers a synchronous submit (joined, partitions assigned).
        deadline = time.time() + 120
        warm = 0
        while time.time() < deadline and warm < 20:
            i = next(numbers)
            try:
                status, _ = post(ports[i % len(ports)], {**SHIP, "order_id": f"W{i}", "tracking_no": s10_number(i)})
                warm = warm + 1 if status == 200 else 0
            except OSError:
                time.sleep(0.5)
        assert warm >= 20, "the workers never answered"
        time.sleep(2)
        background = Background(settings, args.rate, numbers)
        background.thread.start()
        time.sleep(3)  # the load is flowing before the first measured request
        t_start = time.time() * 1000
        single: list[float] = []
        pending = 0
        for n in range(args.requests):
            i = next(numbers)
            t0 = time.perf_counter()
            status, body = post(ports[n % len(ports)], {**SHIP, "order_id": f"H{i}", "tracking_no": s10_number(i)})
            single.append((time.perf_counter() - t0) * 1000)
            pending += status == 202
            assert body["results"][0] is None or body["results"][0]["verdict"] == "accepted", body
            time.sleep(0.01)
        batch: list[float] = []
        for n in range(args.batches):
            items = []
            for _ in range(100):
                i = next(numbers)
                items.append({**SHIP, "order_id": f"B{i}", "tracking_no": s10_number(i)})
            t0 = time.perf_counter()
            status, body = post(ports[n % len(ports)], {"shipments": items})
            batch.append((time.perf_counter() - t0) * 1000)
            pending += status == 202
        t_end = time.time() * 1000
        background.stop.set()
        background.thread.join(30)
        sent = dict(background.sent)
        window = [e for e, t in sent.items() if t_start <= t <= t_end]
        collector.wait_for(lambda c: all(e in c.by_event for e in window), timeout=120)
        kafka_path = [c[0]["_ts"] - sent[e] for e in window if (c := collector.by_event.get(e))]
        collector.stop()
        print(
            f"broker {'Kafka (1 node)' if args.kafka else 'Tansu'}, {args.workers} workers, "
            f"background {args.rate}/s ({len(window)} submissions in the window, "
            f"{len(window) / ((t_end - t_start) / 1000):,.0f}/s offered)"
        )
        print(line("POST /shipments, 1 shipment", single))
        print(line("POST /shipments, 100 shipments", batch))
        print(line("Kafka path, submission -> verdict record (peer)", kafka_path))
        print(f"202 answers (not decided within 10 s): {pending}")
    finally:
        if background is not None:
            background.stop.set()
        for w in workers:
            w.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
