"""Prometheus metrics of one worker, served at GET /metrics (prometheus-client's text format).

Counts are read at scrape time from what the worker keeps anyway: the hot path's `totals`,
`reasons` and `restored`, its consumer's lag (`HotPath.lags`), Faust's recovery, the alerts
streams.stores published, the partitions this worker owns and the size of its data directory. The
batch histograms are fed by the hot path's per-batch hook (`HotPath.batch_observers`), three
observations per batch; only HTTP requests are counted as they are answered. Each worker has its
own registry: a test may build several apps in one process. docs/grafana/trackguard.json charts
them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import native, stops

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Bucket bounds from what batches measure: 1 to `worker.batch_max` (5,000) records; deciding costs
# ~30-60 µs a record, so ~50 µs to ~0.3 s a batch; acks (exactly once: the commit) take 5-500 ms.
RECORDS_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
DECIDE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
ACK_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerCollector(Collector):
    """The hot path's counters and the worker's state, as metric families."""

    def __init__(self, hot: Any, partitions: Callable[[], list[int]], data_dir: Path) -> None:
        self.hot, self.partitions, self.data_dir = hot, partitions, data_dir

    def collect(self) -> Iterator[Metric]:
        hot = self.hot
        decisions = CounterMetricFamily(
            "trackguard_decisions",
            "records decided by this worker's hot path, by outcome (verdicts, forwards to the re-keying "
            "topic, internal errors)",
            labels=["kind"],
        )
        for kind, n in sorted(hot.totals.items()):
            decisions.add_metric([kind], n)
        yield decisions
        verdicts = CounterMetricFamily(
            "trackguard_verdicts",
            "verdicts this worker decided, by verdict, reason and carrier (carriers outside the book: other)",
            labels=["verdict", "reason", "carrier"],
        )
        for (verdict, reason, carrier), n in sorted(hot.reasons.items()):
            verdicts.add_metric([verdict, reason, carrier], n)
        yield verdicts
        lag = GaugeMetricFamily(
            "trackguard_consumer_lag_records",
            "records on the broker this worker's hot path has not taken yet, per partition it consumes: "
            "the high watermark of the last fetch (exactly once: the last stable offset) minus the "
            "consumer's position; partitions with no watermark yet are left out",
            labels=["topic", "partition"],
        )
        for (topic, partition), n in sorted(hot.lags().items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag
        restored = CounterMetricFamily(
            "trackguard_restored_records",
            "changelog records of the numbers table restored into RocksDB, for partitions this worker "
            "owns (active) or follows (standby)",
            labels=["role"],
        )
        for role, n in sorted(hot.restored.items()):
            restored.add_metric([role], n)
        yield restored
        app = hot.app
        if app is not None:
            yield from _recovery(app.tables.recovery)
            alerts = CounterMetricFamily(
                "trackguard_alerts_published",
                "store alerts this worker published on the alerts topic, by kind",
                labels=["kind"],
            )
            for kind, n in sorted(app.trackguard_alerts_published.items()):
                alerts.add_metric([kind], n)
            yield alerts
            foreign = CounterMetricFamily(
                "trackguard_foreign_records",
                "records on a topic the worker reads that are none of ours (unreadable, wrong fields): skipped",
                labels=["topic"],
            )
            for topic, n in sorted(getattr(app, "trackguard_foreign_records", {}).items()):
                foreign.add_metric([topic], n)
            yield foreign
        yield GaugeMetricFamily(
            "trackguard_partitions_owned",
            "partitions of the numbers table this worker owns",
            value=len(self.partitions()),
        )
        last = stops.read(self.data_dir)
        looping = GaugeMetricFamily(
            "trackguard_consecutive_fatal_stops",
            "starts of this worker in a row that ended in the same fatal failure, before this one (above 1: "
            "a crash loop), with that failure; cleared by a clean stop",
            labels=["reason"],
        )
        if last is not None:
            looping.add_metric([last.reason], last.repeats)
        yield looping
        yield GaugeMetricFamily(
            "trackguard_data_dir_bytes",
            "bytes in the worker's data directory (RocksDB)",
            value=_bytes_under(self.data_dir),
        )


def _recovery(recovery: Any) -> Iterator[Metric]:
    """Faust's changelog recovery (streams.hotpath._restore does its bookkeeping for the numbers
    table): whether it runs, and what is left per changelog partition."""
    yield GaugeMetricFamily(
        "trackguard_recovering",
        "1 while the worker restores the tables of the partitions it was assigned (it decides nothing meanwhile)",
        value=int(recovery.in_recovery),
    )
    remaining = GaugeMetricFamily(
        "trackguard_restore_remaining_records",
        "changelog records left to restore, per changelog partition: the high watermark read at the last "
        "rebalance minus the offset restored (a standby that caught up with it shows 0 after)",
        labels=["topic", "partition", "role"],
    )
    for role, highwaters, offsets in (
        ("active", recovery.active_highwaters, recovery.active_offsets),
        ("standby", recovery.standby_highwaters, recovery.standby_offsets),
    ):
        for (topic, partition), n in sorted(_left(highwaters, offsets).items()):
            remaining.add_metric([topic, str(partition), role], n)
    yield remaining


def _left(highwaters: Mapping[Any, int | None], offsets: Mapping[Any, int | None]) -> dict[Any, int]:
    """Recovery.active_remaining / standby_remaining, clamped at 0 and safe to read at any moment:
    an offset is None between an assignment and Recovery reading the changelog's start, where
    Faust's standby_remaining raises TypeError."""
    left = {}
    for tp, highwater in highwaters.items():
        offset = offsets.get(tp)
        if highwater is not None and offset is not None:
            left[tp] = max(highwater - offset, 0)
    return left


def _bytes_under(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:  # RocksDB removed it meanwhile (compaction)
                pass
    return total


class Metrics:
    """One worker's registry: the collector above, the batch histograms and the HTTP request counter."""

    def __init__(self, hot: Any, partitions: Callable[[], list[int]], data_dir: Path) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(WorkerCollector(hot, partitions, data_dir))
        self.batch_records = Histogram(
            "trackguard_batch_records",
            "records per hot-path batch (the fetches acknowledged together), counted once the broker has the batch",
            buckets=RECORDS_BUCKETS,
            registry=self.registry,
        )
        self.decide_seconds = Histogram(
            "trackguard_batch_decide_seconds",
            "time a batch took to decide (rules, RocksDB reads and writes, handing records to the producer)",
            buckets=DECIDE_BUCKETS,
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "trackguard_batch_ack_seconds",
            "time from a batch decided until the broker had all of it: its changelog, then its verdicts "
            "(exactly once: its transaction's commit)",
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        hot.batch_observers.append(self._observe_batch)
        # Which decision path this worker runs: a worker left on the Python build is ~1.5x slower.
        Info("trackguard_build", "the decision path this worker runs (streams/native.py)", registry=self.registry).info(
            {"decision_path": native.build}
        )
        self.http = Counter(
            "trackguard_http_requests",
            "HTTP requests answered by this worker, by route and status",
            ["route", "status"],
            registry=self.registry,
        )

    def _observe_batch(self, records: int, decide_s: float, ack_s: float) -> None:
        self.batch_records.observe(records)
        self.decide_seconds.observe(decide_s)
        self.ack_seconds.observe(ack_s)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
