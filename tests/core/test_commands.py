"""reserve / release / appeal in the pure core, and how they meet the submission rules."""

from __future__ import annotations

import copy

import orjson
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from streams import settings as settings_mod
from streams.core.commands import Command, CommandRejection, apply_command, parse_command, rejection_result
from streams.core.rules import HOUR_MS, Policy, decide, scoped_id

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


RELEASE = {
    "command": "release",
    "command_id": "c1",
    "license_id": "L1",
    "tracking_no": "RR123456785CN",
    "order_id": "O1",
}
APPEAL = {
    "command": "appeal",
    "command_id": "a1",
    "license_id": "L1",
    "tracking_no": "RR123456785CN",
    "evidence_sha256": SHA,
    "evidence_ref": "s3://evidence/1.pdf",
    "decided_by": "ops-7",
    "decision": "approved",
}
RESERVE = {
    "command": "reserve",
    "command_id": "r1",
    "license_id": "L1",
    "tracking_no": "RR123456785CN",
    "store_id": "S1",
    "order_id": "O1",
    "carrier_code": "china post",
    "ttl_s": 600,
}


def parse_raw(raw):
    return parse_command(raw, T0, SETTINGS.carriers, SETTINGS.limits)


def test_a_parsed_command_carries_its_kind_ids_number_time_and_fields():
    assert parse_raw(orjson.dumps({**RELEASE, "command_id": " c1 ", "license_id": " L1 "})) == Command(
        "release", "c1", "L1", "RR123456785CN", T0, {"order_id": "O1"}
    )
    appeal = parse_raw(orjson.dumps({**APPEAL, "evidence_sha256": SHA.upper(), "decision": "rejected"}))
    assert appeal == Command(
        "appeal",
        "a1",
        "L1",
        "RR123456785CN",
        T0,
        {"evidence_sha256": SHA, "evidence_ref": "s3://evidence/1.pdf", "decided_by": "ops-7", "decision": "rejected"},
    )
    assert parse_raw(orjson.dumps(APPEAL)).fields["decision"] == "approved"


def test_the_body_limit_is_inclusive():
    limit = SETTINGS.limits.max_event_bytes

    def padded(size):
        raw = orjson.dumps({**RELEASE, "pad": ""})
        return orjson.dumps({**RELEASE, "pad": "x" * (size - len(raw))})

    assert len(padded(limit)) == limit and isinstance(parse_raw(padded(limit)), Command)
    assert parse_raw(padded(limit + 1)).error == "INVALID_COMMAND:body"
    assert parse_raw(None) == CommandRejection("INVALID_COMMAND:body", None, None, None)
    assert parse_raw(b"[1, 2]") == CommandRejection("INVALID_COMMAND:json", None, None, None)


def test_ttl_is_one_second_to_thirty_days():
    month = 30 * 24 * 3600
    assert parse_raw(orjson.dumps({**RESERVE, "ttl_s": 1})).fields["ttl_s"] == 1
    assert parse_raw(orjson.dumps({**RESERVE, "ttl_s": month})).fields["ttl_s"] == month
    for ttl in (month + 1, -1, True, 1.5):
        rejected = parse_raw(orjson.dumps({**RESERVE, "ttl_s": ttl}))
        assert rejected == CommandRejection("INVALID_COMMAND:ttl_s", "reserve", "r1", "RR123456785CN", "L1"), ttl


def test_tracking_numbers_are_checked_like_a_submissions():
    limit = SETTINGS.limits.max_tracking_chars  # after normalization
    assert parse_raw(orjson.dumps({**RELEASE, "tracking_no": "A" * limit})).tracking_no == "A" * limit
    for number in ("A" * (limit + 1), "RR12345678€CN", "- _ -"):
        rejected = parse_raw(orjson.dumps({**RELEASE, "tracking_no": number}))
        assert rejected == CommandRejection("INVALID_COMMAND:tracking_no", "release", "c1", None, "L1"), number
    # reserve checks the carrier's formats: a number that fits none is a bad tracking_no, not a bad digit
    unknown = parse_raw(orjson.dumps({**RESERVE, "tracking_no": "HELLO"}))
    assert unknown == CommandRejection("INVALID_COMMAND:tracking_no", "reserve", "r1", "HELLO", "L1")
    bad_digit = parse_raw(orjson.dumps({**RESERVE, "tracking_no": "RR123456784CN"}))
    assert bad_digit == CommandRejection("BAD_CHECK_DIGIT", "reserve", "r1", "RR123456784CN", "L1")


def test_every_rejected_field_is_named_and_the_command_echoed():
    for name in ("command_id", "license_id", "tracking_no"):
        rejected = parse_raw(orjson.dumps({k: v for k, v in RELEASE.items() if k != name}))
        cid = None if name == "command_id" else "c1"
        lic = None if name == "license_id" else "L1"
        assert rejected == CommandRejection(f"INVALID_COMMAND:{name}", "release", cid, None, lic), name
    for change in ({"evidence_sha256": "ab" * 31}, {"evidence_sha256": 5}, {"decision": "maybe"}, {"decision": None}):
        name = next(iter(change))
        rejected = parse_raw(orjson.dumps({**APPEAL, **change}))
        assert rejected == CommandRejection(f"INVALID_COMMAND:{name}", "appeal", "a1", "RR123456785CN", "L1"), change


