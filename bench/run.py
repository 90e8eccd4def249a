"""Throughput of trackguard against the bare limit and a Quix Streams peer, plus verdict agreement.

    .venv/bin/python bench/run.py [--broker tansu|kafka] [--events N] [--reps 3] [--only NAME ...] [--out bench/out]

Every run (scenario x repetition) gets a fresh broker: the embedded Tansu (memory only), or with
`--broker kafka` a one-node Apache Kafka (KRaft) on a fresh log dir, so that no state piles up
between runs, and every app gets the same N submissions (fixed seed) on an 8-partition input
topic with nothing else on the broker. Runs go one at a time: this
machine has 2 cores, and the broker, the app and this harness already share them.

Each app (the Quix peer, trackguard with one or two workers) starts on an input topic holding
64 warm-up events; once it has decided them, the N sample events go out in one burst, much faster
than any app decides them, and events/s is N over the time from when the app's CPU shows it at
work on the burst to the last verdict's record timestamp (set by the app's producer). So the
consumer-group join, recovery, producer set-up and the wake-up from an idle fetch are excluded;
process start to first warm-up verdict is reported as "join s" (imports, and for Quix creating
its internal topics, included), the wake-up as `wake_s`. Why not the simpler pre-fill and
first-to-last verdict: see `measure`. The limit is pre-filled and in-process (assign, no join):
first record read to last record flushed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import orjson
from benchlib import (
    PARTITIONS,
    QUIX_TOPIC_CONFIG,
    QUIX_VENV,
    SEED,
    WARMUP_PREFIX,
    BenchBroker,
    BusyProbe,
    Feeder,
    QuixPeer,
    Reader,
    broker_version,
    cpu_seconds,
    create_topics,
    ensure_quix_venv,
    keyed,
    now_ms,
    sample,
    summary,
    warmups,
)
from confluent_kafka import Consumer, Producer, TopicPartition

from streams import settings as settings_mod
from streams.hotpath import producer_config
from streams.kafka import ensure_topics
from streams.launch import WorkerProcess

INPUT = "shipments.submitted"  # every scenario reads the same topic name on its own fresh broker
PEER_OUTPUT = "peer.verdicts"
LIMIT_OUTPUT = "limit.out"
WARMUPS = 64  # events decided before the burst: several per input partition with either keying


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # limit | quix | trackguard
    keying: str  # number | store
    workers: int = 1


SCENARIOS = [
    Scenario("limit", "limit", "number"),
    Scenario("quix-number", "quix", "number"),
    Scenario("quix-store", "quix", "store"),
    Scenario("kstreams-number", "kstreams", "number"),  # Kafka only (--broker kafka)
    Scenario("kstreams-store", "kstreams", "store"),
    Scenario("tg1-number", "trackguard", "number", 1),
    Scenario("tg1-store", "trackguard", "store", 1),
    Scenario("tg2-number", "trackguard", "number", 2),
    Scenario("tg2-store", "trackguard", "store", 2),
    Scenario("tg4-number", "trackguard", "number", 4),  # scale-out (issue 19): with --partitions 8 / 32
    Scenario("tg4-store", "trackguard", "store", 4),
]


class Run:
    """One scenario repetition: its broker, its directories, and everything it started."""

    def __init__(
        self, out: Path, scenario: Scenario, rep: int, events: list, end_ms: int, partitions: int = PARTITIONS
    ) -> None:
        self.scenario, self.rep, self.events, self.end_ms = scenario, rep, events, end_ms
        self.partitions = partitions
        self.warmups = warmups(WARMUPS, end_ms)
        self.logs = out / "logs" / scenario.name / f"rep{rep}"
        self.work = out / "work" / f"{scenario.name}-rep{rep}"
        shutil.rmtree(self.logs, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)
        self.logs.mkdir(parents=True)
        self.work.mkdir(parents=True)
        self.timeout = 60 + len(events) / 500  # generous: ~10x the slowest rate seen, plus start-up

    def settings(self, broker: BenchBroker, **overrides):
        return settings_mod.load(
            broker=broker.address, data_dir=self.work / "data", partitions=self.partitions, **overrides
        )


# --- the limit: no framework, no state ------------------------------------------------------------


def run_limit(run: Run, broker: BenchBroker) -> dict:
    """confluent-kafka consume -> orjson parse -> produce, in this process, with the worker's producer settings."""
    settings = run.settings(broker)
    create_topics(broker.address, [INPUT, LIMIT_OUTPUT], partitions=run.partitions)
    publish_s = Feeder(settings).send(keyed(run.events, "number"))
    n = len(run.events)
    c = Consumer(
        {
            "bootstrap.servers": broker.address,
            "group.id": "limit",
            "enable.auto.commit": False,
            "log.connection.close": False,
        }
    )
    p = Producer(producer_config(settings, **{"client.id": "limit"}))
    try:
        # The idempotent producer's first flush waits ~0.5 s for its producer id on Tansu: a start-up
        # cost (the apps pay it before their first verdict), so it is paid before the clock starts.
        p.produce(LIMIT_OUTPUT, b"warm-up")
        p.flush(30)
        # assign, not subscribe: a group join is not part of the limit
        c.assign([TopicPartition(INPUT, i, 0) for i in range(run.partitions)])
        seen, t_first = 0, None
        deadline = time.monotonic() + run.timeout
        while seen < n and time.monotonic() < deadline:
            # consume(n, timeout) waits for n records *or* the timeout: keep the timeout short, or
            # the last, partial batch would sit out the whole timeout on the clock
            msgs = c.consume(5000, 0.005)
            if msgs and t_first is None:
                t_first = time.monotonic()
            for m in msgs:
                if m.error():
                    continue
                seen += 1
                try:
                    out = orjson.dumps({"event_id": orjson.loads(m.value()).get("event_id"), "verdict": "pass"})
                except (orjson.JSONDecodeError, AttributeError):
                    out = m.value()
                while True:
                    try:
                        p.produce(LIMIT_OUTPUT, out, m.key())
                        break
                    except BufferError:
                        p.poll(0.05)
            p.poll(0)
        left = p.flush(60)
        seconds = time.monotonic() - (t_first or time.monotonic())
    finally:
        c.close()
    if seen < n or left:
        raise RuntimeError(f"limit: read {seen} of {n}, {left} not delivered")
    return {
        "events": n,
        "verdicts": seen,
        "seconds": seconds,
        "rate": n / seconds,
        "join_s": 0.0,
        "publish_s": publish_s,
    }


