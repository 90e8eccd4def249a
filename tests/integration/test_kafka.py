"""streams/kafka.py against real brokers: the watermark probe tells Tansu from Kafka by behaviour,
and the worker writes changelog markers only where the probe says they are needed."""

from __future__ import annotations

import pytest

from streams import settings as settings_mod
from streams.kafka import high_watermark_lags

from .conftest import Guard, fresh_s10

pytestmark = pytest.mark.broker


def test_the_probe_finds_lagging_watermarks_on_tansu_only(broker):
    settings = settings_mod.load(broker=broker.address, replication=broker.replication, app_id="probe-test")
    assert high_watermark_lags(settings) is (broker.kind == "tansu")


def test_the_worker_writes_markers_only_where_the_broker_needs_them(broker, tmp_path):
    guard = Guard(broker, tmp_path)
    try:
        worker = guard.start_worker()
        assert guard.verdict(guard.submit(tracking_no=fresh_s10()))["verdict"] == "accepted"
        expected = "on" if broker.kind == "tansu" else "off"
        assert f"changelog markers {expected} (probed" in worker.log_text()
    finally:
        guard.close()
