"""The batch processor: routing (decide in place or re-key), state per batch, one write per key."""

from __future__ import annotations

import orjson

from streams import settings as settings_mod
from streams.partitioning import murmur2, partition_for
from streams.processor import GuardProcessor, InRecord

SETTINGS = settings_mod.load()
T = SETTINGS.topics
NOW = 1_790_000_000_000


def event(eid: str, number: str = "RR123456785CN", order: str = "O1") -> bytes:
    return orjson.dumps(
        {
            "event_id": eid,
            "license_id": "L1",
            "store_id": "S1",
            "order_id": order,
            "carrier_code": "CHINAPOST",
            "tracking_no": number,
            "shipped_at": "2026-11-20T08:00:00Z",
        }
    )


def rec(value: bytes, key: bytes | None, *, topic: str = T.submitted, partition: int | None = None, offset: int = 0):
    if partition is None:
        partition = partition_for(b"RR123456785CN", SETTINGS.partitions)
    return InRecord(topic, partition, offset, key, value, NOW)


class Store(dict):
    def read(self, partition, key):
        return self.get((partition, key))


def test_key_is_the_number_on_its_partition_decides_in_place_and_writes_once_per_key():
    store = Store()
    result = GuardProcessor(SETTINGS).process(
        [rec(event("e1"), b"RR123456785CN", offset=0), rec(event("e2", order="O2"), b"RR123456785CN", offset=1)],
        store.read,
    )
    assert [(r.topic, orjson.loads(r.value)["reason"]) for r in result.produce] == [
        (T.accepted, "FIRST_USE"),
        (T.duplicate, "USED_BY_LICENSE"),
    ]
    p = partition_for(b"RR123456785CN", SETTINGS.partitions)
    (written,) = result.state_writes[p].values()  # two decisions, one record: the last state
    assert orjson.loads(written)["blacklist"] == ["L1"]


def test_other_keys_are_forwarded_once_with_their_timestamp_to_the_numbers_partition():
    result = GuardProcessor(SETTINGS).process([rec(event("e1"), b"store-7", partition=0)], Store().read)
    (fwd,) = result.produce
    assert (fwd.topic, fwd.key, fwd.timestamp_ms) == (SETTINGS.repartition_topic, b"RR123456785CN", NOW)
    assert fwd.partition == partition_for(b"RR123456785CN", SETTINGS.partitions)
    assert not result.state_writes and result.counts["forwarded"] == 1
    # ...and decided when it comes back on the repartition topic, whatever its key says.
    back = GuardProcessor(SETTINGS).process(
        [rec(fwd.value, fwd.key, topic=fwd.topic, partition=fwd.partition)], Store().read
    )
    assert orjson.loads(back.produce[0].value)["verdict"] == "accepted"


def test_invalid_bytes_are_a_dead_letter_not_an_exception():
    result = GuardProcessor(SETTINGS).process([rec(b"\xff\x00garbage", b"k")], Store().read)
    (dead,) = result.produce
    assert dead.topic == T.invalid and dead.key == b"k"
    assert orjson.loads(dead.value)["reason"] == "BAD_ENCODING"


def test_replay_writes_nothing():
    store = Store()
    proc = GuardProcessor(SETTINGS)
    first = proc.process([rec(event("e1"), b"RR123456785CN")], store.read)
    for p, items in first.state_writes.items():
        for k, v in items.items():
            store[(p, k)] = v
    again = proc.process([rec(event("e1"), b"RR123456785CN", offset=1)], store.read)
    assert orjson.loads(again.produce[0].value)["replay"] is True
    assert again.state_writes == {}


def test_murmur2_matches_kafkas_reference_values():
    # Values from Kafka's own partitioner tests (Utils.murmur2) and aiokafka's implementation.
    from aiokafka.partitioner import murmur2 as aiokafka_murmur2

    for key in (b"", b"a", b"ab", b"abc", b"abcd", b"RR123456785CN", "标签".encode()):
        assert murmur2(key) & 0x7FFFFFFF == aiokafka_murmur2(key) & 0x7FFFFFFF


def test_a_decision_that_raises_is_that_records_dead_letter_and_the_batch_goes_on(monkeypatch):
    import streams.processor as processor

    real = processor.decide

    def faulty(state, sub, policy):
        if sub.event_id == "boom":
            raise KeyError("a bug this record triggers")
        return real(state, sub, policy)

    monkeypatch.setattr(processor, "decide", faulty)
    p = partition_for(b"RR123456785CN", SETTINGS.partitions)
    result = GuardProcessor(SETTINGS).process(
        [rec(event("boom"), b"RR123456785CN", offset=7), rec(event("fine"), b"RR123456785CN", offset=8)], Store().read
    )
    outs = [(r.topic, orjson.loads(r.value)) for r in result.produce]
    assert [(t, o["reason"]) for t, o in outs] == [(T.invalid, "INTERNAL_ERROR"), (T.accepted, "FIRST_USE")]
    dead = outs[0][1]
    assert dead["error"].startswith("KeyError") and dead["source"] == {
        "topic": T.submitted,
        "partition": p,
        "offset": 7,
    }
    assert result.counts["internal_error"] == 1
    # The failed record left no trace in the state: the next event on the number binds it.
    (written,) = result.state_writes[p].values()
    assert list(orjson.loads(written)["judged"]) == ["fine"]


def test_a_command_that_raises_still_gets_exactly_one_result(monkeypatch):
    import streams.processor as processor

    monkeypatch.setattr(processor, "apply_command", lambda *a: 1 / 0)
    cmd = orjson.dumps(
        {"command": "release", "command_id": "c1", "license_id": "L1", "tracking_no": "RR123456785CN", "order_id": "O1"}
    )
    p = partition_for(b"RR123456785CN", SETTINGS.partitions)
    result = GuardProcessor(SETTINGS).process([rec(cmd, b"RR123456785CN", topic=T.commands, partition=p)], Store().read)
    (out,) = result.produce
    body = orjson.loads(out.value)
    assert (out.topic, body["ok"], body["error"]) == (T.command_results, False, "INTERNAL_ERROR")
    assert body["detail"].startswith("ZeroDivisionError") and result.command_results == [body]
    assert not result.state_writes
