"""Submission-to-verdict latency of one trackguard worker, and of the Quix Streams peer, at fixed
offered loads, and a plot.

    .venv/bin/python bench/latency.py [--broker tansu|kafka] [--apps trackguard quix]
                                      [--loads 1000 5000 20000] [--seconds 10] [--out bench/out]

For each app in turn, one fresh broker (embedded Tansu, or a one-node Apache Kafka) and one app
process; after the app has joined and decided 64 warm-up events, each offered load runs for `--seconds`, paced by a producer loop in this process, and the
next one starts when every verdict of the previous one is in. Events come from the same realistic
sample as bench/run.py (keyed by normalized number, as `trackguard import` does), each phase with
its own slice of it.

Latency of an event = (when its verdict was seen) - (its submission's Kafka timestamp), where the
submission's timestamp is the wall clock at which this loop handed it to the producer. "When the
verdict was seen" is measured two ways, both reported:
  * receive: the wall clock when this process's consumer received the verdict (what a downstream
    subscriber sees; the reader polls every 5 ms with fetch.wait.max.ms=20). The plot shows this.
  * decided: the verdict record's own timestamp, the CreateTime the worker's producer set when it
    produced the verdict (excludes the verdict's trip through the broker to a subscriber).
Both clocks are this machine's. Latency grows without bound once the offered load exceeds what the
worker can decide: the achieved events/s beside it tells which regime a point is in.

An idle worker took ~0.75 s to decide a lone submission here (a plain aiokafka consumer on the same
broker wakes in ~0.08 s), against ~0.05 s p50 under a steady 1,000/s; so percentiles are also
given for the events sent after each load's first second (`receive_after_first_s_ms`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import defaultdict, deque
from pathlib import Path

import orjson
from benchlib import (
    QUIX_TOPIC_CONFIG,
    WARMUP_PREFIX,
    BenchBroker,
    Feeder,
    QuixPeer,
    Reader,
    broker_version,
    cpu_seconds,
    create_topics,
    ensure_quix_venv,
    keyed,
    now_ms,
    paced_send,
    sample,
    warmups,
)

from streams import settings as settings_mod
from streams.kafka import ensure_topics
from streams.launch import WorkerProcess

PEER_INPUT, PEER_OUTPUT = "shipments.submitted", "peer.verdicts"


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None if empty: JSON has no NaN)."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def match(
    events: list, stamps: list[int], verdicts: list[tuple[dict, int, int]], steady_from_ms: int
) -> tuple[list[int], list[int], list[int], int]:
    """Pair each verdict with its submission by event id (an id sent twice: in order).

    Returns sorted latencies by receive time, by verdict timestamp, by receive time of the events
    sent from `steady_from_ms` on, and how many verdicts had no submission to pair with.
    """
    sent: dict[str, deque] = defaultdict(deque)
    for e, ts in zip(events, stamps):
        try:
            sent[orjson.loads(e.value).get("event_id")].append(ts)
        except (orjson.JSONDecodeError, AttributeError):
            pass  # unreadable submissions: their verdicts carry no event id either
    receive, decided, steady, unmatched = [], [], [], 0
    for v, verdict_ts, recv_ms in verdicts:
        queue = sent.get(v.get("event_id"))
        if not queue:
            unmatched += 1
            continue
        submitted = queue.popleft()
        receive.append(recv_ms - submitted)
        decided.append(verdict_ts - submitted)
        if submitted >= steady_from_ms:
            steady.append(recv_ms - submitted)
    return sorted(receive), sorted(decided), sorted(steady), unmatched


def plot(results: dict[str, list[dict]], path: Path, broker: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display here
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    offered_all: list[float] = []
    for (app, phases), color in zip(results.items(), ("tab:blue", "tab:orange", "tab:green")):
        offered = [p["offered_per_s"] for p in phases]
        offered_all += offered
        left.plot(offered, [p["achieved_per_s"] for p in phases], "o-", color=color, label=f"{app}: decided/s")
        for key, style in (("p50", "o--"), ("p99", "^-")):
            right.plot(offered, [p["receive_ms"][key] for p in phases], style, color=color, label=f"{app} {key}")
    offered_all = sorted(set(offered_all))
    left.plot(offered_all, offered_all, ":", color="grey", label="offered (ideal)")
    left.set_ylabel("events/s")
    left.set_title("throughput, one process")
    right.set_ylabel("submission -> verdict received, ms")
    right.set_title("latency")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered load, events/s")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers, not 10^x
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_formatter(plt.NullFormatter())
    seconds = next(iter(results.values()))[0]["seconds"] if results else 0
    fig.suptitle(f"{broker_version(broker)}, 2-core machine, {seconds:g} s per load", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class App:
    """What a latency run starts: a trackguard worker, or the Quix peer, on its own broker."""

    def __init__(self, name: str, broker: BenchBroker, work: Path, logs: Path, keying: str) -> None:
        self.name = name
        if name.startswith("trackguard"):
            settings = settings_mod.load(broker=broker.address, data_dir=work / "data")
            ensure_topics(settings)
            self.outputs = list(settings.topics.verdicts)
            # "trackguard": the default guarantee (exactly once on Kafka, probed); "trackguard-alo":
            # at least once, for the cost of the transactions on the same kind of broker.
            env = {"TRACKGUARD_GUARANTEE": "at_least_once"} if name == "trackguard-alo" else None
            self.process = WorkerProcess(broker.address, work / "w0", logs / "worker.log", env=env)
            self.log = logs / "worker.log"
        else:
            create_topics(broker.address, [PEER_INPUT, PEER_OUTPUT], QUIX_TOPIC_CONFIG)
            self.outputs = [PEER_OUTPUT]
            self.process = QuixPeer(
                broker.address,
                PEER_INPUT,
                PEER_OUTPUT,
                work / "quix-state",
                logs / "quix.log",
                group_by=keying == "store",
            )
            self.log = logs / "quix.log"

    def start(self) -> None:
        self.process.start()

    def alive(self) -> bool:
        return self.process.alive()

    @property
    def pid(self) -> int | None:
        return self.process.process.pid if self.process.process else None

    def stop(self) -> None:
        self.process.stop()


def run_app(name: str, args: argparse.Namespace, events: list, counts: list[int], end_ms: int, out: Path) -> list[dict]:
    logs, work = out / "logs" / f"latency-{args.broker}-{name}", out / "work" / f"latency-{name}"
    shutil.rmtree(logs, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    logs.mkdir(parents=True)
    work.mkdir(parents=True)  # faust creates its data dir, but not the parents
    broker = BenchBroker(args.broker, work, logs)
    app = reader = feeder = None
    phases: list[dict] = []
    try:
        broker.start()
        app = App(name, broker, work, logs, args.keying)
        reader = Reader(broker.address, app.outputs, keep_times=True, poll_s=0.005).start()
        feeder = Feeder(settings_mod.load(broker=broker.address))  # to shipments.submitted, which both apps read
        warm = warmups(64, end_ms)
        feeder.send(keyed(warm, args.keying))
        t0 = now_ms()
        app.start()
        if not reader.wait_count(len(warm), 120, app.alive):
            raise RuntimeError(f"no warm-up verdicts; see {app.log}")
        print(f"{name} pid {app.pid}: first verdict {(reader.first_ts_ms - t0) / 1000:.1f} s after start", flush=True)

        offset = 0
        for rate, count in zip(args.loads, counts):
            chunk = events[offset : offset + count]
            offset += count
            before = reader.count
            cpu0 = (
                cpu_seconds(app.pid),
                sum(cpu_seconds(p) for p in broker.pids),
                time.process_time(),
                time.monotonic(),
            )
            phase_start = now_ms()
            stamps, sent_rate = paced_send(feeder, keyed(chunk, args.keying), rate)
            # all verdicts of this load in before the next starts (backlog included when saturated)
            if not reader.wait_count(before + count, 60 + count / 1000, app.alive):
                raise RuntimeError(f"load {rate:g}/s: {reader.count - before} of {count} verdicts; see {logs}")
            cpu = {
                "app": cpu_seconds(app.pid) - cpu0[0],
                "broker": sum(cpu_seconds(p) for p in broker.pids) - cpu0[1],
                "harness": time.process_time() - cpu0[2],
                "wall": time.monotonic() - cpu0[3],
            }
            reader.settle(0.5)
            with reader._cond:  # a consistent snapshot of this phase's records
                raw, times = reader.raw[before:], reader.times[before:]
            verdicts = [(orjson.loads(v), ts, recv) for v, (ts, recv) in zip(raw, times)]
            verdicts = [x for x in verdicts if not str(x[0].get("event_id") or "").startswith(WARMUP_PREFIX)]
            # The first second of a load includes waking the app from idle: reported apart too.
            receive, decided, steady, unmatched = match(chunk, stamps, verdicts, phase_start + 1000)
            last_ts = max(ts for _, ts, _ in verdicts)
            phase = {
                "offered_per_s": rate,
                "seconds": args.seconds,
                "events": count,
                "sent_per_s": sent_rate,
                "achieved_per_s": count / max((last_ts - phase_start) / 1000, 1e-3),
                "matched": len(receive),
                "unmatched": unmatched,
                "receive_ms": {f"p{q}": percentile(receive, q) for q in (50, 95, 99)} | {"max": receive[-1]},
                "decided_ms": {f"p{q}": percentile(decided, q) for q in (50, 95, 99)} | {"max": decided[-1]},
                "receive_after_first_s_ms": {f"p{q}": percentile(steady, q) for q in (50, 95, 99)},
                "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
            }
            phases.append(phase)
            r, d = phase["receive_ms"], phase["decided_ms"]
            print(
                f"  {name} offered {rate:>8,.0f}/s (sent {sent_rate:>8,.0f}/s): decided {phase['achieved_per_s']:>8,.0f}/s; "
                f"received p50 {r['p50']:.0f} p95 {r['p95']:.0f} p99 {r['p99']:.0f} max {r['max']:.0f} ms; "
                f"decided p50 {d['p50']:.0f} p99 {d['p99']:.0f} ms; after 1st s p99 "
                f"{phase['receive_after_first_s_ms']['p99'] or '-'} ms; CPU s app {cpu['app']:.1f}, "
                f"broker {cpu['broker']:.1f}, harness {cpu['harness']:.1f} in {cpu['wall']:.1f} s",
                flush=True,
            )
    finally:
        if reader is not None:
            reader.stop()
        if app is not None:
            app.stop()
        feeder = None  # its producer goes before the broker, or librdkafka logs refused reconnects
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    return phases


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker", choices=["tansu", "kafka"], default="tansu")
    ap.add_argument(
        "--apps", nargs="+", choices=["trackguard", "trackguard-alo", "quix"], default=["trackguard", "quix"]
    )
    ap.add_argument("--loads", type=float, nargs="+", default=[1000, 5000, 20000], help="offered events/s")
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each load")
    ap.add_argument("--keying", choices=["number", "store"], default="number")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    args = ap.parse_args()
    sys.setswitchinterval(0.0005)  # the pacing loop and the reader thread share the GIL: keep hand-offs short

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if "quix" in args.apps:
        ensure_quix_venv()
    counts = [int(rate * args.seconds) for rate in args.loads]
    end_ms = int(time.time() // 86_400 * 86_400 * 1000)
    events = sample(sum(counts), settings_mod.load(), end_ms)
    print(
        f"{broker_version(args.broker)}: {len(events)} submissions over {len(counts)} loads of "
        f"{args.seconds:g} s: {counts}",
        flush=True,
    )
    results = {app: run_app(app, args, events, counts, end_ms, out) for app in args.apps}
    (out / f"latency-{args.broker}.json").write_text(
        json.dumps({"broker": broker_version(args.broker), "keying": args.keying, "apps": results}, indent=2)
    )
    plot(results, out / f"latency-{args.broker}.png", args.broker)
    print(f"wrote {out / f'latency-{args.broker}.json'} and {out / f'latency-{args.broker}.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
