"""Exactly-once plumbing that needs no broker: the consumer-group metadata bytes librdkafka expects,
the client internals the transactional hot path reads, and the settings that choose it.

Behaviour (one verdict per submission under SIGKILLs, fencing, aborted records invisible) is tested
on a real Kafka cluster in tests/integration/test_exactly_once.py.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections import deque
from pathlib import Path
from types import SimpleNamespace

import pytest
from confluent_kafka import Consumer

from streams import settings as settings_mod
from streams.transactions import group_metadata, transactional_id


def librdkafka_metadata(group_id: str) -> bytes:
    """What confluent-kafka's own consumer serializes before it joins (generation -1, no member id)."""
    consumer = Consumer({"group.id": group_id, "bootstrap.servers": "127.0.0.1:9", "log_level": 0})
    try:
        return consumer.consumer_group_metadata()
    finally:
        consumer.close()


@pytest.mark.parametrize("group_id", ["trackguard", "g", "shop-团队-7"])
def test_group_metadata_bytes_match_librdkafkas_own(group_id):
    assert group_metadata(group_id, -1, "") == librdkafka_metadata(group_id)


def test_group_metadata_carries_generation_and_member():
    out = group_metadata("app", 7, "member-1")
    assert out.startswith(b"CGMDv2:")
    assert out[7:11] == (7).to_bytes(4, sys.byteorder, signed=True)  # librdkafka copies the int32 as is
    assert out[11:] == b"app\0member-1\0\x01"
    assert group_metadata("app", 7, "m", "static-1").endswith(b"m\0\x00static-1\0")


def test_transactional_id_is_stable_per_data_dir_and_distinct_between_them(tmp_path):
    base = settings_mod.load()
    a1 = transactional_id(base.with_(data_dir=tmp_path / "a"))
    a2 = transactional_id(base.with_(data_dir=tmp_path / "x" / ".." / "a"))
    b = transactional_id(base.with_(data_dir=tmp_path / "b"))
    assert a1 == a2 != b
    assert a1.startswith(base.app_id + "-")


def test_aiokafka_internals_the_transactional_path_reads():
    from aiokafka import AIOKafkaConsumer
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    init = inspect.getsource(GroupCoordinator.__init__)
    assert "self.generation =" in init and "self.member_id =" in init
    assert "self._coordinator = GroupCoordinator(" in inspect.getsource(AIOKafkaConsumer.start)
    # The isolation level is read when start() builds the fetcher, after the hot path set it.
    assert "isolation_level=self._isolation_level" in inspect.getsource(AIOKafkaConsumer.start)


def test_faust_recovery_internals_for_commit_markers():
    from faust.tables.recovery import Recovery

    source = inspect.getsource(Recovery)
    for attr in ("active_highwaters", "standby_highwaters", "active_offsets", "standby_offsets"):
        assert f"self.{attr}" in source, attr
    # Highwater = end offset - 1: a changelog ending in a commit marker never reaches it by records.
    assert "value - 1 if value is not None else -1" in inspect.getsource(Recovery._build_highwaters)


@pytest.mark.parametrize("value", ["auto", "at_least_once", "exactly_once"])
def test_guarantee_setting_accepts_the_three_modes(value):
    assert settings_mod.load(env={"TRACKGUARD_GUARANTEE": value}).guarantee == value


def test_guarantee_setting_refuses_anything_else(tmp_path: Path):
    with pytest.raises(settings_mod.SettingsError, match="guarantee must be one of auto, at_least_once, exactly_once"):
        settings_mod.load(env={"TRACKGUARD_GUARANTEE": "exactly-once"})


def test_a_commit_stuck_inside_librdkafka_abandons_its_producer(tmp_path):
    """librdkafka#5456/#5511: send_offsets_to_transaction can block forever when the group
    coordinator's broker dies. The hot path must not wait with it: past ACK_TIMEOUT_S + grace the
    producer is left behind and the batch voided as fenced; the stuck thread, when it returns,
    finishes nothing on the abandoned producer."""
    import asyncio
    import threading

    from streams.transactions import TransactionalHotPath, _Fenced

    release = threading.Event()
    calls: list[str] = []

    class StuckProducer:  # stands in for librdkafka's blocked call only: the rest is the real code
        def flush(self, timeout):
            calls.append("flush")
            return 0

        def send_offsets_to_transaction(self, tps, group, timeout):
            calls.append("send_offsets")
            release.wait(10)

        def commit_transaction(self, timeout):
            calls.append("commit")

    hot = object.__new__(TransactionalHotPath)
    hot.producer, hot.abandoned, hot.failures = StuckProducer(), [], []
    hot.commit_seconds = deque([0.001, 0.003])  # commits measured so far: milliseconds
    hot.ACK_TIMEOUT_S, hot.STUCK_GRACE_S, hot.STUCK_FLOOR_S = 5.0, 1.0, 0.3
    assert hot.stuck_after() == 0.3  # sized from the floor, not from the 6 s delivery bound
    stuck = hot.producer

    async def run():
        loop = asyncio.get_running_loop()
        with pytest.raises(_Fenced, match="did not return"):
            await hot._committed(loop, {("t", 0): 5}, b"group")
        hot.producer = object()  # what _renew_producer does next
        release.set()
        await asyncio.sleep(0.2)

    started = time.monotonic()
    asyncio.run(run())
    assert time.monotonic() - started < 3.0, "waited for the delivery bound, not the stuck deadline"
    assert hot.abandoned == [stuck]
    assert calls == ["flush", "send_offsets"]  # never committed on the abandoned producer


