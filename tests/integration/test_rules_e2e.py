"""Every rule of the spec, end to end: publish to the broker, a worker decides, read the verdict topic."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from streams.core.normalize import fingerprint, format_ms, parse_rfc3339_ms
from streams.partitioning import partition_for

from ..test_fuzz_input import INVALID_KINDS, broken_events
from .conftest import fresh_s10

pytestmark = pytest.mark.broker
HOUR_MS = 3_600_000


def now_ms() -> int:
    return int(time.time() * 1000)


def test_rule7_first_use_is_accepted_on_the_accepted_topic(guard):
    number = fresh_s10()
    eid = guard.submit(tracking_no=number)
    v = guard.verdict(eid)
    assert (v["verdict"], v["code"], v["reason"], v["replay"]) == ("accepted", "ACCEPTED", "FIRST_USE", False)
    assert v["_topic"] == guard.settings.topics.accepted
    shipped = parse_rfc3339_ms("2026-11-20T08:00:00+08:00")
    assert v["fingerprint"] == fingerprint("CHINAPOST", number, shipped)
    assert v["bound_to"] == {"store_id": "S1", "order_id": "O1"}


def test_rule1_invalid_events_land_on_the_dead_letter_topic_with_their_raw_bytes(guard):
    raw = b'{"event_id": "broken-' + fresh_s10().encode() + b'", "license_id": '
    guard.submit(raw=raw, key=b"store-7")
    v = guard.collector.wait_for(lambda c: any(x.get("raw") == base64.b64encode(raw).decode() for x in c.verdicts), 30)
    assert v, "malformed event never reached the dead-letter topic"
    dead = next(x for x in guard.collector.verdicts if x.get("raw") == base64.b64encode(raw).decode())
    assert (dead["verdict"], dead["code"], dead["reason"]) == ("invalid", "INVALID_EVENT", "MALFORMED_JSON")
    assert dead["_topic"] == guard.settings.topics.invalid and dead["error"]

    missing = guard.submit(tracking_no=fresh_s10(), carrier_code="")
    assert guard.verdict(missing)["reason"] == "MISSING_FIELD:carrier_code"
    good = fresh_s10()
    typo = good[:10] + str((int(good[10]) + 1) % 10) + good[11:]
    bad = guard.submit(tracking_no=typo)
    assert guard.verdict(bad)["reason"] == "BAD_CHECK_DIGIT"
    # The worker is still up and deciding after bad input.
    assert guard.verdict(guard.submit(tracking_no=fresh_s10()))["verdict"] == "accepted"


def test_rule2_same_event_id_gets_the_same_verdict_as_a_replay(guard):
    number = fresh_s10()
    guard.submit(tracking_no=number)
    event = {"event_id": f"dup-{number}", "order_id": "O2", "tracking_no": number}
    guard.submit(**event)
    guard.submit(**event)
    first, second = guard.verdict(event["event_id"]), guard.verdict(event["event_id"], nth=1)
    assert first["reason"] == "USED_BY_LICENSE" and first["replay"] is False
    assert second["replay"] is True
    for f in ("verdict", "code", "reason", "frozen_until", "decided_at"):
        assert second[f] == first[f]


def test_rule3_erp_repush_with_new_event_id_is_accepted_as_replay_even_while_frozen(guard):
    number = fresh_s10()
    guard.verdict(guard.submit(tracking_no=number))
    assert guard.verdict(guard.submit(tracking_no=number, order_id="O2"))["verdict"] == "duplicate"
    v = guard.verdict(guard.submit(tracking_no=number, shipped_at="2026-11-20T09:00:00+08:00"))
    assert (v["verdict"], v["reason"], v["replay"]) == ("accepted", "SAME_ORDER_REPUSH", True)


def test_rule4_frozen_for_the_licence(guard):
    number = fresh_s10()
    guard.verdict(guard.submit(tracking_no=number))
    dup = guard.verdict(guard.submit(tracking_no=number, order_id="O2"))
    v = guard.verdict(guard.submit(tracking_no=number, order_id="O3", store_id="S2"))
    assert (v["verdict"], v["code"], v["_topic"]) == ("frozen", "TRACKING_FROZEN", guard.settings.topics.frozen)
    assert v["frozen_until"] == dup["frozen_until"]


def test_rule5_blacklisted_once_the_freeze_is_over_and_now_is_the_kafka_timestamp(guard):
    number = fresh_s10()
    t = now_ms()
    guard.verdict(guard.submit(tracking_no=number, ts_ms=t - 100 * HOUR_MS))
    dup = guard.verdict(guard.submit(tracking_no=number, order_id="O2", ts_ms=t - 99 * HOUR_MS))
    assert dup["frozen_until"] == format_ms(t - 99 * HOUR_MS + 72 * HOUR_MS)
    v = guard.verdict(guard.submit(tracking_no=number, order_id="O3", ts_ms=t - 60_000))
    assert (v["verdict"], v["code"], v["reason"]) == ("duplicate", "TRACKING_DUPLICATE", "BLACKLISTED")


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"carrier_code": "cainiao"}, "CARRIER_MISMATCH"),
        ({"license_id": "L2", "store_id": "S9", "order_id": "O9"}, "USED_BY_OTHER_LICENSE"),
        ({"order_id": "O2"}, "USED_BY_LICENSE"),
        ({"shipped_at": "2026-11-20T07:00:00+08:00"}, "TIMESTAMP_REGRESSION"),
    ],
)
def test_rule8_bound_to_something_else(guard, change, reason):
    number = fresh_s10()
    guard.verdict(guard.submit(tracking_no=number))
    v = guard.verdict(guard.submit(tracking_no=number, **change))
    assert (v["verdict"], v["code"], v["reason"]) == ("duplicate", "TRACKING_DUPLICATE", reason)
    assert v["_topic"] == guard.settings.topics.duplicate
    if reason == "USED_BY_OTHER_LICENSE":
        assert v["bound_to"] == "other-license"  # nothing of the other licence is revealed
        assert "O1" not in orjson.dumps(v).decode() and "S1" not in orjson.dumps(v).decode()


def test_retyped_number_normalizes_to_the_same_number(guard):
    number = fresh_s10()
    guard.verdict(guard.submit(tracking_no=number))
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in number[:6]) + " " + number[6:].lower()
    v = guard.verdict(guard.submit(tracking_no=fullwidth, order_id="O2"))
    assert (v["tracking_no"], v["reason"]) == (number, "USED_BY_LICENSE")


def test_rekeying_keeps_the_submissions_kafka_timestamp(guard):
    """Keyed by store id: the worker forwards it to the repartition topic and still uses the original time."""
    number = fresh_s10()
    wrong_key = b"store-S1"
    assert partition_for(wrong_key, guard.settings.partitions) is not None
    t = now_ms() - 5 * HOUR_MS
    v = guard.verdict(guard.submit(tracking_no=number, key=wrong_key, ts_ms=t))
    assert v["verdict"] == "accepted"
    assert v["decided_at"] == format_ms(t)


@hsettings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(bad=st.lists(broken_events(INVALID_KINDS), min_size=5, max_size=15))
def test_fuzzed_bytes_through_the_broker_each_get_exactly_one_dead_letter(guard, bad):
    """Hypothesis-made events that are invalid by construction (the test's own expectation, not
    the parser's), between two valid ones: each gets exactly one dead letter, found by the offset
    it was published at; the valid ones are decided; the worker stays up."""
    first = guard.submit(tracking_no=fresh_s10())
    # One key, so one partition in and one out, in order: once the sentinel's dead letter is in,
    # every earlier one (and any double of it) is too. No sleeping.
    *offsets, sentinel = guard.publish_raw([*bad, b"sentinel: not JSON"], key=b"fuzz")
    after = guard.submit(tracking_no=fresh_s10())
    assert guard.verdict(first)["reason"] == "FIRST_USE"
    assert guard.verdict(after)["reason"] == "FIRST_USE"
    assert guard.collector.wait_for(lambda c: guard.dead_letters_at(*sentinel), 30), "the sentinel never came back"
    assert [len(guard.dead_letters_at(p, o)) for p, o in offsets] == [1] * len(offsets)
    assert guard.worker.alive()


def test_zz_the_auditor_agrees_with_everything_this_module_did(guard):
    """Runs last in this module: every verdict so far replays identically through the pure core.
    It brings its own decisions too (a binding, a re-push, a duplicate, a frozen retry, on ten
    numbers), so that it means something when run alone."""
    from streams.audit import audit

    for number in [fresh_s10() for _ in range(10)]:
        ids = [
            guard.submit(tracking_no=number),
            guard.submit(tracking_no=number),
            guard.submit(tracking_no=number, order_id="O2"),
            guard.submit(tracking_no=number, order_id="O3"),
        ]
        assert [guard.verdict(e)["verdict"] for e in ids] == ["accepted", "accepted", "duplicate", "frozen"]
    report = audit(guard.settings, idle_s=2.0, exactly_once=True)  # no crash here: every answer exactly once
    assert report.ok, report.render()
    assert report.counts["replayed_against_core"] >= 20
    # The same replay on the Python build of the core (the worker ran the build the tests run:
    # compiled where `make native` could build it), through the CLI: both builds decide alike.
    done = subprocess.run(
        [sys.executable, "-m", "streams", "--config", str(guard.config_path), "audit", "--idle", "2", "--json"],
        env={**os.environ, "TRACKGUARD_PURE": "1", "TRACKGUARD_BROKER": guard.settings.broker},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert orjson.loads(done.stdout)["counts"]["replayed_against_core"] >= report.counts["replayed_against_core"]
    assert len(guard.collector.verdicts) >= 20 and guard.contract_violations() == []
