"""The Faust internals streams/hotpath.py relies on: fail loudly when an upgrade changes them.

The behaviour they must keep (changelog before commit, nothing lost after a crash and a restore,
the rules' clock from the Kafka timestamp) is tested end to end in tests/integration/.
"""

from __future__ import annotations

import inspect

import faust
from faust.stores.rocksdb import Store
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer

from streams.hotpath import FAUST_VERSIONS


def test_faust_version_is_one_the_hot_path_was_measured_with():
    assert faust.__version__ in FAUST_VERSIONS


def test_consumer_internals_exist_with_the_expected_shape():
    init = inspect.getsource(Consumer.__init__)
    for attr in ("_acked", "_acked_index", "_read_offset", "_committed_offset", "_commit_every"):
        assert f"self.{attr}" in init, attr
    assert Consumer._n_acked == 0  # a class-level counter the drain loop increments
    # The original drain loop the replacement mirrors: per-message callback, read offsets, gaps.
    drain = inspect.getsource(Consumer._drain_messages)
    for needle in (
        "getmany(timeout=1.0)",
        "_add_gap(",
        "set_read_offset(tp, offset)",
        "callback(message)",
        "offset >= r_offset",
    ):
        assert needle in drain, needle
    assert list(inspect.signature(Consumer._add_gap).parameters) == ["self", "tp", "offset_from", "offset_to"]
    assert list(inspect.signature(Consumer._wait_next_records).parameters) == ["self", "timeout"]
    assert list(inspect.signature(AIOKafkaConsumer._to_message).parameters) == ["self", "tp", "record"]
    # Commit computes the committed offset from `_acked` (contiguous runs).
    assert "self._acked[tp]" in inspect.getsource(Consumer._new_offset)


def test_rocksdb_store_internals_and_changelog_format():
    assert list(inspect.signature(Store._db_for_partition).parameters) == ["self", "partition"]
    assert list(inspect.signature(Store.set_persisted_offset).parameters) == ["self", "tp", "offset"]
    # Recovery writes the changelog's raw key/value bytes into RocksDB: our raw writes round-trip.
    restore = inspect.getsource(Store.apply_changelog_batch)
    assert "batches[msg.partition].put(msg.key, msg.value)" in restore
    assert "self.set_persisted_offset(tp, offset)" in restore


def test_fetch_wait_override_still_applies():
    from aiokafka import AIOKafkaConsumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    assert list(inspect.signature(AIOKafkaConsumerThread._create_worker_consumer).parameters) == ["self", "transport"]
    assert "fetch_max_wait_ms=1500" in inspect.getsource(AIOKafkaConsumerThread._create_worker_consumer)
    # aiokafka reads the attribute when it builds its fetcher in start(), after we set it.
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)


def test_recovery_internals_the_batched_restore_mirrors():
    from faust.tables.manager import TableManager
    from faust.tables.recovery import Recovery

    init = inspect.getsource(Recovery.__init__) + inspect.getsource(Recovery)
    for attr in (
        "active_tps",
        "standby_tps",
        "active_offsets",
        "standby_offsets",
        "signal_recovery_end",
        "in_recovery",
    ):
        assert f"self.{attr}" in init, attr
    for method in ("need_recovery", "flush_buffers", "_set_recovery_ended", "standby_remaining_total"):
        assert callable(getattr(Recovery, method)), method
    # What the original does per applied record, which streams.hotpath._restore repeats per fetch.
    slurp = inspect.getsource(Recovery)  # _slurp_changelogs is a mode ServiceTask; read the class
    for needle in (
        "offsets[tp] = offset",
        "_set_recovery_ended()",
        "signal_recovery_end.set()",
        "on_standbys_ready()",
        "standby_remaining_total()",
    ):
        assert needle in slurp, needle
    assert "self.standbys_ready = True" in inspect.getsource(TableManager.on_standbys_ready)


def test_rebalance_hooks_the_hot_path_wraps():
    """hot_next (streams/hotpath.py install()): revoke forgets, perform_seek sets, then decides."""
    assert list(inspect.signature(Consumer.on_partitions_revoked).parameters) == ["self", "revoked"]
    seek = inspect.getsource(Consumer.perform_seek)
    assert "seek_to_committed()" in seek and "self._committed_offset.update(" in seek
    # Why the hot path seeks again itself: Faust resumes the partitions before this seek ...
    from faust.tables.recovery import Recovery

    completed = inspect.getsource(Recovery.on_recovery_completed)
    assert completed.index("consumer.resume_partitions(") < completed.index("consumer.perform_seek()")
    # ... and aiokafka seeks only partitions with a committed offset above 0.
    from aiokafka import AIOKafkaConsumer

    assert "if offset and offset > 0:" in inspect.getsource(AIOKafkaConsumer.seek_to_committed)
    # Seeks go through seek_wait, which runs in the consumer's thread (Faust's seek does not).
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    assert "consumer.seek(tp, offset)" in inspect.getsource(AIOKafkaConsumerThread._seek_wait)
    assert "call_thread(self._seek_wait" in inspect.getsource(AIOKafkaConsumerThread.seek_wait)


def test_fetch_state_the_consumer_lag_reads():
    """HotPath.lags (GET /metrics) reads aiokafka's partition state from the event loop."""
    from aiokafka.consumer.subscription_state import TopicPartitionState

    init = inspect.getsource(TopicPartitionState.__init__)
    for attr in ("highwater", "lso", "_position"):
        assert f"self.{attr} = None" in init, attr