def test_the_stuck_deadline_follows_the_commits_measured_between_its_floor_and_the_delivery_bound():
    from streams.transactions import TransactionalHotPath

    hot = object.__new__(TransactionalHotPath)
    hot.commit_seconds = deque()
    assert hot.stuck_after() == hot.STUCK_FLOOR_S == 8.0  # nothing measured yet
    hot.commit_seconds.extend([0.02] * 95 + [5.6] * 5)  # a few slowed by a failover: not the measure
    assert hot.stuck_after() == 8.0
    hot.commit_seconds.clear()
    hot.commit_seconds.extend([1.5] * 100)  # a cluster whose commits take 1.5 s: ten times that
    assert hot.stuck_after() == 15.0
    hot.commit_seconds.extend([30.0] * 100)
    assert hot.stuck_after() == hot.ACK_TIMEOUT_S + hot.STUCK_GRACE_S == 70.0


def test_an_abort_that_meets_a_bumped_epoch_or_a_fatal_error_renews_the_producer():
    """Measured in the zombie test: resumed mid-commit, the commit fails as abortable and the abort
    then meets the epoch the broker bumped when it timed the transaction out. That is fencing (a new
    producer takes over), not a broker-wide failure that stops the worker."""
    from confluent_kafka import KafkaError, KafkaException

    from streams.hotpath import FatalProducerError
    from streams.transactions import TransactionalHotPath, _Fenced

    class Refusing:
        def __init__(self, code, times=99, **flags):
            self.code, self.flags, self.times, self.calls = code, flags, times, 0

        def abort_transaction(self, timeout):
            self.calls += 1
            if self.calls <= self.times:
                raise KafkaException(KafkaError(self.code, **self.flags))

    hot = object.__new__(TransactionalHotPath)
    hot.ACK_TIMEOUT_S = 1.0
    hot.producer = Refusing(KafkaError._FENCED)
    with pytest.raises(_Fenced):
        hot._abort()
    # Measured after a broker kill: records timed out, then the abort failed fatally.
    hot.producer = Refusing(KafkaError.INVALID_TXN_STATE, fatal=True)
    with pytest.raises(_Fenced, match="INVALID_TXN_STATE"):
        hot._abort()
    hot.producer = Refusing(KafkaError._TIMED_OUT, times=2, retriable=True)  # retried within the deadline
    hot._abort()
    assert hot.producer.calls == 3
    hot.producer = Refusing(KafkaError._TRANSPORT)
    with pytest.raises(FatalProducerError):
        hot._abort()


def consumer_in_group(generation: int, member_id: str) -> SimpleNamespace:
    coordinator = SimpleNamespace(generation=generation, member_id=member_id)
    consumer = SimpleNamespace(_coordinator=coordinator)
    return SimpleNamespace(
        _thread=SimpleNamespace(_ensure_consumer=lambda: consumer), app=SimpleNamespace(conf=SimpleNamespace(id="app"))
    )


def test_no_group_identity_while_the_worker_is_no_member():
    """aiokafka resets the generation to -1 and forgets the member id when the group has thrown the
    worker out (paused past its session); Kafka does not fence offsets sent under those."""
    from streams.hotpath import _group_metadata

    assert _group_metadata(consumer_in_group(4, "m-1")) == group_metadata("app", 4, "m-1")
    assert _group_metadata(consumer_in_group(-1, "")) is None
    assert _group_metadata(consumer_in_group(4, "")) is None


def test_a_batch_decided_outside_the_group_is_voided_not_committed():
    from faust.types import TP

    from streams.hotpath import BatchAborted, Pending
    from streams.processor import BatchResult
    from streams.transactions import TransactionalHotPath

    class NoProducer:  # the batch must not reach the producer at all
        def __getattr__(self, name):
            raise AssertionError(f"producer.{name} called")

    hot = object.__new__(TransactionalHotPath)
    hot.producer = NoProducer()
    hot.uncommitted = {(0, b"RR123456785CN"): b"{}", (1, b"LATER"): b"{}"}
    pending = Pending(BatchResult(), 1, 0.0, 0.0)
    pending.taken = {TP("shipments.submitted", 0): [9]}
    pending.group = None
    with pytest.raises(BatchAborted, match="no member of the group"):
        asyncio.run(hot.finish(pending))
    assert hot.uncommitted == {}  # every batch decided on top of it is void too
