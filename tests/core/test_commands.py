"""reserve / release / appeal in the pure core, and how they meet the submission rules."""

from __future__ import annotations

import copy

import orjson
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from streams import settings as settings_mod
from streams.core.commands import Command, CommandRejection, apply_command, parse_command
from streams.core.rules import HOUR_MS, Policy, decide

from .test_rules import T0, sub

SETTINGS = settings_mod.load()
POLICY = Policy()
SHA = "ab" * 32


def cmd(kind: str, cid: str = "c1", license_id: str = "L1", now_ms: int = T0, **fields) -> Command:
    defaults = {
        "reserve": {"store_id": "S1", "order_id": "O1", "carrier_code": "CAINIAO", "ttl_s": 3600},
        "release": {"order_id": "O1"},
        "appeal": {
            "evidence_sha256": SHA,
            "evidence_ref": "s3://evidence/1.pdf",
            "decided_by": "ops-7",
            "decision": "approved",
        },
    }[kind]
    return Command(kind, cid, license_id, "RR123456785CN", now_ms, {**defaults, **fields})


def run(*commands, state=None):
    results = []
    for c in commands:
        r, state = apply_command(state, c, POLICY)
        results.append(r)
    return results, state


def test_reserve_then_holder_accepted_and_others_reserved_by_other():
    (r,), state = run(cmd("reserve", order_id="O9"))
    assert r["ok"] and r["error"] is None and r["expires_at"]
    other, state2 = decide(state, sub(order_id="O1"), POLICY)
    assert (other["verdict"], other["reason"]) == ("duplicate", "RESERVED_BY_OTHER")
    holder, _ = decide(state, sub(event_id="e2", order_id="O9"), POLICY)
    assert (holder["verdict"], holder["reason"]) == ("accepted", "RESERVED_NUMBER_USED")


def test_reserve_errors_and_expiry_by_event_time():
    _, bound = decide(None, sub(), POLICY)
    assert run(cmd("reserve"), state=bound)[0][0]["error"] == "ALREADY_BOUND"
    (_, taken), state = run(cmd("reserve", order_id="O9"), cmd("reserve", cid="c2", license_id="L2"))
    assert taken["error"] == "ALREADY_RESERVED"
    (late,), _ = run(cmd("reserve", cid="c3", license_id="L2", now_ms=T0 + 2 * HOUR_MS), state=state)
    assert late["ok"]  # the first reservation expired (ttl 1 h) by the event's own time


def test_release_by_holder_only():
    (_, wrong, right, again), state = run(
        cmd("reserve"), cmd("release", cid="c2", order_id="O2"), cmd("release", cid="c3"), cmd("release", cid="c4")
    )
    assert (wrong["error"], right["ok"], again["error"]) == ("NOT_HOLDER", True, "NOT_RESERVED")
    assert "reservation" not in state


def test_approved_appeal_lifts_freeze_and_blacklist_but_never_unbinds():
    _, state = decide(None, sub(license_id="L2", order_id="O7"), POLICY)
    _, state = decide(state, sub(event_id="e2"), POLICY)  # L1 on L2's number: blacklisted + frozen
    assert "L1" in state["blacklist"]
    (r,), after = run(cmd("appeal"), state=state)
    assert r["ok"] and "L1" not in after["blacklist"] and "L1" not in after["frozen"]
    assert after["binding"] == state["binding"]
    v, _ = decide(after, sub(event_id="e3"), POLICY)  # still bound to L2: a new duplicate
    assert v["reason"] == "USED_BY_OTHER_LICENSE"


def test_rejected_appeal_changes_nothing_but_is_recorded():
    _, state = decide(None, sub(license_id="L2"), POLICY)
    _, state = decide(state, sub(event_id="e2"), POLICY)
    (r,), after = run(cmd("appeal", decision="rejected"), state=state)
    assert r["ok"] and r["decision"] == "rejected"
    assert after["blacklist"] == state["blacklist"] and after["appeals"][-1]["decision"] == "rejected"
    assert run(cmd("appeal", cid="x", license_id="L9"), state=state)[0][0]["error"] == "NOTHING_TO_APPEAL"


