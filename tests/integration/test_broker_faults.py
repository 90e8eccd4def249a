"""The embedded broker restarts empty (memory storage): the worker must stop loudly, not go on."""

from __future__ import annotations

import time

import pytest

from streams import stops
from streams.broker import EmbeddedBroker

from .conftest import BrokerUnderTest, Guard, fresh_s10

pytestmark = pytest.mark.broker


def test_worker_stops_with_a_clear_message_when_the_broker_lost_its_data(tmp_path):
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    port = broker.port
    guard = Guard(BrokerUnderTest("tansu", broker.address, 1, broker), tmp_path)
    try:
        worker = guard.start_worker()
        assert guard.verdict(guard.submit(tracking_no=fresh_s10()))["verdict"] == "accepted"
        guard.collector.stop()
        broker.stop()
        broker = EmbeddedBroker(port=port, log_path=tmp_path / "broker2.log").start()  # same address, no data
        deadline = time.time() + 60
        while worker.alive() and time.time() < deadline:
            time.sleep(0.5)
        assert not worker.alive(), "worker went on after the broker lost its topics"
        # The watchdog notices ("lost its data"; Faust's recovery check, which also could, is off
        # on Tansu). One FATAL line says why, the exit status is 70, and the data dir remembers
        # it for the next start.
        log = worker.log_text()
        assert worker.process.returncode == stops.EX_WORKER_FAILED, log[-2000:]
        assert "FATAL: " in log and "lost its data" in log, log[-2000:]
        last = stops.read(tmp_path / "data")
        assert last is not None and last.repeats == 1 and last.reason in log
    finally:
        guard.worker.stop()
        broker.stop()
