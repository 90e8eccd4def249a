"""Exactly-once: one Kafka transaction per hot-path batch.

A batch's changelog records, re-keyed forwards, verdicts, dead letters, command results *and* its
source offsets are committed in one transaction (KIP-98), with the offsets sent under the
consumer group's current generation and member id (KIP-447): a worker that lost its partitions
in a rebalance (a zombie) has its commit refused by the group coordinator, and a restarted worker
with the same transactional id aborts whatever its previous life left open. A consumer with
`isolation.level=read_committed` sees each submission's verdict once.

What this changes against the at-least-once `HotPath`:
- local state moves only when its transaction has committed. Until then a batch's states wait in
  `uncommitted` (read by the next batches, not by the web views), so an aborted transaction or a
  crash leaves RocksDB holding committed decisions only, and a restart cannot meet its own
  uncommitted decisions as "replays";
- no two-round produce (changelog first, verdicts after): inside one transaction nothing is
  visible to read_committed readers before the commit;
- Faust commits no offsets of the hot topics (nothing is acked to it); the transaction does;
- persisted changelog offsets come from the committed end of each written partition, read right
  after a commit while no transaction of ours is open.

The consumer loop (`streams.hotpath._drain_messages`) provides the group identity and, when a
transaction had to be aborted for a reason other than a refused record (a rebalance fenced it,
the transaction timed out), drops the batches decided on top of it and seeks the hot partitions
back to their committed offsets.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import struct
import time
from collections import deque
from typing import Any, NoReturn

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from .hotpath import RECORD_ERRORS, BatchAborted, FatalProducerError, HotPath, Pending, producer_config
from .processor import BatchResult, InRecord
from .settings import Settings, SettingsError
from .store import PartitionStore

log = logging.getLogger("trackguard.transactions")

# librdkafka's serialized consumer-group metadata (rd_kafka_consumer_group_metadata_write), which
# confluent-kafka's `send_offsets_to_transaction` takes as bytes: magic, generation id (int32,
# native order), group id, member id (NUL-terminated), whether the group instance id is NULL (int8),
# then the instance id if not. Our consumer is Faust's aiokafka one, so the bytes are built here;
# tests/test_transactions.py checks them against confluent-kafka's own consumer.
_CGMD_MAGIC = b"CGMDv2:"


def group_metadata(group_id: str, generation: int, member_id: str, instance_id: str | None = None) -> bytes:
    out = _CGMD_MAGIC + struct.pack("=i", generation) + group_id.encode() + b"\0" + member_id.encode() + b"\0"
    if instance_id is None:
        return out + b"\x01"
    return out + b"\x00" + instance_id.encode() + b"\0"


def transactional_id(settings: Settings) -> str:
    """Stable for one worker across restarts (host and data directory), distinct between workers:
    a restarted worker's `init_transactions` aborts its previous life's open transaction at once
    instead of leaving read_committed readers waiting for `transaction_timeout_ms`."""
    where = f"{socket.gethostname()}:{settings.data_dir.resolve()}"
    return f"{settings.app_id}-{hashlib.sha256(where.encode()).hexdigest()[:16]}"


class TransactionalHotPath(HotPath):
    transactional = True
    PERSIST_EVERY_S = 2.0
    PERSIST_TIMEOUT_S, PERSIST_BACKOFF_S = 1.0, 30.0  # see `finish`
    STUCK_GRACE_S = 10.0  # past ACK_TIMEOUT_S, a commit that has not returned is stuck in librdkafka
    # A commit takes milliseconds; while a Kafka node fails over it waits for the node's session to
    # expire and a new leader (6 s on the project's cluster, 9 s by Kafka's default) and then
    # returns. One that has not returned after STUCK_FLOOR_S, and after STUCK_FACTOR times the
    # 90th percentile of the recent commits, is taken as stuck (see `_committed`). Not the slowest:
    # measured, one commit slowed to 5.6 s by a failover set the next deadline to 56 s, and the
    # stuck commit that followed it held every verdict that long.
    STUCK_FLOOR_S = 8.0
    SLOW_COMMIT_S = 1.0  # a commit that took longer is logged with where its time went
    STUCK_FACTOR = 10.0

    def __init__(self, settings: Settings, store: PartitionStore) -> None:
        super().__init__(settings, store, markers=False)
        self.uncommitted: dict[tuple[int, bytes], bytes] = {}  # decided, transaction not yet committed
        self.delivery_errors: list[tuple[KafkaError, str, bytes | None, bytes | None]] = []
        self.persist_due = 0.0
        self.renewals: list[float] = []  # when the producer was last replaced after being fenced
        self.abandoned: list[Producer] = []  # producers stuck inside librdkafka (see _committed)
        self.commit_seconds: deque[float] = deque(maxlen=200)  # how long the recent commits took
        # Commands from the HTTP API are publications, like a client's: outside any transaction.
        self.client_producer = Producer(
            producer_config(settings, **{"client.id": f"{settings.app_id}-api", "linger.ms": 0})
        )
        self.producer.init_transactions(settings.transaction_timeout_ms / 1000 + 20)

    def _new_producer(self, settings: Settings, client: str) -> Producer:
        return Producer(
            producer_config(
                settings,
                **{
                    "client.id": client,
                    "transactional.id": transactional_id(settings),
                    "transaction.timeout.ms": settings.transaction_timeout_ms,
                    # librdkafka requires it: a record cannot outlive the transaction it is part of.
                    "delivery.timeout.ms": settings.transaction_timeout_ms,
                    "error_cb": self._on_error,
                    "delivery.report.only.error": True,
                    "on_delivery": self._on_failed_delivery,
                },
            )
        )

    async def committed_offsets(self, group_id: str, tps: list) -> dict | None:
        """Read with require_stable (KIP-447): waits out transactions whose offsets are still being
        committed, so a partition's new owner never starts before its previous owner's last commit."""
        if not tps:
            return {}
        if self.admin is None:
            self.admin = AdminClient(self.settings.client_config())
        admin = self.admin
        request = [ConsumerGroupTopicPartitions(group_id, [TopicPartition(tp.topic, tp.partition) for tp in tps])]

        def fetch() -> dict[tuple[str, int], int | None]:
            # A partition whose offsets a transaction is still committing comes back with an error
            # (UNSTABLE_OFFSET_COMMIT) and no offset, not with a wait: asked again until it is
            # stable. Read as "no committed offset", it once sent a new owner back to offset 0, to
            # replay 221 committed decisions (the zombie test). The broker ends a stuck transaction
            # within its timeout, so the wait is bounded by it.
            deadline = time.monotonic() + self.settings.transaction_timeout_ms / 1000 + 30
            waited = False
            while True:
                result = admin.list_consumer_group_offsets(request, require_stable=True, request_timeout=30)
                found = result[group_id].result().topic_partitions
                unstable = [tp for tp in found if tp.error is not None]
                if not unstable:
                    return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None) for tp in found}
                if not waited:
                    log.info(
                        "committed offsets of %s not stable yet (%s): waiting", unstable[0].topic, unstable[0].error
                    )
                    waited = True
                if time.monotonic() > deadline:
                    raise FatalProducerError(
                        f"committed offsets still unreadable after the transaction timeout: {unstable[0].error}"
                    )
                time.sleep(0.1)

        found = await asyncio.get_running_loop().run_in_executor(None, fetch)
        return {tp: found.get((tp.topic, tp.partition)) for tp in tps}

    def void(self) -> None:
        self.uncommitted.clear()

    def read(self, partition: int, key: bytes) -> bytes | None:
        value = self.uncommitted.get((partition, key))
        return value if value is not None else self.store.read(partition, key)

    def begin(self, records: list[InRecord]) -> Pending:
        t0 = time.perf_counter()
        result = self.processor.process(records, self.read)
        uncommitted = self.uncommitted
        for partition, items in result.state_writes.items():
            for key, value in items.items():
                uncommitted[(partition, key)] = value
        return self._decided(records, result, t0)

    async def finish(self, pending: Pending) -> BatchResult:
        result = pending.result
        if pending.group is None:  # see hotpath._group_metadata: offsets no coordinator would fence
            self.uncommitted.clear()  # this batch's and every later one's: all void
            raise BatchAborted("decided while this worker was no member of the group (rejoining): not committed")
        loop = asyncio.get_running_loop()
        skip: set[tuple[str, bytes | None, bytes | None]] = set()
        while True:
            self.delivery_errors = []
            try:
                self._begin()
                self._produce_batch(result, skip)
                self._dead_letter_refused()  # refused in an earlier attempt: their dead letters
                await self._committed(loop, pending.source_offsets, pending.group)
                break
            except _Fenced as exc:
                await self._fenced(exc)
            except _Abortable as exc:
                try:
                    await loop.run_in_executor(None, self._abort)
                except _Fenced as fenced:
                    # The commit failed as abortable and the abort could not finish it: the epoch
                    # was bumped (a zombie resumed mid-commit) or the error was fatal (see _abort).
                    await self._fenced(fenced)
                refused = [e for e in self.delivery_errors if e[0].code() in RECORD_ERRORS]
                if any(
                    topic in (self.store.changelog_topic, self.settings.topics.invalid) for _e, topic, *_ in refused
                ):
                    raise FatalProducerError(
                        f"the broker refused a changelog record or dead letter: {refused[0][0]}"
                    ) from None
                if not refused:
                    self.uncommitted.clear()  # this batch's and every later one's: all void
                    raise BatchAborted(str(exc)) from None
                # Records the broker refused one by one: the same batch again, each replaced by its
                # dead letter (a transaction cannot commit with a failed record in it).
                for entry in refused:
                    skip.add(entry[1:])
                self.refused.extend(refused)
        # Committed: now the local state may move (see the module's docstring).
        uncommitted = self.uncommitted
        for partition, items in result.state_writes.items():
            self.store.write(partition, items)
            for key, value in items.items():
                if uncommitted.get((partition, key)) is value:  # not overwritten by a later batch
                    del uncommitted[(partition, key)]
        self.unpersisted.update(result.state_writes)
        if self.unpersisted and time.monotonic() >= self.persist_due:
            # Between transactions (none of ours is open: the ends are all committed), so the
            # verdicts wait for it: bounded by PERSIST_TIMEOUT_S, and after a failure (a node
            # failing over: measured, the read then held every verdict for its whole 10 s
            # timeout) left alone for PERSIST_BACKOFF_S. Only a restart's replay grows meanwhile.
            read = await self._persist_ends(IsolationLevel.READ_COMMITTED, self.PERSIST_TIMEOUT_S)
            self.persist_due = time.monotonic() + (self.PERSIST_EVERY_S if read else self.PERSIST_BACKOFF_S)
        self._account(result, pending)
        return result

    async def _fenced(self, exc: _Fenced) -> NoReturn:
        """Our transaction was aborted for us: it outlived transaction_timeout_ms (the worker
        stalled, e.g. paused past its session while the group moved its partitions: a zombie).
        Nothing of it is visible; a new producer takes over our transactional id."""
        self.uncommitted.clear()
        await self._renew_producer(str(exc))
        raise BatchAborted(f"fenced: {exc}") from None

    async def persist_offsets(self) -> None:
        await self._persist_ends(IsolationLevel.READ_COMMITTED)

    def _produce_batch(self, result: BatchResult, skip: set) -> None:
        produce = self.producer.produce
        for rec in result.produce:
            if not skip or (rec.topic, rec.key, rec.value) not in skip:
                self._send(produce, rec)
        topic = self.store.changelog_topic
        for p, items in result.state_writes.items():
            for key, value in items.items():
                self._produce(produce, topic, value, key, {"partition": p})

    def _begin(self) -> None:
        try:
            self.producer.begin_transaction()
        except KafkaException as exc:
            if exc.args[0].code() in _FENCED:
                raise _Fenced(exc.args[0].str()) from None
            raise FatalProducerError(f"could not begin a transaction: {exc.args[0]}") from None

    async def _renew_producer(self, why: str) -> None:
        now = time.monotonic()
        self.renewals = [t for t in self.renewals if t > now - 60.0] + [now]
        if len(self.renewals) > 3:  # fenced again and again: another live worker has our id
            raise FatalProducerError(
                f"fenced {len(self.renewals)} times within a minute: does another worker use transactional "
                f"id {transactional_id(self.settings)} (same host and data directory)? {why}"
            )
        log.warning("this worker's transaction was fenced or stuck (%s): starting a new transactional producer", why)
        self.producer = self._new_producer(self.settings, f"{self.settings.app_id}-hotpath")
        await asyncio.get_running_loop().run_in_executor(
            None, self.producer.init_transactions, self.settings.transaction_timeout_ms / 1000 + 20
        )

    def stuck_after(self) -> float:
        """Seconds after which a commit that has not returned is stuck: sized from the commits
        measured, never below STUCK_FLOOR_S (a node's failover) nor above the delivery bound."""
        recent = sorted(self.commit_seconds)
        typical = recent[int(len(recent) * 0.9)] if recent else 0.0
        return min(self.ACK_TIMEOUT_S + self.STUCK_GRACE_S, max(self.STUCK_FLOOR_S, self.STUCK_FACTOR * typical))

    async def _committed(self, loop: asyncio.AbstractEventLoop, offsets: dict, group: bytes) -> None:
        """`_commit` in a thread, abandoning the producer if librdkafka never returns.

        librdkafka 2.16 (the newest) can block in send_offsets_to_transaction forever, whatever its
        timeout, when the group coordinator's broker dies: it ignores the timeout
        (confluentinc/librdkafka#5456) and waits on a coordinator it dropped from its metadata
        (#5511). Measured here: a Kafka node SIGKILLed mid-burst left a worker alive and deciding
        nothing for minutes. The stuck call cannot be cancelled, so its producer is left behind
        (kept referenced: a thread is still inside it) and the batch is voided as if fenced: the
        new producer's init_transactions aborts the open transaction, and the batch is decided
        again from the committed offsets."""
        producer = self.producer
        work = loop.run_in_executor(None, self._commit, producer, offsets, group)
        limit = self.stuck_after()
        started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.shield(work), limit)
        except TimeoutError:
            self.abandoned.append(producer)
            work.add_done_callback(lambda f: f.cancelled() or f.exception())  # whatever it ends with, later
            raise _Fenced(
                f"the transaction's commit did not return within {limit:.1f} s "
                "(librdkafka#5456/#5511: a lost group coordinator)"
            ) from None
        self.commit_seconds.append(time.monotonic() - started)

    def _on_error(self, err: KafkaError) -> None:
        if err.code() not in _FENCED:  # fencing surfaces as the commit's exception: handled there
            super()._on_error(err)

    def _commit(self, producer: Producer, offsets: dict[tuple[str, int], int], group: bytes) -> None:
        """send_offsets_to_transaction + commit_transaction, retrying what librdkafka calls retriable,
        all within ACK_TIMEOUT_S."""
        deadline = time.monotonic() + self.ACK_TIMEOUT_S

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        # flush first: it serves the delivery reports, so a refused record is known before the commit.
        steps: list[Any] = [lambda: producer.flush(left())]
        if offsets:
            tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            steps.append(lambda: producer.send_offsets_to_transaction(tps, group, left()))
        steps.append(lambda: producer.commit_transaction(left()))
        took = []  # seconds per step: a slow commit says where it waited
        for step in steps:
            started = time.monotonic()
            while True:
                if producer is not self.producer:  # abandoned as stuck (see _committed): not ours to finish
                    raise _Fenced("abandoned")
                try:
                    step()
                    break
                except KafkaException as exc:
                    err = exc.args[0]
                    if err.txn_requires_abort():
                        raise _Abortable(f"{err.name()}: {err.str()}") from None
                    if err.retriable() and time.monotonic() < deadline:
                        continue
                    if err.code() in _FENCED:
                        raise _Fenced(err.str()) from None
                    raise FatalProducerError(f"the transaction could not commit: {err.name()}: {err.str()}") from None
            took.append(time.monotonic() - started)
        if sum(took) > self.SLOW_COMMIT_S:
            log.warning("a slow commit: %s s (flush, offsets, commit)", " + ".join(f"{t:.2f}" for t in took))
        if self.failures:
            raise FatalProducerError(self.failures[0])

    def _abort(self) -> None:
        """Abort the open transaction, known not to have committed (its commit failed as abortable).
        A producer that cannot abort it (fenced, or an error librdkafka made fatal) is replaced:
        the new one's init_transactions aborts it. Measured on the 3-node cluster: a node SIGKILLed
        mid-batch timed the batch's records out (abortable, "requires epoch bump") and the abort
        then failed with a fatal INVALID_TXN_STATE; the worker used to stop there."""
        deadline = time.monotonic() + self.ACK_TIMEOUT_S
        while True:
            try:
                self.producer.abort_transaction(max(1.0, deadline - time.monotonic()))
                return
            except KafkaException as exc:
                err = exc.args[0]
                if err.code() in _FENCED or err.fatal():
                    raise _Fenced(f"the abort failed: {err.name()}: {err.str()}") from None
                if err.retriable() and time.monotonic() < deadline:
                    continue
                raise FatalProducerError(f"the transaction could not be aborted: {err}") from None

    def _on_failed_delivery(self, err: KafkaError | None, msg: Any) -> None:
        # Inside a transaction a failed record fails the transaction (it cannot commit): collected
        # here, sorted out after the abort. Purged records are those of an aborted transaction.
        if err is not None and err.code() not in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            self.delivery_errors.append((err, msg.topic(), msg.key(), msg.value()))


