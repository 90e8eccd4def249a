"""Thin confluent-kafka helpers shared by the worker, the CLI clients, the demo and the tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .settings import Settings, SettingsError


class BrokerUnreachable(RuntimeError):
    """No broker answered at the configured address: said in one line, with what to do."""


def check_reachable(settings: Settings, timeout: float = 5.0) -> None:
    """Fail in seconds, not after librdkafka's 30 s retries, when nothing answers at `settings.broker`."""
    admin = AdminClient(settings.client_config(log_level=2))  # our own message, not its log
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException:
        raise BrokerUnreachable(
            f"no Kafka broker answers at {settings.broker} (waited {timeout:.0f} s); start one "
            f"(`trackguard broker`, `trackguard kafka`) or set --broker / TRACKGUARD_BROKER"
        ) from None


def all_topics(settings: Settings) -> list[str]:
    t = settings.topics
    return [
        t.submitted,
        settings.repartition_topic,
        *t.verdicts,
        t.commands,
        t.command_results,
        t.alerts,
        settings.stores_topic,
    ]


def ensure_topics(settings: Settings, timeout: float = 15.0) -> None:
    """Create the app's topics with `settings.partitions` partitions; refuse a mismatch.

    The source, repartition and changelog topics must have the same partition count: a number's
    state lives on the partition its key hashes to in all of them.
    """
    admin = AdminClient(settings.client_config())
    deadline = time.monotonic() + timeout
    while True:
        try:
            existing = admin.list_topics(timeout=5).topics
            break
        except KafkaException:
            if time.monotonic() > deadline:
                raise BrokerUnreachable(
                    f"no Kafka broker answers at {settings.broker} (waited {timeout:.0f} s)"
                ) from None
            time.sleep(0.2)
    wanted = all_topics(settings) + settings.changelog_topics
    missing = [name for name in wanted if name not in existing]
    # The worker places every record itself (murmur2), so every topic needs the configured count.
    for name in wanted:
        if name in existing and len(existing[name].partitions) != settings.partitions:
            raise SettingsError(
                f"topic {name} has {len(existing[name].partitions)} partitions, the app is configured "
                f"for {settings.partitions}: set [kafka].partitions (TRACKGUARD_PARTITIONS) to match"
            )
    if missing:
        # The changelogs too, as Faust would make them (compacted): made by Faust at start, a
        # changelog a 3-node Kafka had not yet put in the worker's metadata when the group
        # assigned partitions was taken for a 0-partition topic, and its table never worked.
        compact = {"cleanup.policy": "compact"}
        futures = admin.create_topics(
            [
                NewTopic(
                    name,
                    settings.partitions,
                    settings.replication,
                    config=compact if name in settings.changelog_topics else {},
                )
                for name in missing
            ],
            operation_timeout=10,
        )
        not_ours: list[str] = []
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() == 29:  # TOPIC_AUTHORIZATION_FAILED: the worker creates it (ACLs)
                    not_ours.append(name)
                elif exc.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: another worker won the race
                    raise
        # A principal that may not describe a topic sees it missing and may not create it either
        # (a submitter on a secure cluster sees only shipments.submitted): the worker's job, not its.
        missing = [name for name in missing if name not in not_ours]
        # Created on the controller; wait until the metadata we are answered with holds them.
        deadline = time.monotonic() + timeout
        while not all(
            len(getattr(found.get(name), "partitions", {})) == settings.partitions
            for found in [admin.list_topics(timeout=5).topics]
            for name in missing
        ):
            if time.monotonic() > deadline:
                raise BrokerUnreachable(f"topics {missing} were created but do not show in the broker's metadata")
            time.sleep(0.1)


def _probe_topic(settings: Settings, timeout: float) -> str:
    """A one-partition topic of the app's own for the start-up probes of the broker's behaviour."""
    topic = f"{settings.app_id}-watermark-probe"
    admin = AdminClient(settings.client_config())
    if topic not in admin.list_topics(timeout=timeout).topics:
        futures = admin.create_topics([NewTopic(topic, 1, settings.replication)], operation_timeout=timeout)
        try:
            futures[topic].result()
        except KafkaException as exc:
            if exc.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: another worker probed first
                raise
    return topic


def high_watermark_lags(settings: Settings, timeout: float = 10.0) -> bool:
    """Does this broker report a partition's high watermark short of the log's end after a
    multi-record batch? Tansu 0.6 does (it reports the last batch's base offset + 1); Apache Kafka
    does not. Probed by behaviour, not by brand: three records in one batch to a one-partition
    topic of the app's own (`<app_id>-watermark-probe`), then the watermark is read back."""
    topic = _probe_topic(settings, timeout)
    from confluent_kafka import Producer

    offsets: list[int | None] = []
    producer = Producer(settings.client_config(**{"linger.ms": 200, "acks": "all", "log.connection.close": False}))
    for _ in range(3):  # within linger.ms: one record batch
        producer.produce(
            topic,
            b"probe",
            partition=0,
            on_delivery=lambda err, msg: offsets.append(msg.offset()) if err is None else None,
        )
    if producer.flush(timeout) or len(offsets) != 3:
        raise BrokerUnreachable(f"the broker at {settings.broker} did not take the watermark probe")
    probe = consumer(settings)
    try:
        _low, high = probe.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout)
    finally:
        probe.close()
    return high < max(o or 0 for o in offsets) + 1


