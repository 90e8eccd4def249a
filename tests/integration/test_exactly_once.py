"""Exactly once on Kafka (one transaction per batch), at least once on the embedded broker.

On the three-node cluster: workers SIGKILLed mid-burst (restarted on their data and on a wiped
directory) and a worker paused until the group gave its partitions away (a zombie), then resumed.
A read_committed reader must find exactly one verdict per submission and no replay, the numbers
bound to their first order, and the auditor nothing; a read_uncommitted reader beside it shows
what the transactions hide. The long version with 200,000 submissions is bench/chaos.py.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
from collections import Counter

import pytest

from streams import native
from streams.audit import audit
from streams.kafka import VerdictCollector

from .conftest import Guard, fresh_s10

pytestmark = pytest.mark.broker


JOINED = re.compile(r"Joined group '[^']+' \(generation \d+\)")


def wait_log(worker, needle: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = worker.log_text()
        if needle in text:
            return text
        if not worker.alive():
            break
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not in the worker's log:\n{worker.log_text()[-3000:]}")


class Burst:
    """Submissions for fresh numbers, keyed by store (so each one is re-keyed once), paced, running
    until the test stops it: the faults below land in the middle of it however slow the machine is
    (a fixed-size burst once ran out before a paused worker's partitions had moved). One event id
    each; `limit` only guards against a test that never stops it."""

    def __init__(self, guard: Guard, per_s: float, limit: int = 60_000) -> None:
        self.guard, self.per_s, self.limit = guard, per_s, limit
        self.ids: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for i in range(self.limit):
            if i % 100 == 99:
                self.guard.publisher.flush()
                if self._stop.wait(100 / self.per_s):
                    break
            number = fresh_s10()
            event_id = f"eos-{number}"
            self.guard.publisher.send(
                {
                    "event_id": event_id,
                    "license_id": "L1",
                    "store_id": f"S{i % 5}",
                    "order_id": "O1",
                    "carrier_code": "CHINAPOST",
                    "tracking_no": number,
                    "shipped_at": "2026-11-20T08:00:00+08:00",
                },
                key=f"S{i % 5}".encode(),
            )
            self.ids.append(event_id)
        self.guard.publisher.flush()

    def published(self) -> int:
        return len(self.ids)

    def running(self) -> bool:
        return self.thread.is_alive() and not self._stop.is_set()

    def run_on(self, more: int, timeout: float = 60.0) -> None:
        """Publish `more` after this point, then stop and wait for the last flush."""
        target = self.published() + more
        deadline = time.monotonic() + timeout
        while self.published() < target and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the burst did not stop"


def check_exactly_once(guard: Guard, burst: Burst, uncommitted: VerdictCollector) -> None:
    ids = burst.ids
    collector = guard.collector
    assert collector.wait_for(lambda c: all(e in c.by_event for e in ids), timeout=180), (
        f"missing verdicts: {[e for e in ids if e not in collector.by_event][:5]}"
    )
    counts = Counter(v["event_id"] for v in collector.verdicts)
    doubled = [e for e in ids if counts[e] != 1]
    shown = (
        [
            {k: v.get(k) for k in ("verdict", "reason", "replay", "seq", "_topic", "_ts")}
            for v in collector.by_event[doubled[0]]
        ]
        if doubled
        else []
    )
    assert doubled == [], f"{len(doubled)} submissions with more than one verdict, e.g. {doubled[0]}: {shown}"
    assert [v["event_id"] for v in collector.verdicts if v["replay"]] == []
    assert {(v["verdict"], v["reason"]) for v in collector.verdicts} == {("accepted", "FIRST_USE")}
    report = audit(guard.settings, idle_s=2.0, exactly_once=True)
    assert report.ok, report.render()
    seen = Counter(v["event_id"] for v in uncommitted.verdicts)
    doubled = sum(1 for e in ids if seen[e] > 1)
    print(f"read_uncommitted: {len(uncommitted.verdicts)} verdicts for {len(ids)} submissions, {doubled} seen twice")


def test_sigkilled_worker_leaves_exactly_one_verdict_per_submission(broker, tmp_path):
    if broker.kind != "kafka":
        pytest.skip("exactly once needs a broker that isolates transactions (see the test below)")
    guard = Guard(broker, tmp_path)
    uncommitted = VerdictCollector(guard.settings, isolation="read_uncommitted").start()
    try:
        worker = guard.start_worker()
        wait_log(worker, "processing guarantee: exactly_once")
        burst = Burst(guard, per_s=300)
        burst.thread.start()
        for kill, wipe in ((1, False), (2, True)):
            assert guard.collector.wait_count(700 * kill, timeout=90)
            worker.kill()
            at = burst.published()
            assert burst.running(), f"kill {kill} landed after the burst"
            print(f"kill {kill}: {len(guard.collector.verdicts)} verdicts, {at} published")
            if wipe:
                shutil.rmtree(tmp_path / "data")
            worker = guard.start_worker()
        burst.run_on(1500)  # ~5 s more while the restarted worker restores and catches up
        check_exactly_once(guard, burst, uncommitted)
    finally:
        uncommitted.stop()
        guard.close()


def test_a_zombie_worker_is_fenced_and_rejoins(broker, tmp_path):
    """Worker a is paused (SIGSTOP) past its session timeout: the group hands its partitions to b.
    Resumed, a still holds a decided batch; its commit carries the old generation and must fail."""
    if broker.kind != "kafka":
        pytest.skip("exactly once needs a broker that isolates transactions")
    guard = Guard(broker, tmp_path)
    uncommitted = VerdictCollector(guard.settings, isolation="read_uncommitted").start()
    try:
        a = guard.start_worker()
        wait_log(a, "processing guarantee: exactly_once")
        b = guard.new_worker(tmp_path / "data-b", name="b")
        wait_log(b, "Worker ready")
        burst = Burst(guard, per_s=300)
        burst.thread.start()
        assert guard.collector.wait_count(600, timeout=90)
        joined_before = len(JOINED.findall(a.log_text()))
        os.kill(a.pid, signal.SIGSTOP)
        paused_at = burst.published()
        try:
            # Only b runs: once everything published so far is decided, b owns every partition.
            later = paused_at + 300
            assert guard.collector.wait_for(
                lambda c: burst.published() >= later and all(e in c.by_event for e in burst.ids[:later]), timeout=90
            ), "b did not take over the paused worker's partitions"
        finally:
            os.kill(a.pid, signal.SIGCONT)
        assert burst.running(), "the zombie woke after the burst"
        burst.run_on(1500)  # the zombie's fenced commit and its rejoin happen while submissions flow
        check_exactly_once(guard, burst, uncommitted)
        assert a.alive(), "the fenced worker should rejoin, not stop:\n" + a.log_text()[-2000:]
        # Paused for longer than transaction_timeout_ms, a's open transaction was aborted for it; a
        # paused between two transactions (1 run in ~8 here) has none to fence, and must rejoin.
        text = a.log_text()
        fenced = "transaction was fenced" in text or "a transaction was aborted" in text
        assert fenced or len(JOINED.findall(text)) > joined_before, "the zombie neither was fenced nor rejoined"
    finally:
        uncommitted.stop()
        guard.close()


def test_embedded_broker_runs_at_least_once_and_refuses_exactly_once(broker, tmp_path):
    if broker.kind != "tansu":
        pytest.skip("the embedded broker's case")
    guard = Guard(broker, tmp_path)
    try:
        worker = guard.start_worker()
        wait_log(worker, "processing guarantee: at_least_once (auto: the broker does not isolate transactions")
        wait_log(worker, f"decision path: {native.build}")  # the build the tests run, compiled where built
        assert guard.verdict(guard.submit(tracking_no=fresh_s10()))["verdict"] == "accepted"
        forced = guard.new_worker(tmp_path / "data-forced", env={"TRACKGUARD_GUARANTEE": "exactly_once"}, name="forced")
        assert forced.process.wait(60) == 2
        assert "does not isolate transactions" in forced.log_text()
    finally:
        guard.close()
