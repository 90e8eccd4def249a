"""Rules 2-8 of the spec through the pure core, one test per rule, plus property tests."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from streams.core.events import Submission
from streams.core.normalize import fingerprint
from streams.core.rules import HOUR_MS, OTHER_LICENSE, Policy, decide, scoped_id

T0 = 1_790_000_000_000  # event time of the first submission (epoch ms)
POLICY = Policy()


def sub(
    event_id="e1",
    license_id="L1",
    store_id="S1",
    order_id="O1",
    carrier="CAINIAO",
    number="RR123456785CN",
    shipped_ms=T0 - HOUR_MS,
    now_ms=T0,
) -> Submission:
    return Submission(event_id, license_id, store_id, order_id, carrier, number, shipped_ms, "erp", now_ms)


def run(*subs: Submission, state=None):
    verdicts = []
    for s in subs:
        v, state = decide(state, s, POLICY)
        verdicts.append(v)
    return verdicts, state


def test_rule7_first_use_binds():
    (v,), state = run(sub())
    assert (v["verdict"], v["code"], v["reason"], v["replay"]) == ("accepted", "ACCEPTED", "FIRST_USE", False)
    assert v["bound_to"] == {"store_id": "S1", "order_id": "O1"}
    assert v["fingerprint"] == fingerprint("CAINIAO", "RR123456785CN", T0 - HOUR_MS)
    assert state["binding"] == {
        "license": "L1",
        "store": "S1",
        "order": "O1",
        "carrier": "CAINIAO",
        "shipped_ms": T0 - HOUR_MS,
    }


def test_rule2_same_event_id_is_the_same_verdict_again_and_changes_nothing():
    (first, dup), state = run(sub(), sub(event_id="e2", order_id="O2", now_ms=T0 + 1))
    before = copy.deepcopy(state)
    again, after = decide(state, sub(event_id="e2", order_id="O2", now_ms=T0 + 5 * HOUR_MS), POLICY)
    assert after is state and state == before
    assert again["replay"] is True
    for field in ("verdict", "code", "reason", "frozen_until", "bound_to", "decided_at"):
        assert again[field] == dup[field]


def test_rule3_erp_repush_with_new_event_id_is_accepted_even_while_frozen():
    (_, dup, repush), state = run(
        sub(),
        sub(event_id="e2", order_id="O2", now_ms=T0 + 1),  # freezes the number for L1
        sub(event_id="e3", shipped_ms=T0, now_ms=T0 + 2),  # binder's order, later ship time
    )
    assert dup["verdict"] == "duplicate"
    assert (repush["verdict"], repush["reason"], repush["replay"]) == ("accepted", "SAME_ORDER_REPUSH", True)
    assert state["binding"]["shipped_ms"] == T0  # the watermark moved forward


def test_rule4_frozen_for_the_licence_does_not_extend_the_freeze():
    (_, dup, frozen), state = run(
        sub(),
        sub(event_id="e2", order_id="O2", now_ms=T0 + 1),
        sub(event_id="e3", order_id="O3", store_id="S2", now_ms=T0 + 10 * HOUR_MS),
    )
    assert (frozen["verdict"], frozen["code"]) == ("frozen", "TRACKING_FROZEN")
    assert frozen["frozen_until"] == dup["frozen_until"]
    assert state["frozen"]["L1"] == T0 + 1 + 72 * HOUR_MS


def test_rule5_blacklisted_after_the_freeze_and_refreezes():
    (_, _, late), state = run(
        sub(),
        sub(event_id="e2", order_id="O2", now_ms=T0 + 1),
        sub(event_id="e3", order_id="O3", now_ms=T0 + 80 * HOUR_MS),
    )
    assert (late["verdict"], late["code"], late["reason"]) == ("duplicate", "TRACKING_DUPLICATE", "BLACKLISTED")
    assert state["frozen"]["L1"] == T0 + 80 * HOUR_MS + 72 * HOUR_MS


def test_rule6_live_reservation_by_another_order():
    state = {
        "reservation": {"license": "L2", "store": "S9", "order": "O9", "carrier": "CAINIAO", "expires_ms": T0 + HOUR_MS}
    }
    (other, holder), new = run(sub(), sub(event_id="e2", license_id="L2", store_id="S9", order_id="O9"), state=state)
    assert (other["verdict"], other["reason"]) == ("duplicate", "RESERVED_BY_OTHER")
    assert (holder["verdict"], holder["reason"]) == ("accepted", "RESERVED_NUMBER_USED")
    assert "reservation" not in new and new["binding"]["license"] == "L2"


def test_rule6_expired_reservation_is_ignored():
    state = {"reservation": {"license": "L2", "store": "S9", "order": "O9", "carrier": "CAINIAO", "expires_ms": T0}}
    (v,), _ = run(sub(), state=state)
    assert (v["verdict"], v["reason"]) == ("accepted", "FIRST_USE")


def test_rule8_reasons_in_order_and_other_licence_reveals_nothing():
    _, bound = run(sub())
    cases = [
        (sub(event_id="x1", carrier="YANWEN"), "CARRIER_MISMATCH"),
        (sub(event_id="x2", license_id="L2", store_id="S7", order_id="O7"), "USED_BY_OTHER_LICENSE"),
        (sub(event_id="x3", order_id="O2"), "USED_BY_LICENSE"),
        (sub(event_id="x4", shipped_ms=T0 - 2 * HOUR_MS), "TIMESTAMP_REGRESSION"),
    ]
    for s, reason in cases:
        v, state = decide(bound, s, POLICY)
        assert (v["verdict"], v["code"], v["reason"]) == ("duplicate", "TRACKING_DUPLICATE", reason)
        assert s.license_id in state["blacklist"]
        assert state["frozen"][s.license_id] == s.now_ms + POLICY.freeze_ms
    other, _ = decide(bound, cases[1][0], POLICY)
    assert other["bound_to"] == OTHER_LICENSE


def test_duplicate_freeze_is_configurable():
    policy = Policy(freeze_ms=HOUR_MS)
    _, state = decide(None, sub(), policy)
    v, state = decide(state, sub(event_id="e2", order_id="O2"), policy)
    assert state["frozen"]["L1"] == T0 + HOUR_MS


def test_memory_per_number_is_bounded():
    policy = Policy(max_judged=4, max_uses=3)
    state = None
    for i in range(20):
        _, state = decide(state, sub(event_id=f"e{i}", now_ms=T0 + i), policy)
    assert len(state["judged"]) == 4 and len(state["uses"]) == 3
    assert list(state["judged"]) == [scoped_id("L1", f"e{i}") for i in (16, 17, 18, 19)]


def test_decide_never_mutates_its_input():
    _, state = run(sub())
    snapshot = copy.deepcopy(state)
    decide(state, sub(event_id="e2", order_id="O2"), POLICY)
    decide(state, sub(event_id="e3"), POLICY)
    assert state == snapshot


# --- properties over random histories of one number ------------------------------------------

licences = st.sampled_from(["L1", "L2", "L3"])
orders = st.sampled_from(["O1", "O2", "O3"])
carriers = st.sampled_from(["CAINIAO", "YANWEN"])


@st.composite
def histories(draw):
    n = draw(st.integers(1, 40))
    now = T0
    subs = []
    for i in range(n):
        now += draw(st.integers(0, 30 * HOUR_MS))
        replay_of = draw(st.one_of(st.none(), st.integers(0, max(i - 1, 0))))
        if replay_of is not None and subs:
            old = subs[min(replay_of, len(subs) - 1)]
            subs.append(
                sub(
                    old.event_id,
                    old.license_id,
                    old.store_id,
                    old.order_id,
                    old.carrier_code,
                    old.tracking_no,
                    old.shipped_ms,
                    now,
                )
            )
        else:
            subs.append(
                sub(
                    f"e{i}",
                    draw(licences),
                    "S1",
                    draw(orders),
                    draw(carriers),
                    shipped_ms=T0 + draw(st.integers(-50, 50)) * HOUR_MS,
                    now_ms=now,
                )
            )
    return subs


@hsettings(max_examples=300, deadline=None)
@given(histories())
def test_properties_over_histories(subs):
    state = None
    first_binding = None
    verdict_of_event: dict[str, dict] = {}
    for s in subs:
        before = state
        snapshot = copy.deepcopy(state)
        v, state = decide(state, s, POLICY)
        binding = state.get("binding")
        # A number is bound at most once: who holds it never changes (only the time watermark).
        if first_binding is None and binding is not None:
            first_binding = {k: binding[k] for k in ("license", "store", "order", "carrier")}
        if first_binding is not None:
            assert {k: binding[k] for k in first_binding} == first_binding
        # Only the binder's order is ever accepted.
        if v["verdict"] == "accepted":
            assert (s.license_id, s.order_id) == (first_binding["license"], first_binding["order"])
        # A replayed event id never changes state and repeats its first verdict.
        if s.event_id in verdict_of_event:
            assert state is before and state == snapshot and v["replay"] is True
            assert (v["verdict"], v["reason"]) == (
                verdict_of_event[s.event_id]["verdict"],
                verdict_of_event[s.event_id]["reason"],
            )
        else:
            verdict_of_event[s.event_id] = v
        # Every duplicate leaves the licence blacklisted and frozen until now + freeze.
        if v["verdict"] == "duplicate" and not v["replay"]:
            assert s.license_id in state["blacklist"]
            assert state["frozen"][s.license_id] == s.now_ms + POLICY.freeze_ms


def test_a_verdict_repeats_the_submission_and_adds_the_spec_fields():
    # Times by `date -u -d @<s>`; the fingerprint is md5("CHINAPOST|RR123456785CN|1795996800000"),
    # the known answer of tests/core/test_known_answers.py.
    shipped = 1_795_996_800_000
    first = sub(carrier="CHINAPOST", shipped_ms=shipped)
    (v, dup), _ = run(
        first, sub("e2", license_id="L2", store_id="S2", order_id="O2", carrier="CHINAPOST", shipped_ms=shipped)
    )
    common = {"carrier_code": "CHINAPOST", "tracking_no": "RR123456785CN", "shipped_at": "2026-11-30T00:00:00.000Z"}
    assert v == {
        "event_id": "e1",
        "license_id": "L1",
        "store_id": "S1",
        "order_id": "O1",
        **common,
        "source": "erp",
        "verdict": "accepted",
        "code": "ACCEPTED",
        "reason": "FIRST_USE",
        "fingerprint": "32cd784ef845c2561114174d13357a74",
        "decided_at": "2026-09-21T14:13:20.000Z",
        "replay": False,
        "bound_to": {"store_id": "S1", "order_id": "O1"},
        "seq": 1,
    }
    assert dup == {
        "event_id": "e2",
        "license_id": "L2",
        "store_id": "S2",
        "order_id": "O2",
        **common,
        "source": "erp",
        "verdict": "duplicate",
        "code": "TRACKING_DUPLICATE",
        "reason": "USED_BY_OTHER_LICENSE",
        "fingerprint": "32cd784ef845c2561114174d13357a74",
        "decided_at": "2026-09-21T14:13:20.000Z",
        "replay": False,
        "bound_to": "other-license",
        "frozen_until": "2026-09-24T14:13:20.000Z",  # 72 h later
        "seq": 2,
    }


def test_the_uses_kept_for_the_diagnosis_are_the_newest_max_uses():
    subs = [sub(f"e{i}", order_id=f"O{i}", now_ms=T0 + i) for i in range(3)]
    for max_uses, kept in ((1, ["O2"]), (2, ["O1", "O2"]), (3, ["O0", "O1", "O2"])):
        state = None
        for s in subs:
            _, state = decide(state, s, Policy(max_uses=max_uses))
        assert [u[2] for u in state["uses"]] == kept, max_uses


def test_an_event_id_belongs_to_its_licence():
    """Licence L2 re-sending L1's event id on L1's number is a new submission of L2's (a
    duplicate), never L1's verdict replayed to L2 with L1's store and order in it."""
    first, state = decide(None, sub(event_id="shared"), Policy())
    assert first["bound_to"] == {"store_id": "S1", "order_id": "O1"}
    other, state = decide(state, sub(event_id="shared", license_id="L2", store_id="S2", order_id="O2"), Policy())
    assert (other["verdict"], other["reason"], other["replay"]) == ("duplicate", "USED_BY_OTHER_LICENSE", False)
    assert other["bound_to"] == OTHER_LICENSE and other["license_id"] == "L2"
    # Each licence's own id is still a replay for it.
    again, same = decide(state, sub(event_id="shared", license_id="L2", store_id="S2", order_id="O2"), Policy())
    assert again["replay"] and again["reason"] == "USED_BY_OTHER_LICENSE" and same is state
    mine, same = decide(state, sub(event_id="shared"), Policy())
    assert mine["replay"] and mine["reason"] == "FIRST_USE" and same is state
