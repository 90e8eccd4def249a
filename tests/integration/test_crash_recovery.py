"""SIGKILL a worker, wipe its RocksDB directory, restart it: state comes back from the changelog."""

from __future__ import annotations

import shutil
import threading
import time
from collections import defaultdict

import pytest

from .conftest import Guard, fresh_s10

pytestmark = pytest.mark.broker


def test_killed_worker_restarted_on_a_wiped_data_dir_still_rejects_what_it_accepted(broker, tmp_path):
    guard = Guard(broker, tmp_path)
    try:
        worker = guard.start_worker()
        number = fresh_s10()
        first = guard.submit(tracking_no=number)
        assert guard.verdict(first)["verdict"] == "accepted"

        worker.kill()
        shutil.rmtree(tmp_path / "data")
        guard.start_worker()

        v = guard.verdict(guard.submit(tracking_no=number, order_id="O2"), timeout=60)
        assert (v["verdict"], v["reason"]) == ("duplicate", "USED_BY_LICENSE")
        # The event id judged before the crash is still known: the same verdict, as a replay.
        guard.submit(event_id=first, tracking_no=number)
        again = guard.verdict(first, nth=1)
        assert (again["verdict"], again["replay"]) == ("accepted", True)
        assert "Recovery" in guard.worker.log_text()
    finally:
        guard.close()


def test_kill_during_a_burst_loses_no_event_and_binds_no_number_twice(broker, tmp_path):
    guard = Guard(broker, tmp_path)
    try:
        worker = guard.start_worker()
        numbers = [fresh_s10() for _ in range(3000)]

        def publish(order: str, per_s: float | None = None) -> list[str]:
            ids = []
            for i, n in enumerate(numbers):
                if per_s and i % 100 == 99:
                    guard.publisher.flush()
                    time.sleep(100 / per_s)  # paced, so that the kill below lands mid-burst
                ids.append(f"burst-{order}-{n}")
                guard.publisher.send(
                    {
                        "event_id": ids[-1],
                        "license_id": "L1",
                        "store_id": "S1",
                        "order_id": order,
                        "carrier_code": "CHINAPOST",
                        "tracking_no": n,
                        "shipped_at": "2026-11-20T08:00:00+08:00",
                    }
                )
            guard.publisher.flush()
            return ids

        first: list[str] = []
        loader = threading.Thread(target=lambda: first.extend(publish("O1", per_s=500)))  # ~6 s
        loader.start()
        assert guard.collector.wait_count(1000, timeout=60)
        worker.kill()  # the changelog is written before offsets commit, wherever the kill lands
        decided_before_kill = len(guard.collector.verdicts)
        loader.join(60)
        assert len(first) == len(numbers) and decided_before_kill < len(first), "the kill landed after the burst"
        second = publish("O2")  # while no worker runs: the same numbers for another order
        shutil.rmtree(tmp_path / "data")
        guard.start_worker()
        ids = first + second
        assert guard.collector.wait_for(lambda c: all(e in c.by_event for e in ids), timeout=120), (
            f"missing verdicts: {[e for e in ids if e not in guard.collector.by_event][:5]}"
        )

        # O1 came first on every number's partition, so O1 wins everywhere and every O2 is a duplicate,
        # which needs the whole state restored from the changelog. At-least-once: an O1 decision
        # whose changelog reached the broker before the kill but whose verdict did not comes out
        # after the restart as an event-id replay (replay: true) of that FIRST_USE; seen on Kafka
        # for 359 of 3,000 numbers in one run. Never a different decision.
        first_seen_as_replay = sum(1 for e in first if guard.collector.by_event[e][0]["replay"])
        replayed = sum(1 for e in first if len(guard.collector.by_event[e]) > 1)
        print(f"O1 events seen again after the kill: {replayed}; first seen as a replay: {first_seen_as_replay}")
        winners = defaultdict(set)
        for v in guard.collector.verdicts:
            if v["verdict"] == "accepted" and v["reason"] == "FIRST_USE":  # a binding, or its replay (below)
                winners[v["tracking_no"]].add(v["order_id"])
        assert winners == {n: {"O1"} for n in numbers}
        for e in second:
            assert {(v["verdict"], v["reason"]) for v in guard.collector.by_event[e]} == {
                ("duplicate", "USED_BY_LICENSE")
            }
        print(f"decided before the kill: {decided_before_kill} of {len(first)}")
        from streams.audit import audit

        report = audit(guard.settings, idle_s=2.0)
        assert report.ok, report.render()
    finally:
        guard.close()