def test_a_rejection_result_is_the_spec_shape():
    rejection = CommandRejection("INVALID_COMMAND:ttl_s", "reserve", "r1", "RR123456785CN")
    assert rejection_result(rejection, 1_790_000_000_000) == {
        "command_id": "r1",
        "command": "reserve",
        "tracking_no": "RR123456785CN",
        "ok": False,
        "error": "INVALID_COMMAND:ttl_s",
        "decided_at": "2026-09-21T14:13:20.000Z",  # date -u -d @1790000000
        "replay": False,
    }


def test_a_command_result_is_the_spec_shape():
    (reserved,) = run(cmd("reserve", ttl_s=3600))[0]
    assert reserved == {
        "command_id": "c1",
        "command": "reserve",
        "tracking_no": "RR123456785CN",
        "license_id": "L1",
        "ok": True,
        "error": None,
        "decided_at": "2026-09-21T14:13:20.000Z",  # T0: date -u -d @1790000000
        "replay": False,
        "seq": 1,
        "expires_at": "2026-09-21T15:13:20.000Z",  # T0 + 1 h
    }


def test_a_reservation_ends_at_its_expiry_time_exactly():
    (_,), state = run(cmd("reserve", ttl_s=3600))
    at_expiry = T0 + 3600 * 1000
    (other,), _ = run(cmd("reserve", cid="c2", license_id="L2", now_ms=at_expiry), state=state)
    assert other["ok"], other
    (release,), _ = run(cmd("release", cid="c3", now_ms=at_expiry), state=state)
    assert release["error"] == "NOT_RESERVED"
    (still,), _ = run(cmd("reserve", cid="c4", license_id="L2", now_ms=at_expiry - 1), state=state)
    assert still["error"] == "ALREADY_RESERVED"


def test_an_appeal_is_recorded_with_its_evidence_and_the_record_is_bounded():
    state = {"blacklist": ["L1"], "seq": 5}  # blacklisted, the freeze long gone
    (r,), after = run(cmd("appeal", decision="approved", now_ms=T0 + 7), state=state)
    assert (r["ok"], r["seq"], r["decision"], after["seq"]) == (True, 6, "approved", 6)
    assert after["blacklist"] == [] and after["appeals"] == [
        {
            "license": "L1",
            "decision": "approved",
            "evidence_sha256": SHA,
            "evidence_ref": "s3://evidence/1.pdf",
            "decided_by": "ops-7",
            "at_ms": T0 + 7,
        }
    ]
    small = Policy(max_uses=3)
    state = {"blacklist": ["L1"], "appeals": [{"n": i} for i in range(5)]}
    _, after = apply_command(state, cmd("appeal", decision="rejected"), small)
    assert [a.get("n") for a in after["appeals"]] == [3, 4, None]  # the newest max_uses kept, oldest first


def test_remembered_command_results_are_bounded_oldest_first():
    small = Policy(max_judged=2)
    state = None
    for i in range(3):
        _, state = apply_command(state, cmd("release", cid=f"c{i}"), small)
    assert list(state["commands"]) == [scoped_id("L1", "c1"), scoped_id("L1", "c2")] and state["seq"] == 3


def test_a_command_id_belongs_to_its_licence():
    """L2 re-using L1's command id gets a result of its own, not L1's result again."""
    reserve = {"store_id": "S1", "order_id": "O1", "carrier_code": "CHINAPOST", "ttl_s": 60}
    first, state = apply_command(None, cmd("reserve", cid="c1", **reserve), Policy())
    other, state = apply_command(state, cmd("reserve", cid="c1", license_id="L2", **reserve), Policy())
    assert first["ok"] and (other["ok"], other["error"], other["replay"]) == (False, "ALREADY_RESERVED", False)
    again, same = apply_command(state, cmd("reserve", cid="c1", **reserve), Policy())
    assert again["ok"] and again["replay"] and same is state


def test_a_pending_appeal_is_recorded_and_lifts_nothing():
    _, state = decide(None, sub(), Policy())
    _, state = decide(state, sub(event_id="e2", order_id="O2"), Policy())
    raw = orjson.dumps(
        {
            "command": "appeal",
            "command_id": "a1",
            "license_id": "L1",
            "tracking_no": "RR123456785CN",
            "evidence_sha256": "ab" * 32,
            "evidence_ref": "T-1",
            "decision": "pending",
        }
    )
    parsed = parse_command(raw, T0, SETTINGS.carriers, SETTINGS.limits)
    assert isinstance(parsed, Command) and parsed.fields["decided_by"] is None
    result, new = apply_command(state, parsed, Policy())
    assert result["ok"] and result["decision"] == "pending"
    assert new["frozen"] == state["frozen"] and new["blacklist"] == ["L1"]
    assert new["appeals"][-1]["decision"] == "pending"
    # A decision names who decided it.
    decided = orjson.loads(raw) | {"decision": "approved"}
    rejection = parse_command(orjson.dumps(decided), T0, SETTINGS.carriers, SETTINGS.limits)
    assert isinstance(rejection, CommandRejection) and rejection.error == "INVALID_COMMAND:decided_by"
