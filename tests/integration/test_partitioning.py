"""Our publishers and the worker agree where a number lives, so in-place decisions need no hop."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from streams import settings as settings_mod
from streams.hotpath import producer_config
from streams.kafka import ensure_topics
from streams.partitioning import partition_for

pytestmark = pytest.mark.broker


def test_confluent_murmur2_partitioner_matches_partition_for(broker):
    settings = settings_mod.load(broker=broker.address, replication=broker.replication, app_id="partitioning")
    ensure_topics(settings)
    producer = Producer(producer_config(settings))
    placed = {}
    keys = [f"RR{i:08d}5CN".encode() for i in range(300)]
    for key in keys:
        producer.produce(
            settings.topics.alerts,
            b"x",
            key,
            on_delivery=lambda err, msg: placed.__setitem__(msg.key(), msg.partition()),
        )
    assert producer.flush(30) == 0
    assert placed == {k: partition_for(k, settings.partitions) for k in keys}
