"""The compiled decision path (mypyc) against its Python reference: the same bytes out, record for
record, for the demo's sample and for hypothesis's submissions, commands and broken input.

Both builds run in this process: `streams.*` is the compiled build, `trackguard_reference.*` the
same sources loaded as Python (streams/native.py). Where nothing is compiled those tests are
skipped with the reason, unless TRACKGUARD_REQUIRE_NATIVE=1 (.ci/run) makes that a failure; a run
that asked for the Python build (TRACKGUARD_PURE=1) skips them.
"""

from __future__ import annotations

import os
import sys

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import streams.processor
from streams import native
from streams import settings as settings_mod
from streams.partitioning import partition_for
from streams.sample import generate
from tests.test_fuzz_input import broken_events


def compiled_or_skip() -> None:
    if native.build == "compiled":
        return
    if os.environ.get("TRACKGUARD_REQUIRE_NATIVE") == "1" and os.environ.get("TRACKGUARD_PURE") != "1":
        pytest.fail(f"TRACKGUARD_REQUIRE_NATIVE=1 but the decision path is {native.build}: make native")
    pytest.skip(f"no compiled build here ({native.build}): make native")


SETTINGS = settings_mod.load()
NOW = 1_790_000_000_000
HOUR = 3_600_000


class Build:
    """One build's processor over its own state store, fed the same records as the other."""

    def __init__(self, processor_module, settings_module) -> None:
        self.module = processor_module
        self.proc = processor_module.GuardProcessor(settings_module.load())
        self.store: dict[tuple[int, bytes], bytes] = {}

    def run(self, records: list[tuple[str, int, bytes | None, bytes | None, int]]) -> list:
        batch = [
            self.module.InRecord(topic, part, i, key, value, ts)
            for i, (topic, part, key, value, ts) in enumerate(records)
        ]
        result = self.proc.process(batch, lambda p, k: self.store.get((p, k)))
        for partition, writes in result.state_writes.items():
            for key, value in writes.items():
                self.store[(partition, key)] = value
        return [
            [(r.topic, r.key, r.value, r.partition, r.timestamp_ms, r.source.offset) for r in result.produce],
            sorted((p, sorted(w.items())) for p, w in result.state_writes.items()),
            sorted(result.counts.items()),
            sorted(result.reasons.items()),
            [orjson.dumps(r) for r in result.command_results],
        ]


def builds() -> tuple[Build, Build]:
    return Build(streams.processor, settings_mod), Build(native.reference("processor"), native.reference("settings"))


def test_the_build_is_chosen_all_or_none_and_only_when_current():
    sources = {"streams.core.rules": "abc"}
    assert native.choose(False, [True, True], sources, sources) == (True, "")
    assert native.choose(True, [True, True], sources, sources) == (False, "TRACKGUARD_PURE=1")
    assert native.choose(False, [False, False], None, sources) == (False, "")
    assert native.choose(False, [True, False], sources, sources)[1].startswith("the compiled build is incomplete")
    assert native.choose(False, [True, True], {"streams.core.rules": "old"}, sources)[1].startswith(
        "the compiled build is older than its sources"
    )
    assert native.choose(False, [True, True], None, sources)[0] is False  # no record of what it was built from


def test_the_two_builds_are_what_they_claim():
    compiled_or_skip()
    assert native.is_compiled(streams.processor)
    reference = native.reference("processor")
    assert not native.is_compiled(reference)
    loaded = [m for name, m in sys.modules.items() if name.startswith(native.REFERENCE + ".")]
    assert loaded and not any(native.is_compiled(m) for m in loaded)


def _in_place(value: bytes) -> tuple[str, int, bytes | None, bytes, int]:
    """A record keyed by its number on the number's partition when it has one, as a seller sends it."""
    try:
        number = orjson.loads(value)["tracking_no"].replace(" ", "").replace("-", "").upper().encode()
    except Exception:  # noqa: BLE001 - broken input goes anywhere
        return (SETTINGS.topics.submitted, 0, b"k", value, NOW)
    return (SETTINGS.topics.submitted, partition_for(number, SETTINGS.partitions), number, value, NOW)


