"""Bad input never raises and is never dropped: property-based fuzzing of submission bytes."""

from __future__ import annotations

import base64

import orjson
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from streams import settings as settings_mod
from streams.core.events import REQUIRED
from streams.partitioning import partition_for
from streams.processor import GuardProcessor, InRecord

SETTINGS = settings_mod.load()
GOOD = {
    "event_id": "e1",
    "license_id": "L1",
    "store_id": "S1",
    "order_id": "O1",
    "carrier_code": "CHINAPOST",
    "tracking_no": "RR123456785CN",
    "shipped_at": "2026-11-20T08:00:00+08:00",
}

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.text(max_size=50)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
nasty_text = st.one_of(
    st.text(
        alphabet=st.characters(categories=["Cc", "Cf", "Zs", "So"]), min_size=1, max_size=30
    ),  # control, format, spaces
    st.just(" - _ \t "),
    st.just("ＲＲ－＿　"),
    st.text(min_size=200, max_size=400),
    st.just("x" * 20_000),
)


KINDS = ("bytes", "wrong_type", "nasty_text", "missing", "deep", "nan", "not_object")
# Invalid by construction, whatever hypothesis draws: the broker tests expect a dead letter for
# each without asking the parser. ("nasty_text" may stay valid: full-width text is printable.)
INVALID_KINDS = tuple(k for k in KINDS if k != "nasty_text")


@st.composite
def broken_events(draw, kinds: tuple[str, ...] = KINDS) -> bytes:
    kind = draw(st.sampled_from(kinds))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "not_object":
        return orjson.dumps(draw(json_values.filter(lambda v: not isinstance(v, dict))))
    if kind == "deep":
        depth = draw(st.integers(600, 3000))
        return b'{"event_id": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "nan":
        return orjson.dumps(GOOD)[:-1] + b', "x": NaN}'
    field = draw(st.sampled_from(REQUIRED))
    event = dict(GOOD, extra_field=draw(json_values))
    if kind == "missing":
        del event[field]
    elif kind == "wrong_type":
        event[field] = draw(json_values.filter(lambda v: not isinstance(v, str)))
    else:
        event[field] = draw(nasty_text)
    return orjson.dumps(event)


def record(value: bytes, offset: int = 0) -> InRecord:
    return InRecord(
        SETTINGS.repartition_topic,
        partition_for(b"RR123456785CN", SETTINGS.partitions),
        offset,
        b"k",
        value,
        1_790_000_000_000,
    )


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(broken_events(), min_size=1, max_size=8))
def test_every_record_gets_exactly_one_answer_and_bad_ones_a_reason_naming_the_problem(values):
    valid = orjson.dumps(GOOD)
    records = [record(v, i) for i, v in enumerate([valid, *values, valid])]
    result = GuardProcessor(SETTINGS).process(records, lambda p, k: None)
    assert len(result.produce) == len(records)  # nothing dropped, nothing doubled
    outs = [orjson.loads(r.value) for r in result.produce]
    assert (outs[0]["verdict"], outs[0]["reason"]) == ("accepted", "FIRST_USE")
    assert outs[-1]["reason"] == "FIRST_USE" and outs[-1]["replay"] is True  # same event id again
    for raw, out in zip(values, outs[1:-1]):
        if out["verdict"] == "invalid":
            assert out["code"] == "INVALID_EVENT" and out["reason"] and out["error"]
            assert base64.b64decode(out["raw"]) == raw
            named = out["reason"].split(":", 1)
            assert len(named) == 1 or named[1] in (*REQUIRED, "source")
        else:
            # Some mutations stay valid (an extra field, text that normalizes to the same value).
            assert out["verdict"] in ("accepted", "duplicate", "frozen")


@given(st.sampled_from(REQUIRED))
def test_missing_field_is_named(field):
    event = {k: v for k, v in GOOD.items() if k != field}
    out = orjson.loads(
        GuardProcessor(SETTINGS).process([record(orjson.dumps(event))], lambda p, k: None).produce[0].value
    )
    assert out["reason"] == f"MISSING_FIELD:{field}"


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(0, 1_048_576), min_size=1, max_size=4),
    fill=st.sampled_from([b"7", "运".encode(), b"\x00", b'"', b"{"]),
)
def test_records_up_to_the_broker_limit_each_get_one_answer_that_fits(sizes, fill):
    """Payloads of any size up to Kafka's default message limit: one answer each, never larger
    than the dead-letter limit, the valid event after them still decided."""
    limit = SETTINGS.limits.max_dead_letter_bytes
    payloads = [orjson.dumps(GOOD)[:-1] + b', "pad": "' + (fill * n)[:n].replace(b'"', b"x") + b'"}' for n in sizes]
    payloads += [(fill * n)[:n] for n in sizes]  # and the same sizes as bare bytes
    records = [record(v, i) for i, v in enumerate([*payloads, orjson.dumps(GOOD)])]
    result = GuardProcessor(SETTINGS).process(records, lambda p, k: None)
    assert len(result.produce) == len(records)
    for out in result.produce:
        assert len(out.value) <= limit
    assert orjson.loads(result.produce[-1].value)["verdict"] == "accepted"