def test_repeated_command_id_gets_the_first_result_and_changes_nothing():
    (first,), state = run(cmd("reserve"))
    snapshot = copy.deepcopy(state)
    again, after = apply_command(state, cmd("reserve", order_id="O5", now_ms=T0 + 5), POLICY)
    assert after is state and state == snapshot
    assert {**again, "replay": False} == first and again["replay"] is True


def test_parse_command_validates_each_field():
    def parse(obj):
        return parse_command(orjson.dumps(obj), T0, SETTINGS.carriers, SETTINGS.limits)

    good = {
        "command": "reserve",
        "command_id": "c1",
        "license_id": "L1",
        "tracking_no": "rr123456785cn",
        "store_id": "S1",
        "order_id": "O1",
        "carrier_code": "china post",
        "ttl_s": 600,
    }
    parsed = parse(good)
    assert isinstance(parsed, Command) and parsed.tracking_no == "RR123456785CN"
    assert parsed.fields["carrier_code"] == "CHINAPOST"
    for change, error in [
        ({"command": "steal"}, "INVALID_COMMAND:command"),
        ({"ttl_s": "600"}, "INVALID_COMMAND:ttl_s"),
        ({"ttl_s": 0}, "INVALID_COMMAND:ttl_s"),
        ({"order_id": ""}, "INVALID_COMMAND:order_id"),
        ({"tracking_no": "RR123456784CN"}, "BAD_CHECK_DIGIT"),
    ]:
        r = parse({**good, **change})
        assert isinstance(r, CommandRejection) and r.error == error, (change, r)
    appeal = {
        "command": "appeal",
        "command_id": "a1",
        "license_id": "L1",
        "tracking_no": "RR123456785CN",
        "evidence_sha256": "XYZ",
        "evidence_ref": "r",
        "decided_by": "d",
        "decision": "approved",
    }
    assert parse(appeal).error == "INVALID_COMMAND:evidence_sha256"
    assert parse_command(b"{", T0, SETTINGS.carriers, SETTINGS.limits).error == "INVALID_COMMAND:json"


kinds = st.sampled_from(["reserve", "release", "appeal"])


@hsettings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            kinds,
            st.sampled_from(["L1", "L2"]),
            st.sampled_from(["O1", "O2"]),
            st.integers(0, 3 * HOUR_MS),
            st.booleans(),
        ),
        max_size=30,
    )
)
def test_commands_and_submissions_never_break_the_binding(steps):
    """Whatever mix of commands and submissions: a binding never changes hands, and a bound
    number holds no reservation."""
    state, now, binding = None, T0, None
    for i, (kind, lic, order, dt, is_submission) in enumerate(steps):
        now += dt
        if is_submission:
            _, state = decide(state, sub(f"e{i}", lic, "S1", order, now_ms=now), POLICY)
        else:
            extra = {"order_id": order} if kind in ("reserve", "release") else {}
            _, state = apply_command(state, cmd(kind, f"c{i}", lic, now, **extra), POLICY)
        if binding is None and state.get("binding"):
            binding = dict(state["binding"])
        if binding is not None:
            assert (state["binding"]["license"], state["binding"]["order"]) == (binding["license"], binding["order"])
        if state.get("binding"):
            assert "reservation" not in state, "a bound number kept a reservation"


def parse(**fields):
    body = {
        "command": "release",
        "command_id": "c1",
        "license_id": "L1",
        "tracking_no": "RR123456785CN",
        "order_id": "O1",
        **fields,
    }
    return parse_command(orjson.dumps(body), T0, SETTINGS.carriers, SETTINGS.limits)


def test_field_limits_are_inclusive_and_control_characters_are_refused_at_any_length():
    limit = SETTINGS.limits.max_field_chars
    assert isinstance(parse(order_id="O" * limit), Command)
    assert parse(order_id="O" * (limit + 1)).error == "INVALID_COMMAND:order_id"
    assert parse(order_id="O\x001").error == "INVALID_COMMAND:order_id"
    assert parse(order_id="   ").error == "INVALID_COMMAND:order_id"


def test_a_rejection_names_the_command_and_its_id_when_they_are_readable():
    rejected = parse(order_id=5)
    assert (rejected.command, rejected.command_id, rejected.tracking_no) == ("release", "c1", "RR123456785CN")
    unknown = parse(command="destroy")
    assert (unknown.error, unknown.command, unknown.command_id) == ("INVALID_COMMAND:command", None, "c1")
