"""The batched hot path: the one module that goes below Faust's public API.

Faust keeps doing group membership, partition assignment, changelog recovery, standbys, offset
commits and the web server. What it does not do here is deliver our submissions one message at a
time: `install()` replaces its consumer's drain loop so that, for the hot topics, each fetch goes
to the hot path as one batch, with no per-message Event, channel queue, task or ack call.
Per batch the hot path:

1. reads state straight from the table's RocksDB partition (`Store._db_for_partition`),
2. runs the processor (pure rules) over the whole batch,
3. writes the changed states to RocksDB in one WriteBatch per partition,
4. produces verdicts, forwards and one changelog record per changed key with a confluent-kafka
   producer (C batching, ~1 µs a record instead of Faust's per-message send path),
5. waits until the broker acknowledged *all* of them, records the changelog offsets as the
   store's persisted offsets, and only then marks the source offsets acked, so that Faust's
   commit can never pass a record whose changelog and verdict are not written.

Why not Faust's own stream (`take_events`): besides costing ~4x in per-message overhead, on
faust-streaming 0.15.3 a worker that restored a table from its changelog and then resumed its
streams silently stopped delivering fetched messages to the agent (measured: all 1,200 records
fetched, ~630 decided, the rest never; see docs/DESIGN.md). Without channel queues there is
nothing to lose between fetch and decision.

Internals used, checked by tests/test_hotpath_pins.py against the pinned faust-streaming:
`Consumer._drain_messages` (replaced), `_wait_next_records`, `_read_offset`, `_committed_offset`,
`_acked`, `_acked_index`, `_n_acked`, `_commit_every`, `_add_gap`, `_to_message`, `callback`,
`flow_active`; `Store._db_for_partition`, `Store.set_persisted_offset`; `Table.changelog_topic`.
The changelog value format is the table's raw bytes, which `Store.apply_changelog_batch` restores.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
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
        "log.connection.close": False,  # idle connections closed by the broker are not news
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
        # Where a batch's time goes (seconds): deciding (CPU) and waiting for the broker's acks.
        self.timing = {"batches": 0, "records": 0, "decide_s": 0.0, "flush_s": 0.0}

    async def process(self, records: list[InRecord]) -> BatchResult:
        t0 = time.perf_counter()
        result = self.processor.process(records, self.state.read)
        # Local state first: a later batch (or the web views) must see this batch's decisions
        # even while the produce below is in flight.
        for partition, items in result.state_writes.items():
            self.state.write(partition, items)
        t1 = time.perf_counter()
        changelog_offsets = await self._produce_and_flush(result)
        for partition, offset in changelog_offsets.items():
            self.state.set_persisted_offset(partition, offset)
        for name, n in result.counts.items():
            self.totals[name] = self.totals.get(name, 0) + n
        timing = self.timing
        timing["batches"] += 1
        timing["records"] += len(records)
        timing["decide_s"] += t1 - t0
        timing["flush_s"] += time.perf_counter() - t1
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

        await self._flush(errors)
        if result.state_writes:
            # Tansu 0.6 reports a partition's high watermark as the base offset of its last record
            # batch + 1, not its last offset + 1, and Faust's recovery reads a changelog only up to
            # that watermark: records in the tail of a multi-record batch would not be restored.
            # Re-writing each partition's last record alone, as a batch of one, after the flush
            # makes the watermark exact. Restoring a record twice is harmless (same key, same value).
            for partition, items in result.state_writes.items():
                key = next(reversed(items))
                self._produce(produce, topic, items[key], key, {"partition": partition, "on_delivery": on_changelog})
            await self._flush(errors)
        return changelog_offsets

    async def _flush(self, errors: list) -> None:
        # flush() blocks, so it runs in a thread: the event loop keeps heartbeating meanwhile.
        remaining = await asyncio.get_running_loop().run_in_executor(None, self.producer.flush, 60.0)
        if remaining or errors:
            raise FatalProducerError(f"broker did not acknowledge {remaining} records; errors: {errors[:3]}")

    def _produce(self, produce: Any, topic: str, value: bytes, key: bytes | None, kwargs: dict) -> None:
        try:
            produce(topic, value, key, **kwargs)
        except BufferError:
            # Local queue full: let librdkafka drain, then try once more.
            self.producer.poll(0.5)
            produce(topic, value, key, **kwargs)


def install(app: Any, hot: "HotPath", hot_topics: set[str]) -> None:
    """Make the app's consumer hand whole fetches of `hot_topics` to `hot`; call before the worker starts."""
    import faust

    if faust.__version__ not in FAUST_VERSIONS:
        raise RuntimeError(f"streams.hotpath was written for faust-streaming {FAUST_VERSIONS}, "
                           f"found {faust.__version__}: re-check its internals (tests/test_hotpath_pins.py)")
    transport = app.transport
    transport.Consumer = type("HotPathConsumer", (transport.Consumer,), {
        "_drain_messages": _drain_messages, "hot": hot, "hot_topics": frozenset(hot_topics),
    })


