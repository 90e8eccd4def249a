"""GET /metrics' exposition (streams/metrics.py) from a worker's counters, parsed back as Prometheus
would parse it; tests/integration/test_api_e2e.py scrapes real workers."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from streams.metrics import Metrics


def scrape(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_the_exposition_parses_and_follows_the_hot_paths_counters(tmp_path):
    hot = SimpleNamespace(
        totals={"accepted": 5, "duplicate": 2},
        reasons={("accepted", "FIRST_USE", "CHINAPOST"): 5, ("duplicate", "USED_BY_OTHER_LICENSE", "YANWEN"): 2},
        timing={"batches": 3, "records": 7, "decide_s": 0.25, "flush_s": 1.5},
    )
    (tmp_path / "numbers-0.db").mkdir()
    (tmp_path / "numbers-0.db" / "000004.log").write_bytes(b"x" * 1000)
    metrics = Metrics(hot, lambda: [0, 3, 5], tmp_path)
    got = scrape(metrics)
    assert got[("trackguard_decisions_total", (("kind", "accepted"),))] == 5
    assert got[("trackguard_decisions_total", (("kind", "duplicate"),))] == 2
    by = (("carrier", "YANWEN"), ("reason", "USED_BY_OTHER_LICENSE"), ("verdict", "duplicate"))
    assert got[("trackguard_verdicts_total", by)] == 2
    assert got[("trackguard_batches_total", ())] == 3 and got[("trackguard_batch_records_total", ())] == 7
    assert got[("trackguard_ack_wait_seconds_total", ())] == 1.5
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


def test_each_worker_has_its_own_registry(tmp_path):
    hot = SimpleNamespace(totals={}, reasons={}, timing={"batches": 0, "records": 0, "decide_s": 0.0, "flush_s": 0.0})
    a, b = Metrics(hot, list, tmp_path), Metrics(hot, list, tmp_path)
    a.http.labels("Check", "400").inc()
    assert ("trackguard_http_requests_total", (("route", "Check"), ("status", "400"))) not in scrape(b)