# --- the apps: warm-up, then the measured burst ----------------------------------------------------


def measure(run: Run, broker: BenchBroker, reader: Reader, start, alive, pids, where: str, ready=lambda: None) -> dict:
    """Start the app on a topic holding only the warm-up events; once it has decided them, send the
    N sample events in one burst, and time from when the app starts working on it to its last verdict.

    Why not pre-fill all N and time first-to-last verdict: trackguard decides a fetch (up to
    batch_max = 5,000 events) as one batch and produces its verdicts after it, so the first batch's
    work happens before the first verdict and is not counted: on 10,000 pre-filled events its
    verdicts came in two bursts 0.26 s apart ("38,600 events/s") while it was busy for ~0.5 s.
    The burst goes out at several 100,000 events/s, so the app still works through a backlog, as
    on a pre-filled topic; the join, the recovery and the producers' set-up all happen before it.
    The clock starts when the app's CPU shows it at work (BusyProbe), not at the burst: an idle
    app first waits out its long-poll fetch (trackguard ~0.3 s here), which a pre-filled topic
    would not cost it; that wait is reported as `wake_s` and in `rate_from_burst`.
    """
    n, w = len(run.events), len(run.warmups)
    feeder = Feeder(run.settings(broker))
    feeder.send(keyed(run.warmups, run.scenario.keying))  # waiting when the app starts
    t0 = now_ms()
    start()
    if not reader.wait_count(w, run.timeout, alive):
        raise RuntimeError(
            f"{run.scenario.name}: {reader.count} of {w} warm-up verdicts after "
            f"{run.timeout:.0f} s, app {'running' if alive() else 'exited'}; {where}"
        )
    join_s = (reader.first_ts_ms - t0) / 1000
    ready()
    cpu_pids = {"app": pids(), "broker": broker.pids}
    cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in cpu_pids.items()} | {"harness": time.process_time()}
    wall0 = time.monotonic()
    probe = BusyProbe(cpu_pids["app"]).start()
    burst_start = now_ms()
    burst_s = feeder.send(keyed(run.events, run.scenario.keying))
    if not reader.wait_count(w + n, run.timeout, alive):
        probe.stop()
        raise RuntimeError(
            f"{run.scenario.name}: {reader.count - w} of {n} verdicts after {run.timeout:.0f} s, "
            f"app {'running' if alive() else 'exited'}; {where}"
        )
    busy_ms = probe.stop()
    # CPU seconds from the burst's start until its last verdict was read here
    cpu = {k: sum(cpu_seconds(p) for p in v) - cpu0[k] for k, v in cpu_pids.items()}
    cpu["harness"] = time.process_time() - cpu0["harness"]
    cpu["wall"] = time.monotonic() - wall0
    reader.settle(1.0)  # more than w + n means replays (e.g. after a rebalance): reported as `extra`
    start_ms = max(busy_ms or burst_start, burst_start)
    span_s = max(reader.last_ts_ms - start_ms, 1) / 1000
    values = [v for v in reader.decoded() if not str(v.get("event_id") or "").startswith(WARMUP_PREFIX)]
    return {
        "events": n,
        "verdicts": len(values),
        "extra": reader.count - w - n,
        "seconds": span_s,
        "rate": n / span_s,
        "join_s": join_s,
        # from the burst's start instead: includes waking up from an idle long-poll fetch
        "rate_from_burst": n / (max(reader.last_ts_ms - burst_start, 1) / 1000),
        "wake_s": (start_ms - burst_start) / 1000,
        "busy_detected": busy_ms is not None,
        "burst_send_s": burst_s,
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        "_values": values,
    }


