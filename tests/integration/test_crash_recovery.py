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


STORE_TOKENS = {"TRACKGUARD_TOKENS": "L1=token-one", "TRACKGUARD_ADMIN_TOKEN": "token-admin"}


@pytest.mark.parametrize("data_dir", ["kept", "wiped"])
def test_store_failures_are_counted_once_across_a_kill(broker, tmp_path, data_dir):
    """Every table restores (the stores table too, Faust's own): a burst of re-used numbers, the
    worker SIGKILLed while failures are being counted, restarted on its data dir or a wiped one.
    Afterwards every submission has one decision, every failure is counted once in its store, and
    each store's penalty alert is published."""
    import json

    import orjson

    from streams.core.performance import failure_of, fold
    from streams.kafka import read_topics

    from .test_api_e2e import call

    guard = Guard(broker, tmp_path)
    try:
        worker = guard.start_worker(env=STORE_TOKENS)
        stores = [f"S-{k}" for k in range(8)]
        numbers = [fresh_s10() for _ in range(2000)]
        # A binding, then the same number pushed by another store for another order: USED_BY_LICENSE.
        pairs = [(n, stores[i % len(stores)]) for i, n in enumerate(numbers)]
        events = []
        for n, store in pairs:
            for order, by in ((f"B-{n}", "S-bind"), (f"X-{n}", store)):
                events.append(
                    {
                        "event_id": f"kill-{order}",
                        "license_id": "L1",
                        "store_id": by,
                        "order_id": order,
                        "carrier_code": "CHINAPOST",
                        "tracking_no": n,
                        "shipped_at": "2026-11-20T08:00:00+08:00",
                    }
                )

        def publish(batch: list[dict], per_s: float) -> None:
            for i, event in enumerate(batch):
                guard.publisher.send(event)
                if i % 100 == 99:
                    guard.publisher.flush()
                    time.sleep(100 / per_s)
            guard.publisher.flush()

        loader = threading.Thread(target=publish, args=(events, 800))  # ~5 s
        loader.start()

        def counted() -> int:
            total = 0
            for store in stores:
                status, _, body = call(worker.web_port, "GET", f"/stores/{store}/performance", token="token-one")
                if status == 200:
                    total += sum(m["failed"] for m in json.loads(body)["months"])
            return total

        deadline = time.monotonic() + 60
        while counted() < 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        before = counted()
        worker.kill()  # while failures are being counted: the stores changelog is mid-write
        loader.join(60)
        assert 0 < before < len(numbers), f"the kill did not land while failures were counted ({before})"
        if data_dir == "wiped":
            shutil.rmtree(tmp_path / "data")
        worker = guard.start_worker(env=STORE_TOKENS)
        ids = [e["event_id"] for e in events]
        assert guard.collector.wait_for(lambda c: all(e in c.by_event for e in ids), timeout=120), (
            f"missing verdicts: {sum(e not in guard.collector.by_event for e in ids)} of {len(ids)}; "
            f"worker log tail:\n{worker.log_text()[-3000:]}"
        )
        for e in ids:  # at least once may re-send a decision (as a replay), never change it
            assert len({(v["verdict"], v["reason"]) for v in guard.collector.by_event[e]}) == 1, e
        for e in ids[1::2]:
            assert guard.collector.by_event[e][0]["reason"] == "USED_BY_LICENSE"

        expected = {store: sum(1 for _, s in pairs if s == store) for store in stores}
        deadline = time.monotonic() + 60
        while (shown := {s: counted_in(worker, s) for s in stores}) != expected and time.monotonic() < deadline:
            time.sleep(0.5)
        if shown != expected:  # where the failures went: re-keyed (or not), counted (or not)
            rekeyed = read_topics(guard.settings, [guard.settings.stores_topic], until_idle_s=2.0, max_s=60)
            by_store: dict[str, set] = {}
            for r in rekeyed:
                f = orjson.loads(r.value())
                by_store.setdefault(f[1], set()).add(f[2])
            missing = {s: expected[s] - len(by_store.get(s, ())) for s in stores}
            raise AssertionError(f"shown {shown} != {expected}; re-keyed failures missing per store: {missing}")
        assert worker.alive(), worker.log_text()[-3000:]
        records = read_topics(guard.settings, [guard.settings.topics.alerts], until_idle_s=1.0, max_s=30)
        alert_ids = {orjson.loads(r.value())["alert_id"] for r in records if not r.error()}
        # Stamped now (a fixed past month would be deleted by Kafka's retention mid-test): the
        # alerts the pure core calls for, counting each failure verdict once.
        failures = [failure_of(guard.collector.by_event[e][0]) for e in ids[1::2]]
        called, _ = fold([f for f in failures if f is not None], guard.settings.performance)
        assert alert_ids == {a["alert_id"] for a in called} and len(alert_ids) >= len(stores)
    finally:
        guard.close()


def counted_in(worker, store: str) -> int:
    """Failures the store performance view shows for `store`, or -1 while the worker does not answer."""
    import json

    from .test_api_e2e import call

    status, _, body = call(worker.web_port, "GET", f"/stores/{store}/performance", token="token-one")
    return sum(m["failed"] for m in json.loads(body)["months"]) if status == 200 else -1
