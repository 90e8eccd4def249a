"""docs/contract agrees with itself, with the settings, and with what the processor emits.

The broker tests check the records a real worker wrote against the same schemas
(tests/integration/test_rules_e2e.py, test_commands_e2e.py).
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from streams import settings as settings_mod
from streams.partitioning import partition_for
from streams.processor import GuardProcessor, InRecord
from streams.sample import generate

from .contract import CONTRACT, SCHEMAS, schema_for_topic, violations
from .test_fuzz_input import broken_events

SETTINGS = settings_mod.load()


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.schema.json")), ids=lambda p: p.name)
def test_every_schema_is_a_valid_draft_2020_12_schema(path):
    Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_the_asyncapi_channels_are_the_configured_topics_and_name_existing_schemas():
    doc = json.loads((CONTRACT / "asyncapi.json").read_text())
    assert doc["asyncapi"].startswith("3.")
    addresses = {name: spec["address"] for name, spec in doc["channels"].items()}
    assert addresses == {name: getattr(SETTINGS.topics, name) for name in addresses}
    assert set(addresses) == set(SETTINGS.topics.__dataclass_fields__)
    for topic, schema in schema_for_topic(SETTINGS).items():
        assert (SCHEMAS / f"{schema}.schema.json").exists(), (topic, schema)


def test_the_schemas_catch_what_they_are_for():
    good = {
        "event_id": "e",
        "license_id": "L",
        "store_id": "S",
        "order_id": "O",
        "carrier_code": "CHINAPOST",
        "tracking_no": "RR123456785CN",
        "shipped_at": "2026-11-20T08:00:00+08:00",
    }
    assert violations("submission", good) == []
    assert violations("submission", {**good, "shipped_at": "yesterday"})
    assert violations("submission", {k: v for k, v in good.items() if k != "order_id"})
    assert violations("command", {"command": "reserve", "command_id": "c", "license_id": "L", "tracking_no": "X"})


def process(records: list[bytes], topic: str | None = None) -> list[tuple[str, dict]]:
    p = partition_for(b"RR123456785CN", SETTINGS.partitions)
    ins = [
        InRecord(topic or SETTINGS.repartition_topic, p, i, b"RR123456785CN", v, 1_790_000_000_000 + i)
        for i, v in enumerate(records)
    ]
    result = GuardProcessor(SETTINGS).process(ins, lambda _p, _k: None)
    return [(r.topic, orjson.loads(r.value)) for r in result.produce if r.topic != SETTINGS.repartition_topic]


def test_what_the_processor_emits_for_the_demo_sample_fits_the_contract():
    sample = generate(1500, SETTINGS.carriers, seed=3, end_ms=1_790_000_000_000)
    topics = schema_for_topic(SETTINGS)
    seen = set()
    for topic, out in process([e.value for e in sample]):
        seen.add(topics[topic])
        assert violations(topics[topic], out) == [], out
    assert seen == {"verdict", "dead-letter"}


@hsettings(max_examples=200, deadline=None)
@given(st.lists(broken_events(), min_size=1, max_size=6))
def test_dead_letters_of_any_bad_input_fit_the_contract(values):
    topics = schema_for_topic(SETTINGS)
    for topic, out in process(values):
        assert violations(topics[topic], out) == [], out


def test_command_results_fit_the_contract():
    base = {"command_id": "c1", "license_id": "L1", "tracking_no": "RR123456785CN"}
    commands = [
        {**base, "command": "reserve", "store_id": "S", "order_id": "O", "carrier_code": "CHINAPOST", "ttl_s": 60},
        {**base, "command_id": "c2", "command": "release", "order_id": "O"},
        {
            **base,
            "command_id": "c3",
            "command": "appeal",
            "evidence_sha256": "ab" * 32,
            "evidence_ref": "T",
            "decided_by": "ops",
            "decision": "approved",
        },
        {
            **base,
            "command_id": "c1",
            "command": "reserve",
            "store_id": "S",
            "order_id": "O",
            "carrier_code": "CHINAPOST",
            "ttl_s": 60,
        },
        {"command": "nonsense"},
        b"not json",
    ]
    outs = process([c if isinstance(c, bytes) else orjson.dumps(c) for c in commands], SETTINGS.topics.commands)
    assert len(outs) == len(commands)
    for topic, out in outs:
        assert topic == SETTINGS.topics.command_results
        assert violations("command-result", out) == [], out