def run_peer(run: Run, broker: BenchBroker) -> dict:
    """A peer app with the same first-wins rule: Quix Streams, or Kafka Streams (bench/kstreams-peer:
    one stream thread, RocksDB store with a changelog, at-least-once)."""
    if run.scenario.kind == "quix":
        peer_class, config = QuixPeer, QUIX_TOPIC_CONFIG
    else:
        from kstreams_peer import KStreamsPeer as peer_class  # noqa: N813 - builds with Maven on first use

        config = None
    create_topics(broker.address, [INPUT, PEER_OUTPUT], config, partitions=run.partitions)
    reader = Reader(broker.address, [PEER_OUTPUT]).start()
    peer = peer_class(
        broker.address,
        INPUT,
        PEER_OUTPUT,
        run.work / f"{run.scenario.kind}-state",
        run.logs / f"{run.scenario.kind}.log",
        group_by=run.scenario.keying == "store",
    )
    try:
        return measure(run, broker, reader, peer.start, peer.alive, lambda: [peer.process.pid], f"see {peer.log_path}")
    finally:
        peer.stop()
        reader.stop()


def run_trackguard(run: Run, broker: BenchBroker) -> dict:
    settings = run.settings(broker)
    ensure_topics(settings)  # the worker's own topic set, 8 partitions each
    reader = Reader(broker.address, list(settings.topics.verdicts)).start()
    workers = [
        WorkerProcess(
            broker.address,
            run.work / f"w{i}",
            run.logs / f"worker{i}.log",
            env={"TRACKGUARD_PARTITIONS": str(run.partitions)},
        )
        for i in range(run.scenario.workers)
    ]
    try:
        result = measure(
            run,
            broker,
            reader,
            lambda: [w.start() for w in workers],
            lambda: all(w.alive() for w in workers),
            lambda: [w.pid for w in workers],
            f"see {run.logs}/worker*.log",
            ready=lambda: one_generation(workers, run.timeout),
        )
        result["worker_pids"] = [w.pid for w in workers]
        return result
    finally:
        for w in workers:
            w.stop()
        reader.stop()


