"""GET /metrics' exposition (streams/metrics.py) from a worker's counters, parsed back as Prometheus
would parse it, the hot path's hooks that feed it, and the Grafana dashboard over it;
tests/integration/test_api_e2e.py scrapes real workers."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from faust.types import TP
from prometheus_client.parser import text_string_to_metric_families

from streams import native, stops
from streams.hotpath import HotPath
from streams.metrics import Metrics
from streams.processor import BatchResult

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana" / "trackguard.json"


def scrape(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def fake_recovery(**fields) -> SimpleNamespace:
    empty = {"active_highwaters": {}, "active_offsets": {}, "standby_highwaters": {}, "standby_offsets": {}}
    return SimpleNamespace(**{"in_recovery": False, **empty, **fields})


def fake_hot(lags: dict | None = None, recovery: SimpleNamespace | None = None) -> SimpleNamespace:
    """What Metrics reads of a HotPath, and of the Faust app it is installed in (`hot.app`)."""
    app = SimpleNamespace(
        tables=SimpleNamespace(recovery=recovery or fake_recovery()), trackguard_alerts_published=Counter()
    )
    return SimpleNamespace(
        totals={},
        reasons=Counter(),
        restored=Counter(),
        batch_observers=[],
        lags=lambda: dict(lags or {}),
        app=app,
    )


def observe_batch(hot, records: int, decide_s: float, ack_s: float) -> None:
    for observe in hot.batch_observers:
        observe(records, decide_s, ack_s)


def test_the_exposition_parses_and_follows_the_hot_paths_counters(tmp_path):
    hot = fake_hot()
    hot.totals.update({"accepted": 5, "duplicate": 2})
    hot.reasons.update({("accepted", "FIRST_USE", "CHINAPOST"): 5, ("duplicate", "USED_BY_OTHER_LICENSE", "YANWEN"): 2})
    (tmp_path / "numbers-0.db").mkdir()
    (tmp_path / "numbers-0.db" / "000004.log").write_bytes(b"x" * 1000)
    metrics = Metrics(hot, lambda: [0, 3, 5], tmp_path)
    got = scrape(metrics)
    assert got[("trackguard_decisions_total", (("kind", "accepted"),))] == 5
    assert got[("trackguard_decisions_total", (("kind", "duplicate"),))] == 2
    by = (("carrier", "YANWEN"), ("reason", "USED_BY_OTHER_LICENSE"), ("verdict", "duplicate"))
    assert got[("trackguard_verdicts_total", by)] == 2
    assert got[("trackguard_batch_records_count", ())] == 0
    assert got[("trackguard_partitions_owned", ())] == 3
    assert got[("trackguard_data_dir_bytes", ())] == 1000
    # Read at scrape time: the next scrape shows what the hot path counted since.
    hot.totals["accepted"] += 1
    hot.totals["invalid"] = 1
    metrics.http.labels("Tracking", "200").inc()
    metrics.http.labels("Tracking", "200").inc()
    again = scrape(metrics)
    assert again[("trackguard_decisions_total", (("kind", "accepted"),))] == 6
    assert again[("trackguard_decisions_total", (("kind", "invalid"),))] == 1
    assert again[("trackguard_http_requests_total", (("route", "Tracking"), ("status", "200")))] == 2


def test_batch_histograms_follow_the_hot_paths_per_batch_hook(tmp_path):
    hot = fake_hot()
    metrics = Metrics(hot, list, tmp_path)
    observe_batch(hot, 250, 0.012, 0.040)
    observe_batch(hot, 5000, 0.210, 0.350)
    observe_batch(hot, 1, 0.00004, 0.006)
    got = scrape(metrics)
    assert got[("trackguard_batch_records_count", ())] == 3
    assert got[("trackguard_batch_records_sum", ())] == 5251
    assert got[("trackguard_batch_records_bucket", (("le", "1.0"),))] == 1
    assert got[("trackguard_batch_records_bucket", (("le", "250.0"),))] == 2  # bounds are inclusive
    assert got[("trackguard_batch_records_bucket", (("le", "2500.0"),))] == 2
    assert got[("trackguard_batch_records_bucket", (("le", "5000.0"),))] == 3
    assert got[("trackguard_batch_decide_seconds_count", ())] == 3
    assert abs(got[("trackguard_batch_decide_seconds_sum", ())] - 0.22204) < 1e-9
    assert got[("trackguard_batch_decide_seconds_bucket", (("le", "5e-05"),))] == 1
    assert got[("trackguard_batch_decide_seconds_bucket", (("le", "0.025"),))] == 2
    assert got[("trackguard_batch_ack_seconds_bucket", (("le", "0.01"),))] == 1
    assert got[("trackguard_batch_ack_seconds_bucket", (("le", "0.5"),))] == 3
    assert got[("trackguard_batch_ack_seconds_bucket", (("le", "+Inf"),))] == 3


def test_a_real_hot_path_reports_each_acknowledged_batch_once(tmp_path):
    """HotPath._decided / _account (both guarantees go through them): one call per batch, with its
    record count, its decide time and its wait for the broker."""
    hot = object.__new__(HotPath)  # no producers: only the bookkeeping around a batch
    hot.timing = {"batches": 0, "records": 0, "decide_s": 0.0, "flush_s": 0.0}
    hot.totals, hot.reasons, hot.restored = {}, Counter(), Counter()
    hot.command_waiters, hot.verdict_waiters, hot.batch_observers, hot.app = {}, {}, [], None
    seen = []
    hot.batch_observers.append(lambda *batch: seen.append(batch))
    metrics = Metrics(hot, list, tmp_path)
    result = BatchResult()
    pending = hot._decided([None] * 3, result, time.perf_counter() - 0.002)  # type: ignore[list-item]
    time.sleep(0.01)
    hot._account(result, pending)
    ((records, decide_s, ack_s),) = seen
    assert records == 3 and 0.002 <= decide_s < 1.0 and 0.01 <= ack_s < 1.0
    got = scrape(metrics)
    assert got[("trackguard_batch_records_sum", ())] == 3 and got[("trackguard_batch_ack_seconds_count", ())] == 1


def test_consumer_lag_is_reported_per_partition_with_a_known_watermark(tmp_path):
    hot = fake_hot(lags={("shipments.submitted", 0): 30, ("shipments.submitted", 3): 0})
    got = scrape(Metrics(hot, list, tmp_path))
    lag = {k[1]: v for k, v in got.items() if k[0] == "trackguard_consumer_lag_records"}
    assert lag == {
        (("partition", "0"), ("topic", "shipments.submitted")): 30,
        (("partition", "3"), ("topic", "shipments.submitted")): 0,
    }


def test_hot_path_lag_reads_aiokafkas_fetch_state():
    """HotPath.lags over a real aiokafka Assignment: high watermark (exactly once: last stable
    offset) minus position, for the hot partitions sought; none without a watermark."""
    from aiokafka.consumer.subscription_state import Assignment
    from aiokafka.structs import TopicPartition

    async def run() -> None:
        t = "shipments.submitted"
        assignment = Assignment([TopicPartition(t, p) for p in range(5)])
        for p, position, highwater, stable in [(0, 100, 130, -1), (1, 7, None, None), (3, 50, 40, -1), (4, 9, 9, -1)]:
            state = assignment.state_value(TopicPartition(t, p))
            state.reset_to(position)
            state.highwater, state.lso = highwater, stable
        subscription = SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))
        consumer = SimpleNamespace(_thread=SimpleNamespace(_consumer=SimpleNamespace(_subscription=subscription)))
        # Sought: 0, 1, 3, 4 and 7 (7 revoked in aiokafka's thread meanwhile); 2 is assigned, not sought yet.
        consumer.hot_next = {TP(t, p): 0 for p in (0, 1, 3, 4, 7)}
        hot = object.__new__(HotPath)
        hot.app = SimpleNamespace(consumer=consumer)
        consumer.hot = hot
        # Tansu's watermark trailing the position (3) reads 0, not negative; no watermark yet (1): left out.
        assert hot.lags() == {(t, 0): 30, (t, 3): 0, (t, 4): 0}
        hot.transactional = True  # read_committed: the last stable offset where the broker reports one
        assignment.state_value(TopicPartition(t, 0)).lso = 120
        assert hot.lags() == {(t, 0): 20, (t, 3): 0, (t, 4): 0}
        hot.app = None  # not installed in an app (a test's bare HotPath): nothing to report
        assert hot.lags() == {}

    asyncio.run(run())


def test_restore_progress_and_alerts(tmp_path):
    changelog = "trackguard-numbers-changelog"
    recovery = fake_recovery(
        in_recovery=True,
        # Faust's highwaters are the last offset; offsets the last one restored (None: not read yet).
        active_highwaters={TP(changelog, 0): 999, TP(changelog, 1): 10},
        active_offsets={TP(changelog, 0): 399, TP(changelog, 1): None},
        standby_highwaters={TP(changelog, 2): 50},
        standby_offsets={TP(changelog, 2): 80},  # a standby following past the watermark it read
    )
    hot = fake_hot(recovery=recovery)
    hot.restored.update({"active": 400, "standby": 81})
    metrics = Metrics(hot, list, tmp_path)
    got = scrape(metrics)
    assert got[("trackguard_recovering", ())] == 1
    remaining = {k[1]: v for k, v in got.items() if k[0] == "trackguard_restore_remaining_records"}
    assert remaining == {
        (("partition", "0"), ("role", "active"), ("topic", changelog)): 600,
        (("partition", "2"), ("role", "standby"), ("topic", changelog)): 0,
    }
    assert got[("trackguard_restored_records_total", (("role", "active"),))] == 400
    assert got[("trackguard_restored_records_total", (("role", "standby"),))] == 81
    assert ("trackguard_alerts_published_total", (("kind", "LFR_PENALTY"),)) not in got
    recovery.in_recovery = False
    recovery.active_offsets[TP(changelog, 0)] = 999
    hot.app.trackguard_alerts_published["LFR_PENALTY"] += 1
    again = scrape(metrics)
    assert again[("trackguard_recovering", ())] == 0
    assert (
        again[("trackguard_restore_remaining_records", (("partition", "0"), ("role", "active"), ("topic", changelog)))]
        == 0
    )
    assert again[("trackguard_alerts_published_total", (("kind", "LFR_PENALTY"),))] == 1


def test_each_worker_has_its_own_registry(tmp_path):
    hot = fake_hot()
    a, b = Metrics(hot, list, tmp_path), Metrics(hot, list, tmp_path)
    a.http.labels("Check", "400").inc()
    assert ("trackguard_http_requests_total", (("route", "Check"), ("status", "400"))) not in scrape(b)


def test_the_grafana_dashboard_charts_every_metric_and_only_metrics_that_exist(tmp_path):
    """Every metric name in the dashboard's queries is a sample name of a real exposition (with its
    _total / _bucket / _count / _sum suffix), and every metric the worker exports is charted."""
    hot = fake_hot(
        lags={("shipments.submitted", 0): 1},
        recovery=fake_recovery(active_highwaters={TP("c", 0): 5}, active_offsets={TP("c", 0): 1}),
    )
    hot.totals["accepted"] = 1
    hot.reasons[("accepted", "FIRST_USE", "CHINAPOST")] = 1
    hot.restored["active"] = 1
    hot.app.trackguard_alerts_published["LFR_PENALTY"] = 1
    (tmp_path / stops.FILE).write_text('{"reason": "broker lost", "repeats": 3, "at": 0}')
    metrics = Metrics(hot, list, tmp_path)
    metrics.http.labels("Tracking", "200").inc()
    family_of = {
        sample.name: family.name
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
    }
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    queries = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert panel["targets"], panel["title"]
        queries += [target["expr"] for target in panel["targets"]]
    queries.append(variables["instance"]["definition"])
    for query in queries:
        assert query.count("(") == query.count(")") and query.count("{") == query.count("}"), query
    used = {name for query in queries for name in re.findall(r"\btrackguard_\w+", query)}
    assert used - family_of.keys() == set(), "names no exposition has"
    # prometheus-client's `_created` series (when a counter started) parse as families of their own.
    exported = {family for family in family_of.values() if not family.endswith("_created")}
    assert exported - {family_of[name] for name in used} == set(), "metrics no panel charts"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert scrape(metrics)[("trackguard_consecutive_fatal_stops", (("reason", "broker lost"),))] == 3


def test_the_build_of_the_decision_path_is_exported(tmp_path):
    families = {
        f.name: f for f in text_string_to_metric_families(Metrics(fake_hot(), list, tmp_path).exposition().decode())
    }
    (sample,) = families["trackguard_build_info"].samples
    assert sample.name == "trackguard_build_info" and sample.labels == {"decision_path": native.build}