def test_the_demo_sample_gives_the_same_bytes_in_both_builds():
    compiled_or_skip()
    compiled, reference = builds()
    events = generate(6_000, SETTINGS.carriers, end_ms=NOW)
    records = [(*_in_place(e.value)[:4], e.ts_ms) for e in events]
    # In batches, as the hot path feeds them; forwards come back on the repartition topic.
    for start in range(0, len(records), 500):
        chunk = records[start : start + 500]
        out = compiled.run(chunk)
        assert out == reference.run(chunk)
        forwards = [
            (SETTINGS.repartition_topic, p, k, v, ts) for t, k, v, p, ts, _ in out[0] if t == SETTINGS.repartition_topic
        ]
        if forwards:
            assert compiled.run(forwards) == reference.run(forwards)
    assert compiled.store == reference.store


NUMBERS = [
    "RR123456785CN",
    "rr 1234 5678 5cn",
    "RR000000000CN",
    "1Z999AA10123456784",
    "LP00123456789",
    "ＲＲ123456785ＣＮ",
]
CARRIERS = ["CHINAPOST", "china post", "中国邮政", "UPS", "CAINIAO", "YANWEN", "Royal Mail"]
TIMES = [
    "2026-11-20T08:00:00Z",
    "2026-11-20T08:00:00.123+08:00",
    "2026-11-19t23:59:59.999999z",
    "2026-11-20 08:00:00-05:30",
    "2026-02-30T08:00:00Z",
    "2026-11-20T08:00:00",
    "not a time",
]


@st.composite
def submissions(draw) -> bytes:
    event = {
        "event_id": f"e{draw(st.integers(0, 30))}",
        "license_id": draw(st.sampled_from(["L1", "L2", "91350100M000100Y43"])),
        "store_id": draw(st.sampled_from(["S1", "S2"])),
        "order_id": draw(st.sampled_from(["O1", "O2", "O3"])),
        "carrier_code": draw(st.sampled_from(CARRIERS)),
        "tracking_no": draw(st.sampled_from(NUMBERS)),
        "shipped_at": draw(st.sampled_from(TIMES)),
    }
    if draw(st.booleans()):
        event["source"] = draw(st.sampled_from(["api", "erp", "manual", "fax"]))
    return orjson.dumps(event)


@st.composite
def commands(draw) -> bytes:
    kind = draw(st.sampled_from(["reserve", "release", "appeal", "nonsense"]))
    command = {
        "command": kind,
        "command_id": f"c{draw(st.integers(0, 10))}",
        "license_id": draw(st.sampled_from(["L1", "L2"])),
        "tracking_no": draw(st.sampled_from(NUMBERS)),
        "store_id": "S1",
        "order_id": draw(st.sampled_from(["O1", "O2"])),
        "carrier_code": draw(st.sampled_from(CARRIERS)),
        "ttl_s": draw(st.sampled_from([3600, 0, "3600", 10**9])),
        "evidence_sha256": draw(st.sampled_from(["ab" * 32, "AB" * 32, "xyz"])),
        "evidence_ref": "ticket-1",
        "decided_by": "ops",
        "decision": draw(st.sampled_from(["approved", "rejected", "maybe"])),
    }
    return orjson.dumps(command)


@st.composite
def histories(draw) -> list[tuple[str, int, bytes | None, bytes | None, int]]:
    records = []
    now = NOW
    for _ in range(draw(st.integers(1, 30))):
        now += draw(st.integers(0, 40 * HOUR))
        kind = draw(st.sampled_from(["submission", "submission", "submission", "command", "broken"]))
        if kind == "command":
            value = draw(commands())
            number = orjson.loads(value)["tracking_no"].replace(" ", "").upper().encode()
            records.append((SETTINGS.topics.commands, partition_for(number, SETTINGS.partitions), number, value, now))
        else:
            value = draw(submissions()) if kind == "submission" else draw(broken_events())
            topic, part, key, value, _ = _in_place(value)
            if draw(st.booleans()):
                topic = SETTINGS.repartition_topic  # as a forward comes back
            records.append((topic, part, key, value, now))
    return records


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.integers(1, 8))
def test_any_history_gives_the_same_bytes_in_both_builds(records, batch):
    compiled_or_skip()
    compiled, reference = builds()
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        assert compiled.run(chunk) == reference.run(chunk)
    assert compiled.store == reference.store