JOINED = re.compile(r"Joined group '[^']+' \(generation (\d+)\)")


def one_generation(workers: list[WorkerProcess], timeout: float, calm_s: float = 2.0) -> None:
    """With several workers, wait until all joined the same group generation, recovered, and no
    rebalance followed for `calm_s`: a late joiner would otherwise rebalance in the middle of the burst.
    (Read from the workers' faust logs: Tansu's DescribeGroups answers STABLE with no members.)"""
    if len(workers) < 2:
        return
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        state = []
        for w in workers:
            text = w.log_text()
            joins = list(JOINED.finditer(text))
            ready = bool(joins) and "Worker ready" in text[joins[-1].end() :]
            state.append((joins[-1].group(1) if joins else None, ready))
        if state != last:
            last, since = state, time.monotonic()
        elif all(r for _, r in state) and len({g for g, _ in state}) == 1 and time.monotonic() - since >= calm_s:
            return
        time.sleep(0.2)
    raise RuntimeError(f"workers not settled in one group generation: {last}")


RUNNERS = {"limit": run_limit, "quix": run_peer, "kstreams": run_peer, "trackguard": run_trackguard}


# --- verdict agreement ----------------------------------------------------------------------------


def causes_by_event_id(events: list) -> dict[str, list[str]]:
    """What the sample meant each event id to exercise (an id re-pushed as-is has two entries)."""
    out: dict[str, list[str]] = defaultdict(list)
    for e in events:
        try:
            out[orjson.loads(e.value).get("event_id")].append(e.cause)
        except (orjson.JSONDecodeError, AttributeError):
            pass
    return out


def agreement(tg: list[dict], peer: list[dict], events: list) -> dict:
    """Per normalized number, the event ids accepted as a first use must be the same in both.

    trackguard: verdict "accepted" and not a replay (an event-id replay and SAME_ORDER_REPUSH both
    carry replay=true). Peer: "accepted", i.e. the first readable event of the number.
    """

    def first_uses(verdicts: list[dict], is_first) -> dict[str, set]:
        out: dict[str, set] = defaultdict(set)
        for v in verdicts:
            if is_first(v):
                out[v["tracking_no"]].add(v["event_id"])
        return out

    tg_first = first_uses(
        tg, lambda v: v["verdict"] == "accepted" and not v.get("replay") and v.get("reason") != "SAME_ORDER_REPUSH"
    )
    peer_first = first_uses(peer, lambda v: v["verdict"] == "accepted")
    tg_by_event: dict[str, list[str]] = defaultdict(list)
    for v in tg:
        tg_by_event[v.get("event_id")].append(v["verdict"] + ("/" + v["reason"] if v["verdict"] != "accepted" else ""))
    peer_by_event: dict[str, list[str]] = defaultdict(list)
    for v in peer:
        peer_by_event[v.get("event_id")].append(v["verdict"])
    causes = causes_by_event_id(events)

    kinds: Counter = Counter()
    examples: list[dict] = []
    numbers = set(tg_first) | set(peer_first)
    disagreeing = [n for n in numbers if tg_first.get(n, set()) != peer_first.get(n, set())]
    for number in sorted(disagreeing):
        a, b = tg_first.get(number, set()), peer_first.get(number, set())
        labels = []
        for e in sorted(b - a):  # the peer took it as the first use, trackguard did not
            labels.append(
                f"peer accepted [{'/'.join(causes.get(e, ['?']))}], trackguard: {','.join(tg_by_event.get(e, ['none']))}"
            )
        for e in sorted(a - b):
            labels.append(
                f"trackguard accepted [{'/'.join(causes.get(e, ['?']))}], peer: {','.join(peer_by_event.get(e, ['none']))}"
            )
        kind = "; ".join(labels)
        kinds[kind] += 1
        if len(examples) < 8:
            examples.append({"tracking_no": number, "trackguard": sorted(a), "peer": sorted(b), "why": kind})
    return {
        "numbers": len(numbers),
        "disagreements": len(disagreeing),
        "kinds": kinds.most_common(),
        "examples": examples,
    }


