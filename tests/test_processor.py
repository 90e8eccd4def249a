"""The batch processor: routing (decide in place or re-key), state per batch, one write per key."""

from __future__ import annotations

import orjson

from streams import native
from streams import settings as settings_mod
from streams.core.rules import scoped_id
from streams.partitioning import murmur2, partition_for
from streams.processor import GuardProcessor, InRecord, OutRecord

SETTINGS = settings_mod.load()
T = SETTINGS.topics
NOW = 1_790_000_000_000


def event(eid: str, number: str = "RR123456785CN", order: str = "O1", license: str = "L1") -> bytes:
    return orjson.dumps(
        {
            "event_id": eid,
            "license_id": license,
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


def patchable_processor():
    """The processor module whose functions a test may replace: its Python reference where the
    build is compiled (compiled modules call each other natively, past module attributes; that
    both builds decide alike is tests/test_native.py's job)."""
    import streams.processor as processor

    return native.reference("processor") if native.is_compiled(processor) else processor


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
    # Two decisions, one record: the last state; and the binding's entry in L1's used-list index.
    assert set(result.state_writes[p]) == {b"RR123456785CN", b"\x00used\x00L1\x00RR123456785CN"}
    assert orjson.loads(result.state_writes[p][b"RR123456785CN"])["blacklist"] == ["L1"]
    assert result.state_writes[p][b"\x00used\x00L1\x00RR123456785CN"] == b"1"


def test_only_a_new_binding_is_indexed():
    store = Store()
    proc = GuardProcessor(SETTINGS)
    p = partition_for(b"RR123456785CN", SETTINGS.partitions)
    first = proc.process([rec(event("e1"), b"RR123456785CN")], store.read)
    store[(p, b"RR123456785CN")] = first.state_writes[p][b"RR123456785CN"]
    # A re-push (rule 3) changes the state, not the binding: no index moves.
    later = proc.process([rec(event("e2"), b"RR123456785CN", offset=1)], store.read)
    assert list(later.state_writes[p]) == [b"RR123456785CN"]


def test_a_second_licence_puts_the_number_in_the_reuse_index_once():
    store = Store()
    proc = GuardProcessor(SETTINGS)
    p = partition_for(b"RR123456785CN", SETTINGS.partitions)
    reuse_key = b"\x00reuse\x00RR123456785CN"
    first = proc.process([rec(event("e1"), b"RR123456785CN")], store.read)
    assert reuse_key not in first.state_writes[p]
    store[(p, b"RR123456785CN")] = first.state_writes[p][b"RR123456785CN"]
    # The re-push by L1 changes nothing there; L2's duplicate makes it reused, the binding stays.
    second = proc.process(
        [rec(event("e2"), b"RR123456785CN", offset=1), rec(event("e3", license="L2"), b"RR123456785CN", offset=2)],
        store.read,
    )
    assert set(second.state_writes[p]) == {b"RR123456785CN", reuse_key}
    assert second.state_writes[p][reuse_key] == b"1"
    store[(p, b"RR123456785CN")] = second.state_writes[p][b"RR123456785CN"]
    # Already reused: a third licence, or L2 again, writes the state only.
    third = proc.process(
        [
            rec(event("e4", license="L3"), b"RR123456785CN", offset=3),
            rec(event("e5", license="L2"), b"RR123456785CN", offset=4),
        ],
        store.read,
    )
    assert list(third.state_writes[p]) == [b"RR123456785CN"]


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
    processor = patchable_processor()

    real = processor.decide

    def faulty(state, sub, policy):
        if sub.event_id == "boom":
            raise KeyError("a bug this record triggers")
        return real(state, sub, policy)

    monkeypatch.setattr(processor, "decide", faulty)
    p = partition_for(b"RR123456785CN", SETTINGS.partitions)
    result = processor.GuardProcessor(SETTINGS).process(
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
    written = result.state_writes[p][b"RR123456785CN"]
    assert list(orjson.loads(written)["judged"]) == [scoped_id("L1", "fine")]


def test_a_command_that_raises_still_gets_exactly_one_result(monkeypatch):
    processor = patchable_processor()

    monkeypatch.setattr(processor, "apply_command", lambda *a: 1 / 0)
    cmd = orjson.dumps(
        {"command": "release", "command_id": "c1", "license_id": "L1", "tracking_no": "RR123456785CN", "order_id": "O1"}
    )
    p = partition_for(b"RR123456785CN", SETTINGS.partitions)
    result = processor.GuardProcessor(SETTINGS).process(
        [rec(cmd, b"RR123456785CN", topic=T.commands, partition=p)], Store().read
    )
    (out,) = result.produce
    body = orjson.loads(out.value)
    assert (out.topic, body["ok"], body["error"]) == (T.command_results, False, "INTERNAL_ERROR")
    assert body["detail"].startswith("ZeroDivisionError") and result.command_results == [body]
    assert not result.state_writes


NUMBER = b"RR123456785CN"
HOME = partition_for(NUMBER, SETTINGS.partitions)  # the number's partition (murmur2, tested above)
ELSEWHERE = (HOME + 1) % SETTINGS.partitions


def command(cid: str, kind: str = "reserve", license_id: str = "L1", order: str = "O1") -> bytes:
    fields = {
        "reserve": {"store_id": "S1", "order_id": order, "carrier_code": "CHINAPOST", "ttl_s": 3600},
        "release": {"order_id": order},
    }[kind]
    body = {"command": kind, "command_id": cid, "license_id": license_id, "tracking_no": "RR123456785CN"}
    return orjson.dumps({**body, **fields})


def test_every_record_gets_its_topic_key_and_source_and_is_counted_once():
    records = [
        rec(b"not json", b"k1", offset=1),  # dead letter, keyed by its raw key
        rec(b"", None, offset=2),  # dead letter without a key
        rec(event("e1"), NUMBER, partition=ELSEWHERE, offset=3),  # right key, wrong partition: re-keyed
        rec(event("e2"), NUMBER, partition=HOME, offset=4),  # decided here
        rec(event("e3", order="O2"), NUMBER, partition=HOME, offset=5),  # duplicate
        rec(event("e4", order="O3"), NUMBER, partition=HOME, offset=6),  # frozen now
        rec(event("e5", number="ZZ1"), b"x", offset=7),  # an unknown carrier is only forwarded here
    ]
    unknown = orjson.loads(event("u1", number="ANY123"))
    unknown_raw = orjson.dumps({**unknown, "carrier_code": "acme"})
    records.append(rec(unknown_raw, b"ANY123", partition=partition_for(b"ANY123", SETTINGS.partitions), offset=8))
    records.append(rec(unknown_raw, b"ANY123", partition=ELSEWHERE, offset=9))  # forwarded too
    unknown2 = orjson.dumps({**unknown, "event_id": "u2", "tracking_no": "ANY124", "carrier_code": "acme"})
    records.append(rec(unknown2, b"ANY124", partition=partition_for(b"ANY124", SETTINGS.partitions), offset=10))
    result = GuardProcessor(SETTINGS).process(records, Store().read)
    outs = [(o.topic, o.key, o.partition, o.timestamp_ms, o.source) for o in result.produce]
    assert outs == [
        (T.invalid, b"k1", None, None, records[0]),
        (T.invalid, None, None, None, records[1]),
        (SETTINGS.repartition_topic, NUMBER, HOME, NOW, records[2]),
        (T.accepted, NUMBER, None, None, records[3]),
        (T.duplicate, NUMBER, None, None, records[4]),
        (T.frozen, NUMBER, None, None, records[5]),
        (T.invalid, b"x", None, None, records[6]),
        (T.accepted, b"ANY123", None, None, records[7]),
        (SETTINGS.repartition_topic, b"ANY123", partition_for(b"ANY123", SETTINGS.partitions), NOW, records[8]),
        (T.accepted, b"ANY124", None, None, records[9]),
    ]
    assert result.produce[2].value == records[2].value  # forwarded as published
    assert result.counts == {
        "invalid": 3,
        "forwarded": 2,
        "accepted": 3,
        "duplicate": 1,
        "frozen": 1,
        "unknown_carrier": 2,
    }
    dead = orjson.loads(result.produce[0].value)
    assert dead["source"] == {"topic": T.submitted, "partition": HOME, "offset": 1}
    assert dead["raw"] == "bm90IGpzb24="  # base64 of b"not json"


def test_decision_failures_are_each_counted_and_keep_their_record(monkeypatch):
    processor = patchable_processor()

    monkeypatch.setattr(processor, "decide", lambda *a: 1 / 0)
    monkeypatch.setattr(processor, "apply_command", lambda *a: 1 / 0)
    records = [
        rec(event("e1"), NUMBER, partition=HOME, offset=1),
        rec(event("e2"), NUMBER, partition=HOME, offset=2),
        rec(command("c1"), NUMBER, topic=T.commands, partition=HOME, offset=3),
    ]
    result = processor.GuardProcessor(SETTINGS).process(records, Store().read)
    assert [(o.topic, o.key, o.source) for o in result.produce] == [
        (T.invalid, NUMBER, records[0]),
        (T.invalid, NUMBER, records[1]),
        (T.command_results, NUMBER, records[2]),
    ]
    assert result.counts == {"internal_error": 3}
    dead = orjson.loads(result.produce[0].value)
    assert dead["raw_length"] == len(records[0].value) and dead["raw"]  # the raw bytes are kept
    body = orjson.loads(result.produce[2].value)
    assert body["source"] == {"topic": T.commands, "partition": HOME, "offset": 3}
    assert (body["command_id"], body["error"]) == (None, "INTERNAL_ERROR")


def test_commands_are_decided_on_their_numbers_partition_and_see_the_batchs_earlier_decisions():
    store = Store()
    records = [
        rec(b"{", b"k", topic=T.commands, partition=HOME, offset=1),  # unreadable: a result all the same
        rec(command("c1"), b"other", topic=T.commands, partition=HOME, offset=2),  # another key: re-keyed
        rec(command("c2"), NUMBER, topic=T.commands, partition=ELSEWHERE, offset=3),  # another partition
        rec(command("c3"), NUMBER, topic=T.commands, partition=HOME, offset=4),  # reserved
        rec(command("c4", license_id="L2"), NUMBER, topic=T.commands, partition=HOME, offset=5),  # refused
        rec(command("c5", kind="release"), NUMBER, topic=T.commands, partition=HOME, offset=6),  # released
        rec(None, None, topic=T.commands, partition=HOME, offset=7),  # no value: a result all the same
    ]
    result = GuardProcessor(SETTINGS).process(records, store.read)
    outs = [(o.topic, o.key, o.partition, o.timestamp_ms, o.source) for o in result.produce]
    assert outs == [
        (T.command_results, b"k", None, None, records[0]),
        (T.commands, NUMBER, HOME, NOW, records[1]),
        (T.commands, NUMBER, HOME, NOW, records[2]),
        (T.command_results, NUMBER, None, None, records[3]),
        (T.command_results, NUMBER, None, None, records[4]),
        (T.command_results, NUMBER, None, None, records[5]),
        (T.command_results, None, None, None, records[6]),
    ]
    assert [o.value for o in result.produce[1:3]] == [records[1].value, records[2].value]
    bodies = [orjson.loads(o.value) for o in result.produce]
    assert result.command_results == [bodies[0], bodies[3], bodies[4], bodies[5], bodies[6]]
    assert (bodies[0]["error"], bodies[3]["ok"], bodies[4]["error"]) == (
        "INVALID_COMMAND:json",
        True,
        "ALREADY_RESERVED",
    )
    assert (bodies[5]["ok"], bodies[6]["error"]) == (True, "INVALID_COMMAND:body")
    assert result.counts == {"command_invalid": 2, "forwarded": 2, "command_ok": 2, "command_refused": 1}
    (written,) = result.state_writes[HOME].values()
    state = orjson.loads(written)
    assert "reservation" not in state and list(state["commands"]) == [
        scoped_id(lic, c) for lic, c in (("L1", "c3"), ("L2", "c4"), ("L1", "c5"))
    ]
    # The same command again: its first result, and nothing to write.
    store[(HOME, NUMBER)] = written
    again = GuardProcessor(SETTINGS).process([rec(command("c3"), NUMBER, topic=T.commands, partition=HOME)], store.read)
    assert orjson.loads(again.produce[0].value)["replay"] is True and again.state_writes == {}


def test_a_batchs_verdicts_answer_the_synchronous_submitters_waiting_for_them():
    """POST /shipments waits on the hot path: once a batch is on the broker, each waiter of an
    event id in it gets that event's verdict (dead letters too); others keep waiting."""
    import asyncio

    from streams.hotpath import HotPath

    async def run():
        loop = asyncio.get_running_loop()
        hot = object.__new__(HotPath)
        hot.verdict_topics = frozenset(T.verdicts)
        e1, e1_again, e3, other = (loop.create_future() for _ in range(4))
        # (licence, event id): L2's waiter on the same event id is not answered with L1's verdict.
        l2 = loop.create_future()
        hot.verdict_waiters = {
            ("L1", "e1"): [e1, e1_again],
            ("L2", "e1"): [l2],
            ("L1", "e3"): [e3],
            ("L1", "elsewhere"): [other],
        }
        bad = orjson.loads(event("e2"))
        bad["shipped_at"] = "yesterday"
        result = GuardProcessor(SETTINGS).process(
            [rec(event("e1"), b"RR123456785CN"), rec(orjson.dumps(bad), b"RR123456785CN", offset=1)], Store().read
        )
        e2 = hot.verdict_waiters.setdefault(("L1", "e2"), [loop.create_future()])[0]
        result.produce.append(OutRecord(T.commands, b"RR123456785CN", event("e3")))  # e3, but not a verdict
        hot._answer_submitters(result)
        assert e1.result()["verdict"] == "accepted" and e1_again.result() == e1.result()
        assert e2.result()["verdict"] == "invalid"  # its dead letter
        assert not e3.done() and not other.done() and not l2.done()
        assert set(hot.verdict_waiters) == {("L2", "e1"), ("L1", "e3"), ("L1", "elsewhere")}

    asyncio.run(run())


def test_verdicts_are_counted_by_verdict_reason_and_carrier_for_metrics():
    store = Store()
    unknown = orjson.loads(event("e4", number="RR555555555CN"))
    unknown["carrier_code"] = "MY-FORWARDER-7"
    result = GuardProcessor(SETTINGS).process(
        [
            rec(event("e1"), b"RR123456785CN"),
            rec(event("e2", license="L2"), b"RR123456785CN", offset=1),
            rec(b"{not json", b"RR123456785CN", offset=2),
            rec(
                orjson.dumps(unknown), b"RR555555555CN", partition=partition_for(b"RR555555555CN", SETTINGS.partitions)
            ),
        ],
        store.read,
    )
    assert dict(result.reasons) == {
        ("accepted", "FIRST_USE", "CHINAPOST"): 1,
        ("duplicate", "USED_BY_OTHER_LICENSE", "CHINAPOST"): 1,
        ("invalid", "MALFORMED_JSON", ""): 1,
        ("accepted", "FIRST_USE", "other"): 1,  # a carrier outside the book: one label value for all
    }


def test_batches_extended_into_one_go_out_as_the_one_batch_deciding_them_all_would():
    # The hot path merges batches decided while a commit is in flight into the next one.
    first = [rec(event("e1"), b"RR123456785CN", offset=0), rec(event("e2", order="O2"), b"RR123456785CN", offset=1)]
    second = [
        rec(event("e3", order="O3", license="L2"), b"RR123456785CN", offset=2),
        rec(event("e4", number="RR000000000CN"), b"RR000000000CN", offset=3),
        rec(b"{not json", b"k", offset=4),
    ]
    proc = GuardProcessor(SETTINGS)
    store = Store()
    merged = proc.process(first, store.read)
    for p, items in merged.state_writes.items():
        store.update({(p, k): v for k, v in items.items()})
    later = proc.process(second, store.read)
    merged.extend(later)
    whole = GuardProcessor(SETTINGS).process(first + second, Store().read)

    def records(result):
        return [(r.topic, r.key, r.value, r.partition, r.timestamp_ms) for r in result.produce]

    assert records(merged) == records(whole)
    assert merged.state_writes == whole.state_writes
    assert merged.counts == whole.counts and merged.reasons == whole.reasons
    assert merged.command_results == whole.command_results
    assert later.state_writes  # the later batch's own result is left as it was
