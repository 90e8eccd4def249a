"""Reconciliation (streams/core/reconcile.py): an ERP log against a licence's bound numbers.

States come from the real rules (`decide`), not written by hand, so the test also pins what the
reconciliation reads of them (binding, uses). Fingerprints are checked against MD5 by hand."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.events import Submission
from streams.core.reconcile import COLUMNS, ErpRow, invalid_row, merge, reconcile, ship_month
from streams.core.rules import Policy, decide

TZ = "Asia/Shanghai"
POLICY = Policy()


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


NOV = ms("2026-11-10T08:00:00+08:00")
DEC = ms("2026-12-03T08:00:00+08:00")


def submit(state, number, *, license="L1", order="O1", carrier="CHINAPOST", shipped=NOV, eid=None):
    sub = Submission(
        eid or f"{license}-{order}-{number}", license, "S1", order, carrier, number, shipped, None, shipped
    )
    return decide(state, sub, POLICY)[1]


def row(number, *, carrier="CHINAPOST", shipped=NOV, line=2, order="O1") -> ErpRow:
    return ErpRow(line, number, carrier, shipped, "S1", order)


def run(rows, states, month=None, license="L1"):
    used = [(n, s) for n, s in states.items() if s and s.get("binding")]
    return reconcile(license, rows, states, used, month=month, timezone=TZ, now_ms=DEC + 1)


def test_each_kind_of_finding():
    states = {
        "RR1": submit(None, "RR1"),  # matched
        "RR2": submit(None, "RR2", carrier="YANWEN"),  # the ERP says CHINAPOST: differs in carrier
        "RR3": submit(None, "RR3", shipped=NOV + 3_600_000),  # another ship time
        "RR4": submit(None, "RR4"),  # bound, on no ERP row
        "RR5": submit(submit(None, "RR5", license="L2"), "RR5"),  # L1 got a duplicate: L2 holds it
        "RR6": None,  # never submitted
    }
    report = run([row("RR1"), row("RR2", line=3), row("RR3", line=4), row("RR5", line=5), row("RR6", line=6)], states)
    by = {(f["kind"], f["tracking_no"]): f for f in report.findings}
    assert set(by) == {
        ("differs", "RR2"),
        ("differs", "RR3"),
        ("accepted_not_in_erp", "RR4"),
        ("erp_not_accepted", "RR5"),
        ("erp_not_accepted", "RR6"),
    }
    assert report.counts["matched"] == 1
    assert by[("differs", "RR2")]["differs_in"] == "carrier_code"
    assert by[("differs", "RR3")]["differs_in"] == "shipped_at"
    assert (by[("differs", "RR3")]["line"], by[("differs", "RR3")]["erp_shipped_at"]) == (4, "2026-11-10T00:00:00.000Z")
    rr5 = by[("erp_not_accepted", "RR5")]
    assert (rr5["verdict"], rr5["reason"], rr5["status"]) == ("duplicate", "USED_BY_OTHER_LICENSE", "blacklisted")
    assert rr5["accepted_store_id"] == ""  # nothing of L2's binding is shown to L1
    rr6 = by[("erp_not_accepted", "RR6")]
    assert (rr6["verdict"], rr6["reason"], rr6["status"]) == ("", "NOT_SUBMITTED", "available")
    rr4 = by[("accepted_not_in_erp", "RR4")]
    assert rr4["line"] is None and rr4["accepted_order_id"] == "O1"
    # The fingerprint is MD5 of carrier|number|epoch ms, worked out here, not by the code under test.
    assert rr4["accepted_fingerprint"] == hashlib.md5(f"CHINAPOST|RR4|{NOV}".encode()).hexdigest()
    assert all(set(f) == set(COLUMNS) for f in report.findings)


def test_a_month_limits_both_sides_but_keeps_a_ship_time_that_moved_across_it():
    states = {
        "RR1": submit(None, "RR1", shipped=DEC),  # December on both sides: not November's business
        "RR2": submit(None, "RR2", shipped=NOV),  # bound in November, the ERP says December
        "RR3": submit(None, "RR3", shipped=DEC),  # bound in December, on no ERP row
        "RR4": submit(None, "RR4", shipped=NOV),  # bound in November, on no ERP row
    }
    report = run([row("RR1", shipped=DEC), row("RR2", shipped=DEC)], states, month="2026-11")
    assert [(f["kind"], f["tracking_no"]) for f in report.findings] == [
        ("differs", "RR2"),
        ("accepted_not_in_erp", "RR4"),
    ]
    assert report.counts["outside_month"] == 1


def test_the_month_is_the_platforms():
    assert ship_month(ms("2026-11-30T16:30:00+00:00"), TZ) == "2026-12"  # 00:30 on 1 December there
    assert ship_month(ms("2026-11-30T16:30:00+00:00"), "UTC") == "2026-11"


def test_a_stale_index_entry_and_another_licences_number_are_not_the_licences():
    states = {"RR1": submit(None, "RR1", license="L2")}
    report = reconcile("L1", [], states, [("RR1", states["RR1"])], month=None, timezone=TZ, now_ms=DEC)
    assert report.findings == [] and sum(report.counts.values()) == 0


def test_merge_orders_by_kind_then_number_then_line():
    a = run([row("RR9", line=9)], {"RR9": None})
    b = run([row("RR1", line=4), row("RR1", line=3)], {"RR1": None, "RR2": submit(None, "RR2")})
    c = invalid_row(7, "??", "BAD_FORMAT:tracking_no", "not a tracking number")
    invalid = merge([])
    invalid.findings.append(c)
    invalid.counts["erp_invalid"] += 1
    merged = merge([a, b, invalid])
    assert [(f["kind"], f["tracking_no"], f["line"]) for f in merged.findings] == [
        ("erp_not_accepted", "RR1", 3),
        ("erp_not_accepted", "RR1", 4),
        ("erp_not_accepted", "RR9", 9),
        ("accepted_not_in_erp", "RR2", None),
        ("erp_invalid", "??", 7),
    ]
    assert merged.as_dict("L1", None)["counts"] == {
        "erp_not_accepted": 3,
        "accepted_not_in_erp": 1,
        "differs": 0,
        "erp_invalid": 1,
        "matched": 0,
        "outside_month": 0,
    }


numbers = st.sampled_from([f"RR{i}" for i in range(8)])
carriers = st.sampled_from(["CHINAPOST", "YANWEN"])
times = st.sampled_from([NOV, NOV + 1000, DEC])


@settings(max_examples=300, deadline=None)
@given(
    bound=st.dictionaries(numbers, st.tuples(st.sampled_from(["L1", "L2"]), carriers, times), max_size=8),
    erp=st.lists(st.tuples(numbers, carriers, times), max_size=12),
    month=st.sampled_from([None, "2026-11", "2026-12"]),
)
def test_every_row_and_every_bound_number_is_accounted_for_once(bound, erp, month):
    """Against a plain reading of the spec: an ERP row in scope is matched (same fingerprint as
    the licence's binding), differs (bound to the licence, other fingerprint) or not accepted;
    a number bound to the licence in the month and on no row is accepted-not-in-ERP."""
    states = {n: submit(None, n, license=lic, carrier=c, shipped=t) for n, (lic, c, t) in bound.items()}
    rows = [row(n, carrier=c, shipped=t, line=i + 2) for i, (n, c, t) in enumerate(erp)]
    report = run(rows, states, month=month)

    def month_ok(t: int) -> bool:
        return month is None or ship_month(t, TZ) == month

    mine = {n: (c, t) for n, (lic, c, t) in bound.items() if lic == "L1"}
    expected: dict[str, int] = {}
    for r in rows:
        binding = mine.get(r.tracking_no)
        if not month_ok(r.shipped_ms) and not (binding and month_ok(binding[1])):
            kind = "outside_month"
        elif binding is None:
            kind = "erp_not_accepted"
        elif binding == (r.carrier_code, r.shipped_ms):
            kind = "matched"
        else:
            kind = "differs"
        expected[kind] = expected.get(kind, 0) + 1
    on_rows = {r.tracking_no for r in rows}
    missing = [n for n, (c, t) in mine.items() if n not in on_rows and month_ok(t)]
    if missing:
        expected["accepted_not_in_erp"] = len(missing)
    assert {k: v for k, v in report.counts.items() if v} == expected
    assert sorted(f["tracking_no"] for f in report.findings if f["kind"] == "accepted_not_in_erp") == sorted(missing)
    assert len(report.findings) == sum(v for k, v in expected.items() if k not in ("matched", "outside_month"))


def test_the_erp_time_shown_is_utc_rfc3339():
    f = run([row("RR1", shipped=NOV)], {"RR1": None}).findings[0]
    assert datetime.fromisoformat(f["erp_shipped_at"].replace("Z", "+00:00")) == datetime.fromtimestamp(NOV / 1000, UTC)
