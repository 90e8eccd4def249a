"""Chaos run: the real failure mix while workers are SIGKILLed, then the auditor must pass.

    .venv/bin/python bench/chaos.py [--events 200000] [--kills 10] [--seed 3]
        [--broker tansu|kafka] [--guarantee exactly_once|at_least_once] [--broker-kill]

A publisher sends the sample (streams.sample: re-pushes, re-typed numbers, forwarders' numbers,
carrier mismatches, backwards ship times, mistyped S10 numbers, broken events; 20% keyed by store
id) at a steady rate while, at random moments, a worker is killed with SIGKILL and restarted,
every other time on a wiped data directory; for part of the run a second worker is up. At the
end every verdict is checked by `trackguard audit`. Prints throughput during the chaos, each
recovery's seconds (restart to the next verdict from any worker) and the violations (expect 0).
The short version of this is tests/integration/test_crash_recovery.py.

`--broker kafka` runs it on a three-node Kafka cluster (replication 3, min ISR 2) from the Maven
jars; `--broker-kill` also SIGKILLs one Kafka node at the 5th worker kill and restarts it at the
6th. With `--guarantee exactly_once` (Kafka only) the auditor runs in exactly-once mode (every
submission answered exactly as often as it was sent, no replay that was not sent as one), and a
read_uncommitted reader counts what the transactions hide: the same run in at-least-once mode
shows the duplicates and replays a consumer would otherwise see. (tests/integration/
test_exactly_once.py is the short version.)
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from streams import settings as settings_mod
from streams.audit import audit
from streams.broker import EmbeddedBroker
from streams.clients import Publisher
from streams.cluster import KafkaCluster
from streams.kafka import VerdictCollector, ensure_topics
from streams.launch import WorkerProcess
from streams.sample import generate


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000, help="first pushes; the mix adds ~14%%")
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--rate", type=int, default=1500, help="submissions per second offered (the run lasts events/rate)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--broker", choices=["tansu", "kafka"], default="tansu")
    ap.add_argument("--guarantee", choices=["auto", "exactly_once", "at_least_once"], default="auto")
    ap.add_argument("--broker-kill", action="store_true", help="kafka: SIGKILL one node mid-run, restart it later")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that `finally` stops what we started
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="tg-chaos-"))
    if args.broker == "kafka":
        broker: Any = KafkaCluster(nodes=3, workdir=work / "kafka", log_dir=work / "kafka-logs").start()
    else:
        broker = EmbeddedBroker(log_path=work / "broker.log").start()
    replication = 3 if args.broker == "kafka" else 1
    os.environ["TRACKGUARD_GUARANTEE"] = args.guarantee  # for the workers (and said in their logs)
    workers: dict[str, WorkerProcess] = {}
    ok = False
    try:
        settings = settings_mod.load(broker=broker.address, replication=replication)
        os.environ["TRACKGUARD_REPLICATION"] = str(replication)
        ensure_topics(settings)
        collector = VerdictCollector(settings).start()
        uncommitted = VerdictCollector(settings, isolation="read_uncommitted").start()
        sample = generate(args.events, settings.carriers, end_ms=int(time.time() * 1000), seed=args.seed)
        n = len(sample)
        pub = Publisher(settings)
        done = threading.Event()

        def publish() -> None:
            t0 = time.perf_counter()
            for i, e in enumerate(sample):
                pub.send(e.value, key=e.store_id.encode() if e.by_store else None)
                if i % 1000 == 999:
                    pub.producer.poll(0)
                    time.sleep(max(0.0, (i + 1) / args.rate - (time.perf_counter() - t0)))
            pub.flush()
            done.set()

        def start(name: str, wipe: bool = False) -> WorkerProcess:
            if wipe:
                shutil.rmtree(work / name, ignore_errors=True)
            workers[name] = WorkerProcess(broker.address, work / name, work / f"{name}.log").start()
            return workers[name]

        start("a")
        collector.wait_count(1, timeout=60)
        t_start = time.time()
        feeder = threading.Thread(target=publish, daemon=True)
        feeder.start()
        recoveries = []
        span = n / args.rate
        for k in range(args.kills):
            time.sleep(rng.uniform(0.4, 1.0) * span / args.kills)
            if k == 2:
                start("b")  # a second worker for the middle of the run
            if k == 6 and "b" in workers:
                workers["b"].stop()
            if args.broker_kill and k == 4:
                broker.kill_node(2)
                print("SIGKILL Kafka node 2", flush=True)
            if args.broker_kill and k == 5:
                broker.start_node(2)
                print("restarted Kafka node 2", flush=True)
            name = "a"
            wipe = k % 2 == 1
            workers[name].kill()
            killed_at = time.time()
            start(name, wipe=wipe)
            # Recovered: a probe submitted right after the restart has its verdict.
            probe = {
                "event_id": f"probe-{k}",
                "license_id": "PROBE",
                "store_id": "P",
                "order_id": f"P{k}",
                "carrier_code": "LOCAL",
                "tracking_no": f"PROBE{k}X{args.seed}",
                "shipped_at": "2026-11-20T08:00:00Z",
            }
            pub.send(probe)
            collector.verdict(probe["event_id"], timeout=180)
            recoveries.append((k + 1, wipe, time.time() - killed_at))
            print(
                f"kill {k + 1}: SIGKILL worker {name}{' and wiped its data' if wipe else ''}"
                f"{' (worker b up)' if 'b' in workers and workers['b'].alive() else ''}; "
                f"a probe decided {recoveries[-1][2]:.1f} s after the kill",
                flush=True,
            )
        feeder.join()
        collector.wait_for(lambda c: len(c.verdicts) >= n + args.kills, timeout=600)
        elapsed = time.time() - t_start
        times = [r[2] for r in recoveries]
        print(
            f"recovery (kill to a probe's verdict): min {min(times):.1f} s, median {sorted(times)[len(times) // 2]:.1f} s, "
            f"max {max(times):.1f} s"
        )
        print(
            f"{n:,} submissions, {len(collector.verdicts):,} verdicts (replays after kills included) in "
            f"{elapsed:.0f} s: {n / elapsed:,.0f} submissions/s through {args.kills} kills"
        )
        exactly_once = "exactly_once" in workers["a"].log_text()
        time.sleep(3.0)  # the read_uncommitted reader: what transactions hide arrives with the rest
        collector.stop()
        uncommitted.stop()
        for name, seen in (("read_committed", collector), ("read_uncommitted", uncommitted)):
            sent = Counter(_event_id(e.value) for e in sample)
            got = Counter(v.get("event_id") for v in seen.verdicts)
            extra = sum(max(0, got[e] - n) for e, n in sent.items())
            print(
                f"{name}: {len(seen.verdicts):,} verdicts; {extra:,} more than the submissions sent "
                f"(duplicates and crash replays); {sum(1 for e, n in sent.items() if got[e] < n)} events short"
            )
        report = audit(settings, idle_s=3.0, exactly_once=exactly_once)
        print(f"guarantee: {'exactly_once' if exactly_once else 'at_least_once'}")
        print(report.render())
        ok = report.ok
        return 0 if ok else 1
    finally:
        for w in workers.values():
            w.stop()
        broker.stop()
        if sys.exc_info()[0] is None and ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept the logs and data in {work}")


def _event_id(value: bytes) -> str | None:
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return body.get("event_id") if isinstance(body, dict) else None


if __name__ == "__main__":
    raise SystemExit(main())
