"""Cross-licence reuse (streams/core/reuse.py): numbers claimed by more than one licence.

States come from the real rules (`decide`), so the test also pins what the report reads of them;
the property test compares with the plain fact of which licences submitted the number."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.events import Submission
from streams.core.reuse import NO_CARRIER, claimants, newly_reused, report, reuse_entry
from streams.core.rules import Policy, decide

TZ = "Asia/Shanghai"
POLICY = Policy()


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


NOV = ms("2026-11-10T08:00:00+08:00")


def submit(state, number="RR1", *, license="L1", order="O1", carrier="YANWEN", at=NOV, eid=None):
    sub = Submission(eid or f"{license}-{order}-{at}", license, "S1", order, carrier, number, at, None, at)
    return decide(state, sub, POLICY)[1]


def test_one_licence_is_no_reuse():
    state = submit(submit(None), order="O2", at=NOV + 1000)  # its own number twice: not reuse
    assert claimants(state) == ["L1"]
    assert reuse_entry("RR1", state, TZ) is None
    assert not newly_reused(None, "L1") and not newly_reused(state, "L1")
    assert newly_reused(state, "L2")


def test_the_entry_names_carrier_month_licences_and_failures():
    # L1 ships on 30 Nov (Shanghai); a forwarder gives the same number to L2 on 1 Dec 00:30 Shanghai
    # (still 30 Nov in UTC): the reuse is December's in the platform's zone.
    state = submit(None, at=ms("2026-11-30T10:00:00+08:00"))
    dec1 = ms("2026-12-01T00:30:00+08:00")
    state = submit(state, license="L2", at=dec1)
    state = submit(state, license="L3", at=dec1 + 60_000)
    entry = reuse_entry("RR1", state, TZ)
    assert entry == {
        "tracking_no": "RR1",
        "carrier_code": "YANWEN",
        "month": "2026-12",
        "reused_at": "2026-11-30T16:30:00.000Z",
        "licenses": ["L1", "L2", "L3"],
        "bound_license": "L1",
        "uses": 3,
        "failed": 2,
    }
    assert reuse_entry("RR1", state, "UTC")["month"] == "2026-11"


def test_trimmed_uses_still_show_the_licences_that_claimed():
    policy = Policy(max_uses=2)
    state = None
    for i, lic in enumerate(["L1", "L2", "L2", "L2"]):
        sub = Submission(f"e{i}", lic, "S1", f"O{i}", "YANWEN", "RR1", NOV + i, None, NOV + i)
        state = decide(state, sub, policy)[1]
    assert {u[0] for u in state["uses"]} == {"L2"}  # L1's use was trimmed away
    assert claimants(state) == ["L2", "L1"]  # the binding remembers L1
    entry = reuse_entry("RR1", state, TZ)
    assert entry["licenses"] == ["L2", "L1"] and entry["bound_license"] == "L1"


def test_report_filters_and_groups_by_carrier_and_month():
    entries = [
        {"tracking_no": "A1", "carrier_code": "YANWEN", "month": "2026-11", "licenses": ["L1", "L2"]},
        {"tracking_no": "A2", "carrier_code": "YANWEN", "month": "2026-11", "licenses": ["L2", "L3"]},
        {"tracking_no": "A3", "carrier_code": "YANWEN", "month": "2026-12", "licenses": ["L1", "L2"]},
        {"tracking_no": "B1", "carrier_code": "4PX", "month": "2026-11", "licenses": ["L4", "L5"]},
        {"tracking_no": "C1", "carrier_code": NO_CARRIER, "month": "2026-11", "licenses": ["L1", "L6"]},
    ]
    out = report(entries)
    assert [(g["carrier_code"], g["month"], g["numbers"], g["licenses"]) for g in out["groups"]] == [
        ("4PX", "2026-11", 1, 2),
        (NO_CARRIER, "2026-11", 1, 2),
        ("YANWEN", "2026-11", 2, 3),
        ("YANWEN", "2026-12", 1, 2),
    ]
    november = report(entries, month="2026-11", carrier="YANWEN")
    assert [e["tracking_no"] for e in november["items"]] == ["A1", "A2"]
    assert november["groups"] == [{"carrier_code": "YANWEN", "month": "2026-11", "numbers": 2, "licenses": 3}]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["L1", "L2", "L3"]), st.integers(0, 3)), min_size=1, max_size=12))
def test_claimants_are_the_licences_that_submitted_and_the_index_fires_once(pushes):
    """Whatever the verdicts (accepted, re-push, duplicate, frozen), the claimants are exactly the
    licences that submitted, in order of first submission, and `newly_reused` holds on exactly
    one decision: the first by a second licence."""
    state, fired, expected = None, [], []
    for i, (lic, order) in enumerate(pushes):
        before = state
        state = submit(state, license=lic, order=f"O{order}", at=NOV + i * 1000, eid=f"e{i}")
        if state is not before and newly_reused(before, lic):
            fired.append(i)
        if lic not in expected:
            expected.append(lic)
    assert claimants(state) == expected
    second = next((i for i, (lic, _) in enumerate(pushes) if lic != pushes[0][0]), None)
    assert fired == ([] if second is None else [second])
    assert (reuse_entry("RR1", state, TZ) is not None) == (len(expected) > 1)
