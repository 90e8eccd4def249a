"""The batched hot path: the one module that goes below Faust's public API.

Faust keeps doing group membership, partition assignment, changelog recovery, standbys and offset
commits. Per batch of submissions this module:

1. reads state straight from the table's RocksDB partition (`Store._db_for_partition`),
2. runs the processor (pure rules) over the whole batch,
3. writes the changed states to RocksDB in one WriteBatch per partition,
4. produces verdicts, forwards and one changelog record per changed key with a confluent-kafka
   producer (C batching, ~1 µs a record instead of Faust's per-message send path),
5. waits until the broker acknowledged *all* of them, records the changelog offsets as the
   store's persisted offsets, and only then returns, so that Faust acks the source events and
   may commit their offsets. The changelog is always written before the source offset commits.

Internals used (checked by tests/test_hotpath_pins.py against the pinned faust-streaming):
`faust.stores.rocksdb.Store._db_for_partition`, `Store.set_persisted_offset`,
`Store.offset_key`, `Table.changelog_topic`, raw rocksdict WriteBatch; the changelog value
format is the table's raw bytes, which is what `Store.apply_changelog_batch` restores.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from confluent_kafka import KafkaError, Producer
from rocksdict import WriteBatch

from .processor import BatchResult, GuardProcessor, InRecord
from .settings import Settings

log = logging.getLogger("trackguard.hotpath")

FAUST_VERSIONS = ("0.15.3",)  # the faust-streaming releases this module was written and measured against


def producer_config(settings: Settings, **extra: Any) -> dict:
    """Producer settings shared by the worker and the CLI clients."""
    return {
        "bootstrap.servers": settings.broker,
        "partitioner": "murmur2_random",  # the Java/aiokafka partitioner: same key, same partition
        "linger.ms": 2,
        "acks": "all",
        "enable.idempotence": True,  # no duplicates from the producer's own retries
        "delivery.timeout.ms": 30_000,  # a broker gone for 30 s is fatal, not a silent stall
        "queue.buffering.max.messages": 1_000_000,
        **extra,
    }


class FatalProducerError(RuntimeError):
    """The broker did not take our records: going on would let state and topics drift apart."""


class RocksState:
    """Raw access to the RocksDB partitions behind a Faust `rocksdb://` table."""

    def __init__(self, table: Any) -> None:
        self.table = table

    @property
    def store(self) -> Any:
        return self.table.data

    def read(self, partition: int, key: bytes) -> bytes | None:
        return self.store._db_for_partition(partition).get(key)

    def write(self, partition: int, items: dict[bytes, bytes]) -> None:
        batch = WriteBatch(raw_mode=True)
        for key, value in items.items():
            batch.put(key, value)
        self.store._db_for_partition(partition).write(batch)

    def set_persisted_offset(self, partition: int, offset: int) -> None:
        from faust.types import TP

        self.store.set_persisted_offset(TP(self.changelog_topic, partition), offset)

    @property
    def changelog_topic(self) -> str:
        return self.table.changelog_topic.get_topic_name()


class HotPath:
    def __init__(self, settings: Settings, state: RocksState) -> None:
        self.settings = settings
        self.state = state
        self.processor = GuardProcessor(settings)
        self.producer = Producer(producer_config(settings, **{"client.id": f"{settings.app_id}-hotpath"}))
        self.totals: dict[str, int] = {}

    async def process(self, records: list[InRecord]) -> BatchResult:
        result = self.processor.process(records, self.state.read)
        # Local state first: a later batch (or the web views) must see this batch's decisions
        # even while the produce below is in flight.
        for partition, items in result.state_writes.items():
            self.state.write(partition, items)
        changelog_offsets = await self._produce_and_flush(result)
        for partition, offset in changelog_offsets.items():
            self.state.set_persisted_offset(partition, offset)
        for name, n in result.counts.items():
            self.totals[name] = self.totals.get(name, 0) + n
        return result

    async def _produce_and_flush(self, result: BatchResult) -> dict[int, int]:
        errors: list[KafkaError] = []
        changelog_offsets: dict[int, int] = {}

        def on_data(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        def on_changelog(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                errors.append(err)
            else:
                p = msg.partition()
                changelog_offsets[p] = max(changelog_offsets.get(p, -1), msg.offset())

        produce = self.producer.produce
        for rec in result.produce:
            kwargs: dict[str, Any] = {"on_delivery": on_data}
            if rec.partition is not None:
                kwargs["partition"] = rec.partition
            if rec.timestamp_ms is not None:
                kwargs["timestamp"] = rec.timestamp_ms
            self._produce(produce, rec.topic, rec.value, rec.key, kwargs)
        topic = self.state.changelog_topic
        for partition, items in result.state_writes.items():
            for key, value in items.items():
                self._produce(produce, topic, value, key, {"partition": partition, "on_delivery": on_changelog})

        # flush() blocks, so it runs in a thread: the event loop keeps heartbeating meanwhile.
        remaining = await asyncio.get_running_loop().run_in_executor(None, self.producer.flush, 60.0)
        if remaining or errors:
            raise FatalProducerError(
                f"broker did not acknowledge {remaining} records; errors: {errors[:3]}"
            )
        return changelog_offsets

    def _produce(self, produce: Any, topic: str, value: bytes, key: bytes | None, kwargs: dict) -> None:
        try:
            produce(topic, value, key, **kwargs)
        except BufferError:
            # Local queue full: let librdkafka drain, then try once more.
            self.producer.poll(0.5)
            produce(topic, value, key, **kwargs)


def die(message: str, exc: BaseException | None = None) -> None:
    """Stop the worker at once: safer than going on with state the topics no longer back."""
    log.critical("FATAL: %s%s", message, f": {exc!r}" if exc else "")
    logging.shutdown()
    os._exit(70)
