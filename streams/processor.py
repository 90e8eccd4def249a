"""One batch of submissions -> verdicts, state writes and re-keyed forwards.

This is the glue between the pure core and the hot path: it knows topics and partitions, but no
Faust, no client library and no clock. The hot path (`streams.hotpath`) feeds it records, reads
state through `read_state`, and writes what it returns.

Routing: a submission whose key already is its normalized number *and* sits on that number's
partition is decided in place; any other is forwarded once to the repartition topic, keyed by the
number, with its original Kafka timestamp (the rules' "now"), and decided when it comes back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import orjson

from .core.commands import CommandRejection, apply_command, parse_command, rejection_result
from .core.events import Rejection, parse_submission
from .core.rules import State, decide, invalid_verdict
from .partitioning import partition_for
from .settings import Settings


@dataclass(slots=True)
class InRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass(slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None  # None: the producer's murmur2 partitioner decides
    timestamp_ms: int | None = None


@dataclass
class BatchResult:
    produce: list[OutRecord] = field(default_factory=list)  # verdicts and forwards
    # partition -> key -> encoded state: the last state of each key touched, once per batch,
    # written to RocksDB and to the changelog topic.
    state_writes: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    command_results: list[dict] = field(default_factory=list)  # for HTTP callers awaiting them


ReadState = Callable[[int, bytes], "bytes | None"]


class GuardProcessor:
    def __init__(self, settings: Settings) -> None:
        assert settings.carriers is not None, "settings.load() attaches the carrier book"
        self.settings = settings
        self.topics = settings.topics
        self.source = settings.topics.submitted
        self.repartition = settings.repartition_topic
        self.commands = settings.topics.commands
        self.partitions = settings.partitions

    def process(self, records: Iterable[InRecord], read_state: ReadState) -> BatchResult:
        result = BatchResult()
        produce = result.produce.append
        counts = result.counts
        # States touched in this batch, so that two events on one number see each other.
        touched: dict[tuple[int, bytes], State | None] = {}
        dirty: set[tuple[int, bytes]] = set()
        settings, carriers = self.settings, self.settings.carriers

        def load(slot: tuple[int, bytes]) -> State | None:
            if slot in touched:
                return touched[slot]
            raw_state = read_state(*slot)
            return orjson.loads(raw_state) if raw_state is not None else None

        for rec in records:
            if rec.topic == self.commands:
                self._command(rec, load, touched, dirty, result)
                continue
            parsed = parse_submission(rec.value, rec.timestamp_ms, carriers, settings.limits)
            if isinstance(parsed, Rejection):
                verdict = invalid_verdict(parsed, rec.value, rec.timestamp_ms)
                produce(OutRecord(self.topics.invalid, rec.key, orjson.dumps(verdict)))
                counts["invalid"] += 1
                continue
            key = parsed.tracking_no.encode()
            partition = partition_for(key, self.partitions)
            if rec.topic != self.repartition and (rec.key != key or rec.partition != partition):
                produce(OutRecord(self.repartition, key, rec.value, partition, rec.timestamp_ms))
                counts["forwarded"] += 1
                continue
            if not parsed.carrier_known:
                counts["unknown_carrier"] += 1

            slot = (rec.partition, key)
            state = load(slot)
            verdict, new_state = decide(state, parsed, settings.policy)
            touched[slot] = new_state
            if new_state is not state:
                dirty.add(slot)
            produce(OutRecord(self.topics.for_verdict(verdict["verdict"]), key, orjson.dumps(verdict)))
            counts[verdict["verdict"]] += 1

        # Only states that changed are written (`decide` returns the same object when nothing
        # changed, e.g. an event-id replay), each once per batch with its last value.
        writes = result.state_writes
        for partition, key in dirty:
            writes.setdefault(partition, {})[key] = orjson.dumps(touched[(partition, key)])
        return result

    def _command(self, rec: InRecord, load: Callable, touched: dict, dirty: set, result: BatchResult) -> None:
        """A reserve/release/appeal, decided by the owner of its number's partition."""
        cmd = parse_command(rec.value, rec.timestamp_ms, self.settings.carriers, self.settings.limits)
        if isinstance(cmd, CommandRejection):
            out = rejection_result(cmd, rec.timestamp_ms)
            result.produce.append(OutRecord(self.topics.command_results, rec.key, orjson.dumps(out)))
            result.command_results.append(out)
            result.counts["command_invalid"] += 1
            return
        key = cmd.tracking_no.encode()
        partition = partition_for(key, self.partitions)
        if rec.key != key or rec.partition != partition:
            # Published with another key: put it where its number lives, with its original time.
            result.produce.append(OutRecord(self.commands, key, rec.value, partition, rec.timestamp_ms))
            result.counts["forwarded"] += 1
            return
        slot = (rec.partition, key)
        state = load(slot)
        out, new_state = apply_command(state, cmd, self.settings.policy)
        touched[slot] = new_state
        if new_state is not state:
            dirty.add(slot)
        result.produce.append(OutRecord(self.topics.command_results, key, orjson.dumps(out)))
        result.command_results.append(out)
        result.counts[f"command_{'ok' if out['ok'] else 'refused'}"] += 1
