"""Store performance through the broker: failed verdicts -> re-keyed by store -> the stores table ->
`stores.alerts`, the HTTP view and the CLI; the auditor replays the alerts against the verdicts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime

import orjson
import pytest

from streams.audit import audit
from streams.kafka import read_topics

from ..contract import violations
from .conftest import Guard, fresh_s10
from .test_api_e2e import call

pytestmark = pytest.mark.broker
TOKENS = {"L1": "token-one", "L2": "token-two"}
ADMIN = "token-admin"
ENV = {"TRACKGUARD_TOKENS": ",".join(f"{k}={v}" for k, v in TOKENS.items()), "TRACKGUARD_ADMIN_TOKEN": ADMIN}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


@pytest.fixture(scope="module")
def guard(broker, tmp_path_factory):
    g = Guard(broker, tmp_path_factory.mktemp("stores"))
    g.start_worker(env=ENV)
    yield g
    g.close()


def fail_in_store(guard: Guard, store: str, when: str, n: int) -> list[str]:
    """`n` failed shipments for (L1, store) at `when` (event time): numbers bound by store S1's
    order first, then pushed by `store` for another order (USED_BY_LICENSE)."""
    failed = []
    for _ in range(n):
        number = fresh_s10()
        bound = guard.submit(tracking_no=number, store_id="S1", order_id=f"B-{number}", ts_ms=ms(when))
        assert guard.verdict(bound)["verdict"] == "accepted"
        event_id = guard.submit(tracking_no=number, store_id=store, order_id=f"X-{number}", ts_ms=ms(when))
        assert guard.verdict(event_id)["reason"] == "USED_BY_LICENSE"
        failed.append(event_id)
    return failed


def alerts_of(guard: Guard, store: str, expect: int, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        records = read_topics(guard.settings, [guard.settings.topics.alerts], until_idle_s=1.0, max_s=20)
        alerts = [orjson.loads(r.value()) for r in records if not r.error()]
        mine = [a for a in alerts if a["store_id"] == store]
        if len(mine) >= expect or time.monotonic() > deadline:
            return mine


def performance(guard: Guard, store: str, token: str = TOKENS["L1"], query: str = "") -> tuple[int, dict]:
    status, _, body = call(guard.worker.web_port, "GET", f"/stores/{store}/performance{query}", token=token)
    return status, json.loads(body) if body else {}


def test_penalty_and_downgrade_are_published_once_and_shown(guard):
    store = "S-perf"
    # Fixed months in the past: Kafka 4 refuses a record stamped more than an hour ahead
    # (log.message.timestamp.after.max.ms), and the months must not depend on today's date.
    november = fail_in_store(guard, store, "2025-11-10T10:00:00+08:00", 3)
    # A fourth failure in November: a frozen verdict (the number is frozen for L1 after its duplicate).
    frozen_number = guard.verdict(november[0])["tracking_no"]
    frozen = guard.submit(
        tracking_no=frozen_number, store_id=store, order_id="X-again", ts_ms=ms("2025-11-11T10:00:00+08:00")
    )
    assert guard.verdict(frozen)["verdict"] == "frozen"
    # Delivered again by the publisher (same event id): a replay, not another failure.
    again = guard.submit(
        event_id=november[1],
        tracking_no=guard.verdict(november[1])["tracking_no"],
        store_id=store,
        order_id=guard.verdict(november[1])["order_id"],
        ts_ms=ms("2025-11-12T10:00:00+08:00"),
    )
    assert guard.verdict(again, nth=1)["replay"] is True
    # December in Shanghai, still November in UTC: 2025-11-30T16:30Z is 00:30 on 1 December there.
    december = fail_in_store(guard, store, "2025-11-30T16:30:00+00:00", 1)
    december += fail_in_store(guard, store, "2025-12-05T10:00:00+08:00", 2)

    alerts = alerts_of(guard, store, expect=3)
    assert sorted((a["kind"], a["month"], a["count"]) for a in alerts) == [
        ("LFR_PENALTY", "2025-11", 3),
        ("LFR_PENALTY", "2025-12", 3),
        ("SERVICE_DOWNGRADE", "2025-12", 3),
    ]  # each once: no crash here, so no re-sent copy either
    by_kind = {(a["kind"], a["month"]): a for a in alerts}
    assert by_kind[("LFR_PENALTY", "2025-11")]["event_ids"] == november
    assert by_kind[("LFR_PENALTY", "2025-12")]["event_ids"] == december
    assert by_kind[("SERVICE_DOWNGRADE", "2025-12")]["event_ids"] == november + december
    assert all(a["license_id"] == "L1" and a["alert_id"].startswith(f"L1/{store}/") for a in alerts)
    assert [v for a in alerts for v in violations("store-alert", a)] == []

    status, shown = performance(guard, store)
    assert status == 200
    assert [(m["month"], m["failed"], m["lfr_penalty"], m["service_downgrade"]) for m in shown["months"]] == [
        ("2025-11", 4, 0.5, False),
        ("2025-12", 3, 0.5, True),
    ]
    assert shown["months"][0]["by_reason"] == {"FROZEN_AFTER_DUPLICATE": 1, "USED_BY_LICENSE": 3}
    assert shown["downgraded"] and shown["lfr_penalty_total"] == 1.0

    # The store that bound the numbers has no failures; another licence cannot look.
    assert performance(guard, "S1")[1]["months"] == []
    assert performance(guard, store, token=TOKENS["L2"], query="?license=L1")[0] == 403
    assert performance(guard, store, token=TOKENS["L2"])[1]["months"] == []  # L2's own store of that name
    assert performance(guard, store, token=ADMIN)[0] == 400  # the admin names the licence
    assert performance(guard, store, token=ADMIN, query="?license=L1")[1]["months"] == shown["months"]

    # The CLI asks the same worker.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams",
            "performance",
            store,
            "--license",
            "L1",
            "--url",
            f"http://127.0.0.1:{guard.worker.web_port}",
            "--token",
            TOKENS["L1"],
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert json.loads(out)["months"] == shown["months"]

    report = audit(guard.settings, idle_s=2.0)
    assert report.ok, report.render()
    assert report.counts["alerts_replayed"] >= 3


def test_foreign_records_on_the_verdict_topics_are_counted_and_skipped(guard):
    """Anyone who may write a verdict topic must not stop the workers (each restart would meet the
    record again): the store-performance agents, the auditor and the readers skip and count it."""
    topics = guard.settings.topics
    foreign = [
        b"not json at all",
        b"[1, 2, 3]",
        orjson.dumps(
            {
                "verdict": "duplicate",
                "license_id": "L1",
                "store_id": "S-x",
                "event_id": "f1",
                "reason": "USED_BY_LICENSE",
                "tracking_no": "RR1",
                "decided_at": "not-a-time",
            }
        ),
        orjson.dumps(
            {
                "verdict": "frozen",
                "license_id": 5,
                "store_id": ["S"],
                "event_id": None,
                "reason": "X",
                "tracking_no": "RR2",
                "decided_at": "2025-10-01T00:00:00Z",
            }
        ),
    ]
    for value in foreign:
        guard.publisher.send(value, key=b"RR1", topic=topics.duplicate)
    guard.publisher.send(b'["too", "short"]', key=b"k", topic=guard.settings.stores_topic)
    guard.publisher.flush()
    # The worker goes on counting real failures behind them, and says what it skipped.
    store = "S-after-foreign"
    fail_in_store(guard, store, "2025-10-10T10:00:00+08:00", 3)
    assert [(a["kind"], a["count"]) for a in alerts_of(guard, store, expect=1)] == [("LFR_PENALTY", 3)]
    assert guard.worker.alive(), guard.worker.log_text()[-2000:]
    deadline = time.monotonic() + 30
    while True:
        metrics = call(guard.worker.web_port, "GET", "/metrics", token=None)[2].decode()
        skipped = {
            line.split('topic="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("trackguard_foreign_records_total{")
        }
        if (
            skipped.get(topics.duplicate, 0) >= 4 and skipped.get(guard.settings.stores_topic, 0) >= 1
        ) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert skipped[topics.duplicate] >= 4 and skipped[guard.settings.stores_topic] >= 1, metrics
    assert "skipped a record that is no failed verdict" in guard.worker.log_text()
    report = audit(guard.settings, idle_s=2.0)
    assert report.counts["foreign_records"] >= 4 and report.ok, report.render()
