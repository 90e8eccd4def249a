"""Submission-to-verdict latency of one trackguard worker at fixed offered loads, and a plot.

    .venv/bin/python bench/latency.py [--loads 1000 5000 20000] [--seconds 10] [--out bench/out]

One fresh embedded broker and one worker; after the worker has joined and decided 64 warm-up
events, each offered load runs for `--seconds`, paced by a producer loop in this process, and the
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

from benchlib import WARMUP_PREFIX, Feeder, Reader, cpu_seconds, keyed, now_ms, paced_send, sample, warmups
from streams import settings as settings_mod
from streams.broker import EmbeddedBroker
from streams.kafka import ensure_topics
from streams.launch import WorkerProcess


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None if empty: JSON has no NaN)."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def match(events: list, stamps: list[int], verdicts: list[tuple[dict, int, int]],
          steady_from_ms: int) -> tuple[list[int], list[int], list[int], int]:
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


def plot(phases: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display here
    import matplotlib.pyplot as plt

    offered = [p["offered_per_s"] for p in phases]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(offered, [p["achieved_per_s"] for p in phases], "o-", label="decided events/s")
    left.plot(offered, offered, ":", color="grey", label="offered (ideal)")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("offered load, events/s")
    left.set_ylabel("events/s")
    left.set_title("throughput, one worker")
    left.legend()
    for key, style in (("p50", "o--"), ("p95", "s--"), ("p99", "^-")):
        right.plot(offered, [p["receive_ms"][key] for p in phases], style, label=key)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("offered load, events/s")
    right.set_ylabel("submission -> verdict received, ms")
    right.set_title("latency")
    right.legend()
    from matplotlib.ticker import ScalarFormatter

    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers, not 10^x
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_formatter(plt.NullFormatter())
    seconds = phases[0]["seconds"] if phases else 0
    fig.suptitle(f"trackguard, embedded Tansu broker, 2-core machine, {seconds:g} s per load", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", type=float, nargs="+", default=[1000, 5000, 20000], help="offered events/s")
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each load")
    ap.add_argument("--keying", choices=["number", "store"], default="number")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    args = ap.parse_args()
    sys.setswitchinterval(0.0005)  # the pacing loop and the reader thread share the GIL: keep hand-offs short

    out = Path(args.out).resolve()
    logs, work = out / "logs" / "latency", out / "work" / "latency"
    shutil.rmtree(logs, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    logs.mkdir(parents=True)
    work.mkdir(parents=True)  # faust creates its data dir, but not the parents
    counts = [int(rate * args.seconds) for rate in args.loads]
    end_ms = int(time.time() // 86_400 * 86_400 * 1000)
    base = settings_mod.load()
    events = sample(sum(counts), base, end_ms)
    print(f"{len(events)} submissions over {len(counts)} loads of {args.seconds:g} s: {counts}", flush=True)

    broker = EmbeddedBroker(log_path=logs / "broker.log")
    worker = reader = feeder = None
    phases: list[dict] = []
    try:
        broker.start()
        settings = settings_mod.load(broker=broker.address, data_dir=work / "data")
        ensure_topics(settings)
        reader = Reader(broker.address, list(settings.topics.verdicts), keep_times=True, poll_s=0.005).start()
        feeder = Feeder(settings)
        warm = warmups(64, end_ms)
        feeder.send(keyed(warm, args.keying))
        t0 = now_ms()
        worker = WorkerProcess(broker.address, work / "w0", logs / "worker.log").start()
        if not reader.wait_count(len(warm), 120, worker.alive):
            raise RuntimeError(f"no warm-up verdicts; see {logs / 'worker.log'}")
        print(f"worker pid {worker.pid}: first verdict {(reader.first_ts_ms - t0) / 1000:.1f} s after start", flush=True)

        offset = 0
        for rate, count in zip(args.loads, counts):
            chunk = events[offset:offset + count]
            offset += count
            before = reader.count
            cpu0 = (cpu_seconds(worker.pid), cpu_seconds(broker.process.pid), time.process_time(), time.monotonic())
            phase_start = now_ms()
            stamps, sent_rate = paced_send(feeder, keyed(chunk, args.keying), rate)
            # all verdicts of this load in before the next starts (backlog included when saturated)
            if not reader.wait_count(before + count, 60 + count / 1000, worker.alive):
                raise RuntimeError(f"load {rate:g}/s: {reader.count - before} of {count} verdicts; see {logs}")
            cpu = {"worker": cpu_seconds(worker.pid) - cpu0[0], "broker": cpu_seconds(broker.process.pid) - cpu0[1],
                   "harness": time.process_time() - cpu0[2], "wall": time.monotonic() - cpu0[3]}
            reader.settle(0.5)
            with reader._cond:  # a consistent snapshot of this phase's records
                raw, times = reader.raw[before:], reader.times[before:]
            verdicts = [(orjson.loads(v), ts, recv) for v, (ts, recv) in zip(raw, times)]
            verdicts = [x for x in verdicts if not str(x[0].get("event_id") or "").startswith(WARMUP_PREFIX)]
            # The first second of a load includes waking the worker from idle: reported apart too.
            receive, decided, steady, unmatched = match(chunk, stamps, verdicts, phase_start + 1000)
            last_ts = max(ts for _, ts, _ in verdicts)
            phase = {
                "offered_per_s": rate, "seconds": args.seconds, "events": count, "sent_per_s": sent_rate,
                "achieved_per_s": count / max((last_ts - phase_start) / 1000, 1e-3),
                "matched": len(receive), "unmatched": unmatched,
                "receive_ms": {f"p{q}": percentile(receive, q) for q in (50, 95, 99)} | {"max": receive[-1]},
                "decided_ms": {f"p{q}": percentile(decided, q) for q in (50, 95, 99)} | {"max": decided[-1]},
                "receive_after_first_s_ms": {f"p{q}": percentile(steady, q) for q in (50, 95, 99)},
                "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
            }
            phases.append(phase)
            r, d = phase["receive_ms"], phase["decided_ms"]
            print(f"  offered {rate:>8,.0f}/s (sent {sent_rate:>8,.0f}/s): decided {phase['achieved_per_s']:>8,.0f}/s; "
                  f"received p50 {r['p50']:.0f} p95 {r['p95']:.0f} p99 {r['p99']:.0f} max {r['max']:.0f} ms; "
                  f"decided p50 {d['p50']:.0f} p99 {d['p99']:.0f} ms; after 1st s p99 "
                  f"{phase['receive_after_first_s_ms']['p99'] or '-'} ms; CPU s worker {cpu['worker']:.1f}, "
                  f"broker {cpu['broker']:.1f}, harness {cpu['harness']:.1f} in {cpu['wall']:.1f} s", flush=True)
    finally:
        if reader is not None:
            reader.stop()
        if worker is not None:
            worker.stop()
        feeder = None  # its producer goes before the broker, or librdkafka logs refused reconnects
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)

    (out / "latency.json").write_text(json.dumps({"keying": args.keying, "phases": phases}, indent=2))
    plot(phases, out / "latency.png")
    print(f"wrote {out / 'latency.json'} and {out / 'latency.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
