"""No single record stops the guard: oversize payloads, oversize fields, a decision that raises,
a record the producer refuses. Each gets exactly one dead letter that fits on the topic, the
valid submissions around it are decided, and the worker stays up, also across a restart."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from streams.audit import audit

from .conftest import Guard, fresh_s10

pytestmark = pytest.mark.broker
PRODUCER_LIMIT = 1_000_000  # librdkafka's message.max.bytes, which the worker's producer keeps
FAULTS = Path(__file__).parent / "faults"


def event(number: str, **fields) -> dict:
    return {
        "event_id": f"poison-{number}",
        "license_id": "L1",
        "store_id": "S1",
        "order_id": "O1",
        "carrier_code": "CHINAPOST",
        "tracking_no": number,
        "shipped_at": "2026-11-20T08:00:00+08:00",
        **fields,
    }


def padded(size: int, fill: str) -> bytes:
    """A submission of exactly `size` bytes whose tracking_no carries the padding."""
    base = orjson.dumps(event("RR", tracking_no=""))
    unit = fill.encode()
    body = fill * ((size - len(base)) // len(unit))
    raw = orjson.dumps(event("RR", tracking_no=body))
    return raw + b" " * (size - len(raw))  # JSON allows trailing white space


class BigPublisher:
    """Publishes raw records up to the broker's limit (our Publisher keeps librdkafka's 1 MB)."""

    def __init__(self, guard: Guard) -> None:
        self.topic = guard.settings.topics.submitted
        self.producer = Producer(
            {
                "bootstrap.servers": guard.settings.broker,
                "message.max.bytes": 1_040_000,
                "enable.idempotence": True,
                "linger.ms": 5,
            }
        )
        self.offsets: dict[bytes, tuple[int, int]] = {}

    def send(self, raw: bytes, key: bytes) -> None:
        def done(err, msg) -> None:
            assert err is None, err
            self.offsets[msg.value()] = (msg.partition(), msg.offset())

        self.producer.produce(self.topic, raw, key, on_delivery=done)

    def flush(self) -> None:
        assert self.producer.flush(60) == 0


def dead_letters_for(guard: Guard, partition: int, offset: int) -> list[dict]:
    topic = guard.settings.topics.submitted
    return [
        v
        for v in guard.collector.verdicts
        if v["verdict"] == "invalid" and v.get("source") == {"topic": topic, "partition": partition, "offset": offset}
    ]


def test_payloads_up_to_past_the_producer_limit_each_get_one_compact_dead_letter(broker, tmp_path):
    guard = Guard(broker, tmp_path)
    try:
        worker = guard.start_worker()
        big = BigPublisher(guard)
        sizes = [PRODUCER_LIMIT // 2, PRODUCER_LIMIT * 9 // 10, PRODUCER_LIMIT, PRODUCER_LIMIT + 1000]
        payloads = [padded(size, fill) for size in sizes for fill in ("7", "运")]  # ASCII and CJK
        before, after = fresh_s10(), fresh_s10()
        first = guard.submit(tracking_no=before)
        for raw in payloads:
            big.send(raw, key=b"K" * 2000)  # an oversize key too: the dead letter names its digest
        big.flush()
        last = guard.submit(tracking_no=after)

        assert guard.verdict(first)["reason"] == "FIRST_USE"
        assert guard.verdict(last, timeout=90)["reason"] == "FIRST_USE"
        limit = guard.settings.limits.max_dead_letter_bytes
        for raw in payloads:
            partition, offset = big.offsets[raw]
            assert guard.collector.wait_for(lambda c, p=partition, o=offset: dead_letters_for(guard, p, o), 30)
            (dead,) = dead_letters_for(guard, partition, offset)
            assert (dead["reason"], dead["raw_truncated"], dead["raw_length"]) == ("TOO_LARGE", True, len(raw))
            assert dead["raw_sha256"] == hashlib.sha256(raw).hexdigest()
            prefix = base64.b64decode(dead["raw"])
            assert raw.startswith(prefix) and len(prefix) == guard.settings.limits.dead_letter_prefix_bytes
            assert len(orjson.dumps({k: v for k, v in dead.items() if not k.startswith("_")})) <= limit
        assert worker.alive()
        report = audit(guard.settings, idle_s=2.0, exactly_once=True)
        assert report.ok, report.render()
    finally:
        guard.close()


def test_oversize_fields_are_named_and_not_echoed(broker, tmp_path):
    guard = Guard(broker, tmp_path)
    try:
        guard.start_worker()
        cases = {
            "order_id": ("O" * 129, "TOO_LONG:order_id"),
            "store_id": ("店" * 129, "TOO_LONG:store_id"),  # 129 characters, 387 bytes
            "tracking_no": ("运" * 5000, "TOO_LONG:tracking_no"),  # 15 KB: within the event limit
            "license_id": ("L" * 20_000, "TOO_LARGE"),  # the whole event over 16 KiB
        }
        ids = {}
        for name, (value, _reason) in cases.items():
            ids[name] = guard.submit(**{"tracking_no": fresh_s10(), name: value})
        for name, (_value, reason) in cases.items():
            dead = guard.verdict(ids[name]) if reason != "TOO_LARGE" else None
            if dead is None:  # too large to be read: found by its source record instead
                assert guard.collector.wait_for(
                    lambda c: any(
                        v.get("reason") == "TOO_LARGE" and v.get("raw_length", 0) > 20_000 for v in c.verdicts
                    ),
                    30,
                )
                dead = next(v for v in guard.collector.verdicts if v.get("reason") == "TOO_LARGE")
            assert dead["reason"] == reason
            assert dead.get(name) is None  # never echoed beyond its limit
        assert guard.verdict(guard.submit(tracking_no=fresh_s10()))["verdict"] == "accepted"
    finally:
        guard.close()


def test_a_decision_that_raises_is_that_records_verdict_and_leaves_its_number_unbound(broker, tmp_path):
    guard = Guard(broker, tmp_path)
    try:
        poisoned = fresh_s10()
        worker = guard.start_worker(env={"PYTHONPATH": str(FAULTS), "TRACKGUARD_TEST_RAISE_FOR": poisoned})
        around = [fresh_s10() for _ in range(4)]
        ids = [guard.submit(tracking_no=n) for n in around[:2]]
        bad = guard.submit(tracking_no=poisoned)
        ids += [guard.submit(tracking_no=n) for n in around[2:]]
        for event_id in ids:
            assert guard.verdict(event_id)["reason"] == "FIRST_USE"
        assert guard.collector.wait_for(lambda c: any(v.get("reason") == "INTERNAL_ERROR" for v in c.verdicts), 30)
        (dead,) = [v for v in guard.collector.verdicts if v.get("reason") == "INTERNAL_ERROR"]
        assert "injected fault deciding" in dead["error"] and dead["verdict"] == "invalid"
        assert orjson.loads(base64.b64decode(dead["raw"]))["event_id"] == bad
        assert worker.alive()

        # Restarted on the same data without the fault: the number was never bound (its state was
        # left unchanged), and the worker decides what comes after. A clean stop commits the
        # offsets; after a SIGKILL the record would be read again and, the fault gone, decided.
        worker.stop()
        guard.start_worker()
        again = guard.verdict(guard.submit(tracking_no=poisoned, order_id="O2"), timeout=60)
        assert (again["verdict"], again["reason"]) == ("accepted", "FIRST_USE")
        report = audit(guard.settings, idle_s=2.0)
        assert report.ok, report.render()
        assert report.counts["failed:INTERNAL_ERROR"] >= 1
    finally:
        guard.close()


def test_a_record_the_producer_refuses_is_dead_lettered_and_the_worker_restarts_cleanly(broker, tmp_path):
    """A valid submission of 1.1 MB (a big unknown field; this settings file allows 2 MB events)
    keyed by store: its forward to the repartition topic is over the producer's message limit."""
    guard = Guard(broker, tmp_path, limits={"max_event_bytes": 2_000_000})
    try:
        worker = guard.start_worker()
        big = BigPublisher(guard)
        raw = orjson.dumps(event(fresh_s10(), note="x" * 1_010_000))
        big.send(raw, key=b"store-S1")
        big.flush()
        after = guard.submit(tracking_no=fresh_s10())
        assert guard.verdict(after)["reason"] == "FIRST_USE"
        assert guard.collector.wait_for(
            lambda c: any(v.get("reason") == "PRODUCE_FAILED:MSG_SIZE_TOO_LARGE" for v in c.verdicts), 30
        )
        (dead,) = [v for v in guard.collector.verdicts if v.get("reason", "").startswith("PRODUCE_FAILED")]
        partition, offset = big.offsets[raw]
        assert dead["source"] == {"topic": guard.settings.topics.submitted, "partition": partition, "offset": offset}
        assert dead["raw_sha256"] == hashlib.sha256(raw).hexdigest() and dead["raw_truncated"] is True
        assert worker.alive()

        # Twice in a row is what stopped production: a SIGKILL (no commit), then a restart on the
        # same data re-reads the record and must decide what comes after it.
        worker.kill()
        worker = guard.start_worker()
        later = guard.submit(tracking_no=fresh_s10())
        assert guard.verdict(later, timeout=60)["reason"] == "FIRST_USE"
        assert worker.alive()
    finally:
        guard.close()