# --- driver ------------------------------------------------------------------------------------------


def select(only: list[str] | None) -> list[Scenario]:
    if not only:
        return SCENARIOS
    chosen = [s for s in SCENARIOS if any(s.name == o or s.name.startswith(o) or s.kind == o for o in only)]
    if not chosen:
        raise SystemExit(f"no scenario matches {only}; names: {', '.join(s.name for s in SCENARIOS)}")
    return chosen


def versions(broker: str) -> dict:
    import confluent_kafka
    import faust

    out = {
        "python": platform.python_version(),
        "faust-streaming": faust.__version__,
        "confluent-kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
        "cores": os.cpu_count(),
    }
    out["broker"] = broker_version(broker)
    for name, cmd in {
        "quixstreams": [str(QUIX_VENV / "bin" / "python"), "-c", "import quixstreams; print(quixstreams.__version__)"]
    }.items():
        try:
            out[name] = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
        except OSError:
            out[name] = None
    return out


def print_table(results: dict, events: int) -> None:
    head = f"{'scenario':<12} {'keying':<7} {'events':>7} {'events/s':>9} {'min':>9} {'max':>9} {'join s':>7}  note"
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<12} {r['keying']:<7} {events:>7}  FAILED: {r['error']}")
            continue
        rate, join = r["events_per_s"], r["join_s"]
        note = ""
        if "wake_s" in r:
            note = f"from burst start {r['rate_from_burst']['median']:,.0f}/s (wake-up {r['wake_s']['median']:.2f} s)"
        if any(run.get("extra") for run in r["runs"]):
            note += f" extra verdicts: {[run.get('extra') for run in r['runs']]}"
        print(
            f"{name:<12} {r['keying']:<7} {events:>7} {rate['median']:>9,.0f} {rate['min']:>9,.0f} "
            f"{rate['max']:>9,.0f} {join['median']:>7.1f}  {note}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--broker",
        choices=["tansu", "kafka"],
        default="tansu",
        help="a fresh embedded Tansu, or a fresh one-node Apache Kafka, per run",
    )
    ap.add_argument("--events", type=int, default=40_000, help="submissions in the pre-filled input topic")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per scenario; medians are reported")
    ap.add_argument("--only", nargs="+", help="scenario names or prefixes: " + ", ".join(s.name for s in SCENARIOS))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    ap.add_argument("--keep-data", action="store_true", help="keep RocksDB/state directories of each run")
    ap.add_argument("--partitions", type=int, default=PARTITIONS, help="partitions of every topic (scale-out runs)")
    args = ap.parse_args()

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    scenarios = select(args.only)
    if args.broker == "tansu":  # the Kafka Streams peer is measured on Kafka only
        scenarios = [s for s in scenarios if s.kind != "kstreams"]
    if any(s.kind == "quix" for s in scenarios):
        ensure_quix_venv()
    if any(s.kind == "kstreams" for s in scenarios):
        from kstreams_peer import ensure_kstreams_peer

        ensure_kstreams_peer()
    base = settings_mod.load()
    # A fixed end time (today, midnight UTC) with the fixed seed: the same events in every scenario.
    end_ms = int(time.time() // 86_400 * 86_400 * 1000)
    events = sample(args.events, base, end_ms)
    mix = Counter(e.cause for e in events)
    print(
        f"{broker_version(args.broker)}: {len(events)} submissions (seed {SEED}), {args.partitions} partitions, {args.reps} rep(s); "
        f"causes: {dict(mix.most_common())}",
        flush=True,
    )

    results: dict[str, dict] = {}
    last_values: dict[str, list[dict]] = {}
    for sc in scenarios:
        runs = []
        for rep in range(1, args.reps + 1):
            run = Run(out, sc, rep, events, end_ms, args.partitions)
            broker = BenchBroker(args.broker, run.work, run.logs)
            try:
                broker.start()
                r = RUNNERS[sc.kind](run, broker)
                runs.append(r)
                extra = f", {r['extra']} extra" if r.get("extra") else ""
                cpu = r.get("cpu_s")
                cpu = (
                    f"; CPU s app {cpu['app']}, broker {cpu['broker']}, harness {cpu['harness']} in {cpu['wall']:.2f} s"
                    if cpu
                    else ""
                )
                wake = f", wake-up {r['wake_s']:.2f} s" if "wake_s" in r else ""
                if r.get("busy_detected") is False:
                    wake += " (not seen on CPU: timed from the burst)"
                print(
                    f"  {sc.name} rep {rep}: {r['rate']:,.0f} events/s over {r['seconds']:.2f} s{wake}, "
                    f"join {r['join_s']:.1f} s, {r['verdicts']} verdicts{extra}{cpu}",
                    flush=True,
                )
            except Exception as exc:
                print(f"  {sc.name} rep {rep}: FAILED: {exc}", flush=True)
                runs.append({"error": str(exc)})
            finally:
                broker.stop()
                if not args.keep_data:
                    shutil.rmtree(run.work, ignore_errors=True)
        ok = [r for r in runs if "error" not in r]
        if ok:
            last_values[sc.name] = ok[-1].get("_values", [])
        for r in runs:
            r.pop("_values", None)
        entry = {"kind": sc.kind, "keying": sc.keying, "workers": sc.workers, "runs": runs}
        if ok:
            entry["events_per_s"] = summary([r["rate"] for r in ok])
            entry["join_s"] = summary([r["join_s"] for r in ok])
            if sc.kind != "limit":
                entry["rate_from_burst"] = summary([r["rate_from_burst"] for r in ok])
                entry["wake_s"] = summary([r["wake_s"] for r in ok])
        else:
            entry["error"] = runs[-1]["error"]
        results[sc.name] = entry

    agreements = {}
    for keying in ("number", "store"):
        for peer_name in ("quix", "kstreams"):
            tg, peer = last_values.get(f"tg1-{keying}"), last_values.get(f"{peer_name}-{keying}")
            if tg is not None and peer is not None:
                agreements[f"{keying}, {peer_name}"] = agreement(tg, peer, events)
    verdict_mix = {}
    if "tg1-number" in last_values:
        verdict_mix = dict(
            Counter(
                f"{v['verdict']}/{v['reason']}" + (" (replay)" if v.get("replay") else "")
                for v in last_values["tg1-number"]
            ).most_common()
        )

    print()
    print_table(results, len(events))
    for keying, a in agreements.items():
        print(f"\nagreement with the peer, keyed by {keying}: {a['disagreements']} of {a['numbers']} numbers differ")
        for kind, count in a["kinds"]:
            print(f"  {count:>5}  {kind}")

    doc = {
        "meta": {
            "events": len(events),
            "reps": args.reps,
            "seed": SEED,
            "end_ms": end_ms,
            "partitions": args.partitions,
            "sample_causes": dict(mix.most_common()),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": versions(args.broker),
            "broker": args.broker,
            "method": "fresh broker per run; the app starts on 64 warm-up events, then the N events are sent "
            "in one burst; events/s = N / (last verdict record timestamp - burst start); join_s = app "
            "process start to first warm-up verdict; "
            "limit = in-process consume/parse/produce from first record read to producer flush; "
            "verdicts counted by reading them back",
        },
        "scenarios": results,
        "agreement": agreements,
        "trackguard_verdict_mix": verdict_mix,
    }
    path = out / f"results-{args.broker}.json"
    path.write_text(json.dumps(doc, indent=2, default=str))
    print(f"\nwrote {path}")
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