async def _drain_messages(self: Any, fetcher: Any) -> None:
    """Replacement for faust's `Consumer._drain_messages` (0.15.3), batching the hot topics.

    Mirrors the original's bookkeeping: read offsets (records at or past them only), gaps in
    offsets, `commit_every`. Records of other topics (changelogs during recovery, standbys) take
    Faust's own per-message path unchanged.
    """
    callback = self.callback
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    read_offset = self._read_offset
    hot, hot_topics = self.hot, self.hot_topics
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            await self.sleep(0)
            records, _active = await self._wait_next_records(1.0)
            if not records or self.should_stop or not self.flow_active:
                continue
            generation = self.app.consumer_generation_id
            batch: list[InRecord] = []
            taken: dict[Any, list[int]] = {}
            for tp, recs in records.items():
                r_offset = read_offset[tp]
                if tp.topic in hot_topics:
                    offsets = taken.setdefault(tp, [])
                    for r in recs:
                        if r_offset is None or r.offset >= r_offset:
                            batch.append(InRecord(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp))
                            offsets.append(r.offset)
                else:
                    for r in recs:
                        if r_offset is None or r.offset >= r_offset:
                            await self.wait_first(callback(self._to_message(tp, r)), self.suspend_flow.wait())
                            read_offset[tp] = r.offset
            if not batch:
                continue
            # Shielded: a rebalance cancels this loop, but a batch whose state is already in RocksDB
            # must also reach the changelog, or the local store would hold what the topic lacks.
            await asyncio.shield(hot.process(batch))
            if generation != self.app.consumer_generation_id:
                continue  # assignment changed meanwhile: don't ack; the new owner re-reads (replays)
            for tp, offsets in taken.items():
                if offsets:
                    await _ack_offsets(self, tp, offsets)
                    read_offset[tp] = offsets[-1]
            if self._commit_every is not None and self._n_acked >= self._commit_every:
                self._n_acked = 0
                await self.commit()
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            return
        raise
    except FatalProducerError as exc:
        die("the broker stopped taking records; stopping so state and topics cannot drift", exc)
    except Exception as exc:  # a bug, not bad input: bad input is a verdict, never an exception
        die("the decision path raised", exc)


async def _ack_offsets(self: Any, tp: Any, offsets: list[int]) -> None:
    """`Consumer.ack` for a run of offsets, without a Message object per record."""
    committed = self._committed_offset[tp]
    acked_index, acked = self._acked_index[tp], self._acked[tp]
    previous = acked[-1] if acked else None
    for offset in offsets:
        if committed is not None and offset < committed or offset in acked_index:
            continue
        if previous is not None and offset - previous > 1:
            await self._add_gap(tp, previous + 1, offset - 1)  # e.g. transaction markers on Kafka
        acked_index.add(offset)
        acked.append(offset)
        previous = offset
        self._n_acked += 1


def die(message: str, exc: BaseException | None = None) -> None:
    """Stop the worker at once: safer than going on with state the topics no longer back."""
    log.critical("FATAL: %s%s", message, f": {exc!r}" if exc else "")
    logging.shutdown()
    os._exit(70)
