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
`flow_active`; `AIOKafkaConsumerThread._create_worker_consumer` (wrapped to lower aiokafka's
`_fetch_max_wait_ms`); `Recovery` bookkeeping for the batched changelog restore (`active_tps`,
`standby_tps`, `active_offsets`, `standby_offsets`, `need_recovery`, `flush_buffers`,
`_set_recovery_ended`, `signal_recovery_end`, `standby_remaining_total`); `Store._db_for_partition`, `Store.set_persisted_offset`; `Table.changelog_topic`.
The changelog value format is the table's raw bytes, which `Store.apply_changelog_batch` restores.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, Producer
from rocksdict import WriteBatch

from .partitioning import partition_for
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


class _Deliveries:
    """Counts one batch's outstanding deliveries; resolves a future when the broker has them all.

    The delivery callbacks run in the producer's poll thread, the future lives in the event loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, expected: int) -> None:
        self.loop = loop
        self.remaining = expected
        self.errors: list[KafkaError] = []
        self.changelog_offsets: dict[int, int] = {}
        self.done = loop.create_future()
        if expected == 0:
            self.done.set_result(None)

    def on_data(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self.errors.append(err)
        self._count_down()

    def on_changelog(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.errors.append(err)
        else:
            p = msg.partition()
            self.changelog_offsets[p] = max(self.changelog_offsets.get(p, -1), msg.offset())
        self._count_down()

    def _count_down(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.loop.call_soon_threadsafe(_resolve, self.done)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class Pending:
    """A batch decided, written to RocksDB and handed to the producer, not yet acknowledged."""

    def __init__(self, result: BatchResult, deliveries: _Deliveries, started: float) -> None:
        self.result, self.deliveries, self.started = result, deliveries, started


class HotPath:
    """Decide a batch (`begin`, synchronous), then wait for the broker's acks (`finish`).

    The consumer loop begins batch N+1 before finishing batch N, so deciding the next batch
    overlaps the round trip of the previous one; offsets are acked strictly in order, each only
    after its own batch is finished.
    """

    ACK_TIMEOUT_S = 60.0

    def __init__(self, settings: Settings, state: RocksState) -> None:
        self.settings = settings
        self.state = state
        self.processor = GuardProcessor(settings)
        self.partitions = settings.partitions
        self.fatal: list[str] = []
        self.producer = Producer(producer_config(settings, **{"client.id": f"{settings.app_id}-hotpath",
                                                              "error_cb": self._on_error}))
        self.totals: dict[str, int] = {}
        # Where a batch's time goes (seconds): deciding (CPU) and waiting for the broker's acks.
        self.timing = {"batches": 0, "records": 0, "decide_s": 0.0, "flush_s": 0.0}
        self._polling = False
        self._open: set[_Deliveries] = set()  # batches waiting for their acks
        self.command_waiters: dict[str, asyncio.Future] = {}  # command_id -> HTTP caller waiting

    def _start_polling(self) -> None:
        """Delivery callbacks fire from producer.poll(); a daemon thread keeps calling it."""
        if self._polling:
            return
        self._polling = True

        def poll_forever() -> None:
            while True:
                self.producer.poll(0.05)

        threading.Thread(target=poll_forever, name="hotpath-producer-poll", daemon=True).start()

    def begin(self, records: list[InRecord]) -> Pending:
        self._start_polling()
        t0 = time.perf_counter()
        result = self.processor.process(records, self.state.read)
        # Local state first: the next batch (or the web views) must see this batch's decisions
        # even while its records are in flight.
        for partition, items in result.state_writes.items():
            self.state.write(partition, items)
        # Only the last record of each (topic, partition) asks for a delivery report: the
        # idempotent producer delivers a partition's records in order and without gaps (a lost
        # one is a fatal producer error, caught by error_cb), so the last one's ack covers the
        # records before it. One Python callback per partition per batch instead of two per event.
        sends = []
        last: dict[tuple[str, int], int] = {}
        n = self.partitions
        for rec in result.produce:
            p = rec.partition if rec.partition is not None else partition_for(rec.key or b"", n)
            last[(rec.topic, p)] = len(sends)
            sends.append((rec.topic, rec.value, rec.key, p, rec.timestamp_ms or 0, False))
        topic = self.state.changelog_topic
        for p, items in result.state_writes.items():
            for key, value in items.items():
                last[(topic, p)] = len(sends)
                sends.append((topic, value, key, p, 0, True))
        deliveries = _Deliveries(asyncio.get_running_loop(), len(last))
        reported = set(last.values())
        produce = self.producer.produce
        for i, (t, value, key, p, ts, is_changelog) in enumerate(sends):
            callback = (deliveries.on_changelog if is_changelog else deliveries.on_data) if i in reported else None
            try:
                produce(t, value, key, partition=p, timestamp=ts, on_delivery=callback)
            except BufferError:
                self._produce(produce, t, value, key, {"partition": p, "timestamp": ts, "on_delivery": callback})
        timing = self.timing
        timing["batches"] += 1
        timing["records"] += len(records)
        timing["decide_s"] += time.perf_counter() - t0
        return Pending(result, deliveries, time.perf_counter())

    async def finish(self, pending: Pending) -> BatchResult:
        result = pending.result
        await self._acknowledged(pending.deliveries)
        if result.state_writes:
            # Tansu 0.6 reports a partition's high watermark as the base offset of its last record
            # batch + 1, not its last offset + 1, and Faust's recovery reads a changelog only up to
            # that watermark: records in the tail of a multi-record batch would not be restored.
            # Re-writing each partition's last record after the batch is acknowledged puts it in
            # a record batch of its own, which makes the watermark cover the whole batch.
            # Restoring a record twice is harmless (same key, same value).
            topic = self.state.changelog_topic
            markers = _Deliveries(asyncio.get_running_loop(), len(result.state_writes))
            for partition, items in result.state_writes.items():
                key = next(reversed(items))
                self._produce(self.producer.produce, topic, items[key], key,
                              {"partition": partition, "on_delivery": markers.on_changelog})
            await self._acknowledged(markers)
            for partition, offset in markers.changelog_offsets.items():
                self.state.set_persisted_offset(partition, offset)
        for name, n in result.counts.items():
            self.totals[name] = self.totals.get(name, 0) + n
        for out in result.command_results:  # results are on the broker now: answer HTTP callers
            waiter = self.command_waiters.pop(out.get("command_id") or "", None)
            if waiter is not None and not waiter.done():
                waiter.set_result(out)
        self.timing["flush_s"] += time.perf_counter() - pending.started
        return result

    async def process(self, records: list[InRecord]) -> BatchResult:
        """One batch, start to end (no overlap)."""
        return await self.finish(self.begin(records))

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():  # e.g. the idempotent producer lost a record: nothing it says can be trusted
            self.fatal.append(str(err))
            self.loop_wakeup()

    def loop_wakeup(self) -> None:
        """Fail every batch waiting for acks at once (called from librdkafka's thread)."""
        for waiter in list(self._open):
            waiter.loop.call_soon_threadsafe(_resolve, waiter.done)

    async def _acknowledged(self, deliveries: _Deliveries) -> None:
        self._open.add(deliveries)
        try:
            await asyncio.wait_for(asyncio.shield(deliveries.done), self.ACK_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise FatalProducerError(f"{deliveries.remaining} records not acknowledged in {self.ACK_TIMEOUT_S} s") from None
        finally:
            self._open.discard(deliveries)
        if self.fatal:
            raise FatalProducerError(f"fatal producer error: {self.fatal[0]}")
        if deliveries.errors:
            raise FatalProducerError(f"the broker refused records: {deliveries.errors[:3]}")

    def _produce(self, produce: Any, topic: str, value: bytes, key: bytes | None, kwargs: dict) -> None:
        while True:
            try:
                produce(topic, value, key, **kwargs)
                return
            except BufferError:
                time.sleep(0.01)  # local queue full: the poll thread is draining it


def install(app: Any, hot: "HotPath", hot_topics: set[str]) -> None:
    """Make the app's consumer hand whole fetches of `hot_topics` to `hot`; call before the worker starts."""
    import faust

    if faust.__version__ not in FAUST_VERSIONS:
        raise RuntimeError(f"streams.hotpath was written for faust-streaming {FAUST_VERSIONS}, "
                           f"found {faust.__version__}: re-check its internals (tests/test_hotpath_pins.py)")
    transport = app.transport
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread as base_thread
    fetch_wait_ms = hot.settings.fetch_max_wait_ms

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = base_thread._create_worker_consumer(self, transport)
        # faust hard-codes fetch_max_wait_ms=1500 and Tansu holds an empty fetch that long, so a
        # submission reaching an idle worker waited ~0.75 s on average before it was even fetched.
        consumer._fetch_max_wait_ms = fetch_wait_ms
        return consumer

    thread_class = type("HotPathConsumerThread", (base_thread,), {"_create_worker_consumer": _create_worker_consumer})

    def _new_consumer_thread(self: Any) -> Any:
        return thread_class(self, loop=self.loop, beacon=self.beacon)

    transport.Consumer = type("HotPathConsumer", (transport.Consumer,), {
        "_drain_messages": _drain_messages, "_new_consumer_thread": _new_consumer_thread,
        "hot": hot, "hot_topics": frozenset(hot_topics),
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
    in_flight: tuple[Pending, dict[Any, list[int]], int] | None = None
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            await self.sleep(0)
            # With a batch in flight, don't wait for more records: finish that batch first.
            records, _active = await self._wait_next_records(0.0 if in_flight else 1.0)
            batch: list[InRecord] = []
            taken: dict[Any, list[int]] = {}
            if records and not self.should_stop and self.flow_active:
                for tp, recs in records.items():
                    r_offset = read_offset[tp]
                    if tp.topic in hot_topics:
                        offsets = taken.setdefault(tp, [])
                        for r in recs:
                            if r_offset is None or r.offset >= r_offset:
                                batch.append(InRecord(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp))
                                offsets.append(r.offset)
                    elif tp.topic == hot.state.changelog_topic and _restore(self, tp, recs):
                        read_offset[tp] = recs[-1].offset
                    else:
                        for r in recs:
                            if r_offset is None or r.offset >= r_offset:
                                await self.wait_first(callback(self._to_message(tp, r)), self.suspend_flow.wait())
                                read_offset[tp] = r.offset
            # Decide the new batch while the previous one's records are still on their way.
            started = (hot.begin(batch), taken, self.app.consumer_generation_id) if batch else None
            if in_flight is not None:
                await _finish_and_ack(self, *in_flight)
            in_flight = started
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


def _restore(self: Any, tp: Any, recs: list) -> bool:
    """Apply a fetch of changelog records to RocksDB in one WriteBatch, doing Recovery's bookkeeping.

    Faust's own restore takes one record at a time from a queue (`asyncio.wait_for` per record:
    ~12,000 records/s here). Returns False for records Recovery does not expect (then Faust's
    per-message path handles them, as before).
    """
    recovery = self.app.tables.recovery
    if tp in recovery.active_tps:
        offsets = recovery.active_offsets
    elif tp in recovery.standby_tps:
        offsets = recovery.standby_offsets
    else:
        return False
    seen = offsets.get(tp)
    batch = WriteBatch(raw_mode=True)
    last = None
    for r in recs:
        if seen is None or r.offset > seen:
            if r.value is None:
                batch.delete(r.key)
            else:
                batch.put(r.key, r.value)
            last = r.offset
    if last is not None:
        store = self.hot.state.store
        store._db_for_partition(tp.partition).write(batch)
        store.set_persisted_offset(tp, last)
        offsets[tp] = last
    # What Recovery._slurp_changelogs does after each record it applies.
    if recovery.in_recovery and not recovery.need_recovery():
        recovery.flush_buffers()
        recovery._set_recovery_ended()
        recovery.signal_recovery_end.set()
    if not recovery.tables.standbys_ready and not recovery.standby_remaining_total():
        recovery.tables.on_standbys_ready()
    return True


async def _finish_and_ack(self: Any, pending: Pending, taken: dict[Any, list[int]], generation: int) -> None:
    # Shielded: a rebalance may cancel the loop, but a batch whose state is already in RocksDB
    # must also reach the changelog, or the local store would hold what the topic lacks.
    await asyncio.shield(self.hot.finish(pending))
    if generation != self.app.consumer_generation_id:
        return  # the assignment changed meanwhile: no ack; whoever owns the partition re-reads (replays)
    for tp, offsets in taken.items():
        if offsets:
            await _ack_offsets(self, tp, offsets)
            self._read_offset[tp] = offsets[-1]
    if self._commit_every is not None and self._n_acked >= self._commit_every:
        self._n_acked = 0
        await self.commit()


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
