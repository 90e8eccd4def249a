"""Prometheus metrics of one worker, served at GET /metrics (prometheus-client's text format).

Read at scrape time from what the worker counts per batch anyway (`HotPath.totals`, `.reasons`,
`.timing`), the partitions it owns and the size of its data directory, so the hot path pays next
to nothing for them; only HTTP requests are counted as they are answered. Each worker has its own registry: a test may build
several apps in one process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class WorkerCollector(Collector):
    """The hot path's counters and the worker's state, as metric families."""

    def __init__(self, hot: Any, partitions: Callable[[], list[int]], data_dir: Path) -> None:
        self.hot, self.partitions, self.data_dir = hot, partitions, data_dir

    def collect(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "trackguard_decisions",
            "records decided by this worker's hot path, by outcome (verdicts, forwards to the re-keying "
            "topic, internal errors)",
            labels=["kind"],
        )
        for kind, n in sorted(self.hot.totals.items()):
            decisions.add_metric([kind], n)
        yield decisions
        verdicts = CounterMetricFamily(
            "trackguard_verdicts",
            "verdicts this worker decided, by verdict, reason and carrier (carriers outside the book: other)",
            labels=["verdict", "reason", "carrier"],
        )
        for (verdict, reason, carrier), n in sorted(self.hot.reasons.items()):
            verdicts.add_metric([verdict, reason, carrier], n)
        yield verdicts
        timing = self.hot.timing
        yield CounterMetricFamily("trackguard_batches", "hot-path batches decided", value=timing["batches"])
        yield CounterMetricFamily("trackguard_batch_records", "records in those batches", value=timing["records"])
        yield CounterMetricFamily(
            "trackguard_decide_seconds", "CPU time spent deciding batches", value=timing["decide_s"]
        )
        yield CounterMetricFamily(
            "trackguard_ack_wait_seconds",
            "time batches waited for the broker (acks; exactly once: the transaction's commit)",
            value=timing["flush_s"],
        )
        yield GaugeMetricFamily(
            "trackguard_partitions_owned",
            "partitions of the numbers table this worker owns",
            value=len(self.partitions()),
        )
        yield GaugeMetricFamily(
            "trackguard_data_dir_bytes",
            "bytes in the worker's data directory (RocksDB)",
            value=_bytes_under(self.data_dir),
        )


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
    """One worker's registry: the collector above and the HTTP request counter."""

    def __init__(self, hot: Any, partitions: Callable[[], list[int]], data_dir: Path) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(WorkerCollector(hot, partitions, data_dir))
        self.http = Counter(
            "trackguard_http_requests",
            "HTTP requests answered by this worker, by route and status",
            ["route", "status"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
