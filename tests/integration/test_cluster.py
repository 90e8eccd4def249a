"""A real Apache Kafka KRaft cluster (streams/cluster.py): replication survives a SIGKILLed node,
storage survives a whole-cluster restart, and stopping leaves no JVM behind.

Needs `java` and `mvn`; the first run fetches the broker jars from Maven Central (~40 s).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.cluster import KafkaCluster

from .conftest import require_kafka

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module", autouse=True)
def _kafka_tools() -> None:
    require_kafka()  # java_available(): skip loudly, or fail under TRACKGUARD_REQUIRE_KAFKA=1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = KafkaCluster(3, workdir=tmp_path_factory.mktemp("kafka3")).start()
    yield c
    c.stop()


def create_topic(address: str, name: str, partitions: int, replicas: int) -> None:
    admin = AdminClient({"bootstrap.servers": address})  # referenced until the future resolves
    admin.create_topics([NewTopic(name, partitions, replicas)])[name].result(timeout=30)


def produce(address: str, topic: str, values: list[str], on_half: Callable[[], None] | None = None) -> None:
    """Send `values` with acks=all + idempotence; call `on_half()` midway, records still in flight."""
    errors: list[object] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer({"bootstrap.servers": address, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    for n, value in enumerate(values):
        if n == len(values) // 2 and on_half:
            on_half()
        producer.produce(topic, value.encode(), key=str(n).encode(), on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(120) == 0, "records still undelivered after 120 s"
    assert not errors, errors[:5]


def read_all(address: str, topic: str, expect: int, timeout: float = 60.0) -> list[str]:
    """Every record of `topic` from the beginning, read until `expect` came and 2 s passed quietly
    (so duplicates past the count would show too)."""
    consumer = Consumer(
        {"bootstrap.servers": address, "group.id": f"read-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    values: list[str] = []
    deadline, last_new = time.monotonic() + timeout, time.monotonic()
    try:
        while time.monotonic() < deadline and (len(values) < expect or time.monotonic() - last_new < 2):
            for msg in consumer.consume(500, timeout=0.5):
                assert msg.error() is None, msg.error()
                values.append(msg.value().decode())
                last_new = time.monotonic()
    finally:
        consumer.close()
    return values


def wait_in_sync(address: str, topic: str, replicas: int, timeout: float = 60.0) -> None:
    admin = AdminClient({"bootstrap.servers": address})
    deadline = time.monotonic() + timeout
    while True:
        parts = admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
        if all(len(p.isrs) == replicas for p in parts):
            return
        assert time.monotonic() < deadline, {p.id: p.isrs for p in parts}
        time.sleep(0.5)


def test_acks_all_survives_a_killed_node(cluster: KafkaCluster) -> None:
    topic = "crash-test"
    create_topic(cluster.address, topic, 8, 3)
    wait_in_sync(cluster.address, topic, 3)
    metadata = AdminClient({"bootstrap.servers": cluster.address}).list_topics(topic, timeout=10)
    victim = metadata.topics[topic].partitions[0].leader  # a node leading partitions being written
    expected = [f"rec-{n}" for n in range(2000)]

    produce(cluster.address, topic, expected, on_half=lambda: cluster.kill_node(victim))
    assert victim not in cluster.pids
    cluster.start_node(victim)
    wait_in_sync(cluster.address, topic, 3)  # the restarted node caught up from its own log dir

    values = read_all(cluster.address, topic, len(expected))
    assert len(values) == len(set(values)), f"{len(values) - len(set(values))} duplicates"
    assert sorted(values) == sorted(expected)


def test_whole_cluster_restart_keeps_records(cluster: KafkaCluster) -> None:
    topic = "durable"
    create_topic(cluster.address, topic, 8, 3)
    expected = [f"kept-{n}" for n in range(500)]
    produce(cluster.address, topic, expected)
    before = set(cluster.pids.values())

    cluster.restart()

    assert before.isdisjoint(cluster.pids.values()), "restart() must start new JVMs"
    values = read_all(cluster.address, topic, len(expected))
    assert sorted(values) == sorted(expected)


def test_single_node_starts_serves_a_group_and_stops_every_jvm(tmp_path) -> None:
    with KafkaCluster(1, workdir=tmp_path) as single:
        pids = list(single.pids.values())
        assert len(pids) == 1
        create_topic(single.address, "one", 1, 1)
        produce(single.address, "one", ["hello"])
        # a group consumer needs __consumer_offsets, replication factor 1 on one node
        consumer = Consumer(
            {
                "bootstrap.servers": single.address,
                "group.id": "g1",
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
            }
        )
        consumer.subscribe(["one"])
        msg = None
        deadline = time.monotonic() + 30
        while msg is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
        assert msg is not None and msg.error() is None and msg.value() == b"hello"
        consumer.commit(msg, asynchronous=False)
        consumer.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert single.pids == {}
