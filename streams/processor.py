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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson

from .core import state as state_codec
from .core.commands import CommandRejection, apply_command, parse_command, rejection_result
from .core.deadletters import Source, dead_letter_key, describe, internal_error, invalid_verdict
from .core.events import Rejection, parse_submission
from .core.reuse import newly_reused
from .core.rules import State, decide
from .core.state import StateVersionError
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
    source: InRecord | None = None  # the record it answers: named if the broker refuses this one


@dataclass
class BatchResult:
    produce: list[OutRecord] = field(default_factory=list)  # verdicts and forwards
    # partition -> key -> encoded state: the last state of each key touched, once per batch,
    # written to RocksDB and to the changelog topic.
    state_writes: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    # (verdict, reason, carrier) -> verdicts, for /metrics; carriers outside the book are "other"
    # (a typed code could otherwise make a label value per typo).
    reasons: Counter = field(default_factory=Counter)
    command_results: list[dict] = field(default_factory=list)  # for HTTP callers awaiting them

    def extend(self, later: BatchResult) -> None:
        """Add a batch decided after this one, to go out together: its records after these, and
        for a key both touched, its state (the later one is the key's state now)."""
        self.produce.extend(later.produce)
        for partition, items in later.state_writes.items():
            mine = self.state_writes.get(partition)
            if mine is None:
                self.state_writes[partition] = dict(items)
            else:
                mine.update(items)
        self.counts.update(later.counts)
        self.reasons.update(later.reasons)
        self.command_results.extend(later.command_results)


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
        self.verdict_topic = settings.topics.by_verdict  # a dict lookup per event, not a Settings method call

    def process(self, records: Iterable[InRecord], read_state: ReadState) -> BatchResult:
        result = BatchResult()
        # States touched in this batch, so that two events on one number see each other.
        touched: dict[tuple[int, bytes], State | None] = {}
        dirty: set[tuple[int, bytes]] = set()

        def load(slot: tuple[int, bytes]) -> State | None:
            if slot in touched:
                return touched[slot]
            raw_state = read_state(*slot)
            return state_codec.decode(raw_state) if raw_state is not None else None

        for rec in records:
            try:
                if rec.topic == self.commands:
                    self._command(rec, load, touched, dirty, result)
                else:
                    self._submission(rec, load, touched, dirty, result)
            except StateVersionError:
                raise  # the whole worker's problem (a newer release wrote the state), not this record's
            except Exception as exc:  # noqa: BLE001 - a bug this record's content triggers
                # That record's verdict, not the worker's death: its number's state is unchanged
                # (the core is pure, `touched` is only set after it returns) and the batch goes on.
                self._internal_error(rec, exc, result)

        # Only states that changed are written (`decide` returns the same object when nothing
        # changed, e.g. an event-id replay), each once per batch with its last value.
        writes = result.state_writes
        for partition, key in dirty:
            state = touched[(partition, key)]
            assert state is not None  # dirty slots hold the state a decision returned
            writes.setdefault(partition, {})[key] = state_codec.encode(state)
        return result

    def _submission(self, rec: InRecord, load: Callable, touched: dict, dirty: set, result: BatchResult) -> None:
        produce, counts, settings = result.produce.append, result.counts, self.settings
        parsed = parse_submission(rec.value, rec.timestamp_ms, settings.carriers, settings.limits)
        if isinstance(parsed, Rejection):
            verdict = invalid_verdict(parsed, rec.value, rec.timestamp_ms, _source(rec), settings.limits)
            produce(OutRecord(self.topics.invalid, dead_letter_key(rec.key), orjson.dumps(verdict), source=rec))
            counts["invalid"] += 1
            result.reasons[("invalid", verdict["reason"], "")] += 1
            return
        key = parsed.tracking_no.encode()
        partition = partition_for(key, self.partitions)
        if rec.topic != self.repartition and (rec.key != key or rec.partition != partition):
            produce(OutRecord(self.repartition, key, rec.value or b"", partition, rec.timestamp_ms, source=rec))
            counts["forwarded"] += 1
            return
        if not parsed.carrier_known:
            counts["unknown_carrier"] += 1
        slot = (rec.partition, key)
        state = load(slot)
        verdict, new_state = decide(state, parsed, settings.policy)
        encoded = orjson.dumps(verdict)  # before the state moves: a failure here leaves it unchanged
        touched[slot] = new_state
        if new_state is not state:
            dirty.add(slot)
            bound, was_bound = new_state.get("binding"), state.get("binding") if state else None
            if bound is not None and (was_bound is None or was_bound["license"] != bound["license"]):
                # Newly bound: the licence's used-list index gets the number (changelogged with it).
                index_key = state_codec.used_index_key(bound["license"], key)
                result.state_writes.setdefault(rec.partition, {})[index_key] = state_codec.INDEX_VALUE
            if state is not None and newly_reused(state, parsed.license_id):
                # A second licence claims it: the admin's reuse report gets the number.
                result.state_writes.setdefault(rec.partition, {})[state_codec.reuse_index_key(key)] = (
                    state_codec.INDEX_VALUE
                )
        produce(OutRecord(self.verdict_topic[verdict["verdict"]], key, encoded, source=rec))
        counts[verdict["verdict"]] += 1
        result.reasons[
            (verdict["verdict"], verdict["reason"], parsed.carrier_code if parsed.carrier_known else "other")
        ] += 1

    def _internal_error(self, rec: InRecord, exc: Exception, result: BatchResult) -> None:
        result.counts["internal_error"] += 1
        if rec.topic == self.commands:  # every command still gets exactly one result
            out = {
                **rejection_result(CommandRejection("INTERNAL_ERROR", None, None, None), rec.timestamp_ms),
                "detail": describe(exc),
                "source": _source(rec)._asdict(),
            }
            result.produce.append(
                OutRecord(self.topics.command_results, dead_letter_key(rec.key), orjson.dumps(out), source=rec)
            )
            result.command_results.append(out)
            return
        result.reasons[("invalid", "INTERNAL_ERROR", "")] += 1
        verdict = internal_error(exc, rec.value, rec.timestamp_ms, _source(rec), self.settings.limits)
        result.produce.append(
            OutRecord(self.topics.invalid, dead_letter_key(rec.key), orjson.dumps(verdict), source=rec)
        )

    def _command(self, rec: InRecord, load: Callable, touched: dict, dirty: set, result: BatchResult) -> None:
        """A reserve/release/appeal, decided by the owner of its number's partition."""
        cmd = parse_command(rec.value, rec.timestamp_ms, self.settings.carriers, self.settings.limits)
        if isinstance(cmd, CommandRejection):
            out = rejection_result(cmd, rec.timestamp_ms)
            result.produce.append(
                OutRecord(self.topics.command_results, dead_letter_key(rec.key), orjson.dumps(out), source=rec)
            )
            result.command_results.append(out)
            result.counts["command_invalid"] += 1
            return
        key = cmd.tracking_no.encode()
        partition = partition_for(key, self.partitions)
        if rec.key != key or rec.partition != partition:
            # Published with another key: put it where its number lives, with its original time.
            result.produce.append(
                OutRecord(self.commands, key, rec.value or b"", partition, rec.timestamp_ms, source=rec)
            )
            result.counts["forwarded"] += 1
            return
        slot = (rec.partition, key)
        state = load(slot)
        out, new_state = apply_command(state, cmd, self.settings.policy)
        encoded = orjson.dumps(out)
        touched[slot] = new_state
        if new_state is not state:
            dirty.add(slot)
        result.produce.append(OutRecord(self.topics.command_results, key, encoded, source=rec))
        result.command_results.append(out)
        result.counts[f"command_{'ok' if out['ok'] else 'refused'}"] += 1


def _source(rec: InRecord) -> Source:
    return Source(rec.topic, rec.partition, rec.offset)