_FENCED = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)


class _Fenced(Exception):
    """A newer producer epoch exists for our transactional id: this producer can do nothing more."""


class _Abortable(Exception):
    """The transaction cannot commit and must be aborted (librdkafka: txn_requires_abort)."""


def choose_hot_path(settings: Settings, store: PartitionStore, markers: bool) -> tuple[HotPath, str]:
    """The hot path for `[processing] guarantee`, resolving "auto" by probing the broker."""
    from .kafka import transactions_isolated

    if settings.guarantee == "at_least_once":
        return HotPath(settings, store, markers), "at_least_once ([processing] guarantee)"
    hot = TransactionalHotPath(settings, store)
    if transactions_isolated(settings, hot.producer):
        how = (
            "[processing] guarantee"
            if settings.guarantee == "exactly_once"
            else "auto: the broker isolates transactions"
        )
        return hot, f"exactly_once ({how}; transactional id {transactional_id(settings)})"
    if settings.guarantee == "exactly_once":
        raise SettingsError(
            f"[processing] guarantee = exactly_once, but the broker at {settings.broker} does not isolate "
            "transactions (read_committed readers see aborted records: the embedded broker, Tansu); "
            "use at_least_once or auto there"
        )
    return HotPath(settings, store, markers), (
        "at_least_once (auto: the broker does not isolate transactions, e.g. the embedded broker)"
    )