def transactions_isolated(settings: Settings, producer: Any, timeout: float = 10.0) -> bool:
    """Does a read_committed reader skip an aborted transaction? Apache Kafka's does; Tansu 0.6
    accepts every transaction call but hands aborted records to every reader (and answers a
    read_committed ListOffsets with 0), see NOTES. Probed by behaviour with the caller's
    transactional producer (`init_transactions` done): one record in an aborted transaction, one in
    a committed one, then a read_committed reader: which of the two does it see first?"""
    topic = _probe_topic(settings, timeout)
    nonce = str(time.time_ns()).encode()
    reader = consumer(settings)
    try:
        _low, start = reader.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout)
        for outcome, value in ((producer.abort_transaction, b"aborted "), (producer.commit_transaction, b"committed ")):
            producer.begin_transaction()
            producer.produce(topic, value + nonce, partition=0)
            if producer.flush(timeout):
                raise BrokerUnreachable(f"the broker at {settings.broker} did not take the transaction probe")
            outcome(timeout)
        reader.assign([TopicPartition(topic, 0, start)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = reader.poll(0.2)
            if msg is not None and not msg.error() and (msg.value() or b"").endswith(nonce):
                return (msg.value() or b"").startswith(b"committed ")
    finally:
        reader.close()
    raise BrokerUnreachable(f"the broker at {settings.broker} did not hand back the transaction probe")


def consumer(settings: Settings, group: str | None = None, **extra: Any) -> Consumer:
    config = {
        **settings.client_config(),
        "group.id": group or f"{settings.app_id}-reader-{time.time_ns()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": group is not None,
        "session.timeout.ms": 6000,  # see NOTES: a 45 s session makes a group join take ~23 s
        "fetch.wait.max.ms": 50,
        "log.connection.close": False,
        # What a downstream reader should use: with exactly-once processing it sees committed
        # verdicts only, each once; without transactions it changes nothing.
        "isolation.level": "read_committed",
        **extra,
    }
    return Consumer(config)


def read_topics(
    settings: Settings, topics: list[str], *, until_idle_s: float = 2.0, max_s: float = 60.0, expect: int | None = None
) -> Iterator[Any]:
    """Read every record of `topics` from the start without a group (assign, not subscribe).

    Stops when `expect` records were read, or nothing arrived for `until_idle_s`, or after `max_s`.
    Records are counted by reading them: Tansu's watermarks are not to be trusted (NOTES).
    """
    c = consumer(settings)
    md = c.list_topics(timeout=10)
    c.assign([TopicPartition(t, p, 0) for t in topics for p in md.topics[t].partitions])
    seen = 0
    last = time.monotonic()
    deadline = last + max_s
    try:
        while time.monotonic() < deadline:
            msgs = c.consume(1000, 0.2)
            now = time.monotonic()
            for m in msgs:
                if m.error():
                    continue
                seen += 1
                yield m
            if msgs:
                last = now
            if expect is not None and seen >= expect:
                return
            if expect is None and now - last > until_idle_s:
                return
    finally:
        c.close()


class VerdictCollector:
    """Reads the verdict topics from the start in a background thread and indexes the verdicts.

    Used by the demo, the tests and the benchmarks to wait for "every verdict" without sleeping
    a guessed amount of time.
    """

    def __init__(self, settings: Settings, topics: list[str] | None = None, isolation: str = "read_committed") -> None:
        import threading

        self.settings = settings
        self.isolation = isolation
        self.topics = topics or list(settings.topics.verdicts)
        self.verdicts: list[dict] = []
        self.by_event: dict[str, list[dict]] = {}
        self.foreign = 0  # records that are no JSON object, skipped
        self.first_ts_ms: int | None = None
        self.last_ts_ms: int | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="verdict-collector", daemon=True)

    def start(self, create_topics: bool = True) -> VerdictCollector:
        """create_topics=False: a reader's principal on a secure cluster may not create them."""
        if create_topics:
            ensure_topics(self.settings)
        self._thread.start()
        return self

    def _run(self) -> None:
        import orjson

        c = consumer(self.settings, **{"isolation.level": self.isolation})
        md = c.list_topics(timeout=10)
        c.assign([TopicPartition(t, p, 0) for t in self.topics for p in md.topics[t].partitions])
        try:
            while not self._stop.is_set():
                msgs = c.consume(1000, 0.1)
                if not msgs:
                    continue
                with self._cond:
                    for m in msgs:
                        if m.error():
                            continue
                        try:
                            v = orjson.loads(m.value() or b"{}")
                        except orjson.JSONDecodeError:
                            v = None
                        if not isinstance(v, dict):  # none of ours: anyone may write the topic
                            self.foreign += 1
                            continue
                        v["_topic"] = m.topic()
                        ts = v["_ts"] = m.timestamp()[1]  # when the worker produced the verdict
                        self.first_ts_ms = ts if self.first_ts_ms is None else min(self.first_ts_ms, ts)
                        self.last_ts_ms = ts if self.last_ts_ms is None else max(self.last_ts_ms, ts)
                        self.verdicts.append(v)
                        named = v.get("event_id") or v.get("command_id")
                        self.by_event.setdefault(named if isinstance(named, str) else "", []).append(v)
                    self._cond.notify_all()
        finally:
            c.close()

    def wait_for(self, predicate, timeout: float = 60.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def wait_count(self, n: int, timeout: float = 60.0) -> bool:
        return self.wait_for(lambda s: len(s.verdicts) >= n, timeout)

    def verdict(self, event_id: str, timeout: float = 30.0, nth: int = 0) -> dict:
        """The nth verdict (or command result) for an event id (command id)."""
        if not self.wait_for(lambda s: len(s.by_event.get(event_id, ())) > nth, timeout):
            raise TimeoutError(f"no verdict for event {event_id!r} within {timeout} s")
        return self.by_event[event_id][nth]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
