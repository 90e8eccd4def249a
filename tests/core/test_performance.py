"""Store performance (streams/core/performance.py), against a plain model of the spec's sentence:
failed shipments per store per calendar month in the platform's time zone, each event once,
3 or more a penalty, two such months in a row a downgrade, each alert once."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.performance import (
    AlertKind,
    Failure,
    PerformancePolicy,
    count,
    failure_of,
    mark_of,
    month_of,
    month_prefix,
    outdated,
    store_key,
    upgrade,
    view,
)
from streams.core.performance import fold as count_all

POLICY = PerformancePolicy()


def failure(event_id: str, decided_at: str, no: str = "RR1", reason: str = "USED_BY_LICENSE") -> Failure:
    return Failure("L1", "S1", event_id, "duplicate", reason, no, decided_at)


def fold(failures: list[Failure], policy: PerformancePolicy = POLICY) -> tuple[list[dict], dict]:
    """Store S1's alerts and summary, counted as the worker does (marks remembered apart)."""
    alerts, states = count_all(failures, policy)
    return alerts, dict(states.get(store_key("L1", "S1"), {}))


def step(state: dict, f: Failure, policy: PerformancePolicy = POLICY) -> tuple[list, dict]:
    """Count a failure that arrives next, with no mark."""
    counted = count(state, f, policy, (state or {}).get("at", -1) + 1, None)  # type: ignore[arg-type]
    return counted.alerts, counted.state  # type: ignore[return-value]


def test_the_month_is_the_platforms_calendar_month_not_utcs():
    assert month_of("2026-11-30T15:59:59.999Z", "Asia/Shanghai") == "2026-11"
    assert month_of("2026-11-30T16:00:00.000Z", "Asia/Shanghai") == "2026-12"  # midnight in Shanghai
    assert month_of("2026-11-30T16:00:00.000Z", "UTC") == "2026-11"
    assert month_of("2026-12-01T00:30:00-05:00", "UTC") == "2026-12"


def test_third_failure_of_a_month_is_a_penalty_alert_once():
    a1, s = fold([failure("e1", "2026-11-02T00:00:00Z"), failure("e2", "2026-11-03T00:00:00Z")])
    assert a1 == []
    a2, s = step(s, failure("e3", "2026-11-04T00:00:00Z"))
    assert [(a["kind"], a["month"], a["count"], a["event_ids"]) for a in a2] == [
        ("LFR_PENALTY", "2026-11", 3, ["e1", "e2", "e3"])
    ]
    assert a2[0]["alert_id"] == "L1/S1/2026-11/LFR_PENALTY" and a2[0]["lfr_penalty"] == 0.5
    a3, s2 = step(s, failure("e4", "2026-11-05T00:00:00Z"))
    assert a3 == [] and s2["months"]["2026-11"]["failed"] == 4


def test_a_redelivered_event_is_counted_once_and_the_state_is_the_same_object():
    first = failure("e1", "2026-11-02T00:00:00Z")
    counted = count(None, first, POLICY, 10, None)
    assert counted.mark == mark_of(first, POLICY) and counted.state["months"]["2026-11"]["failed"] == 1
    s = counted.state
    # Re-read at its own position, or a copy later with its mark, or a copy whose mark a crash
    # kept from being written (the summary's last): the same object, nothing to write.
    for at, mark_at in ((10, None), (11, 10), (11, None)):
        again = count(s, first, POLICY, at, mark_at)
        assert again.alerts == [] and again.state is s and again.mark is None
    # The same event id on another number is another failure (event ids are unique per number).
    _, s3 = step(s, failure("e1", "2026-11-02T00:00:00Z", no="RR2"))
    assert s3["months"]["2026-11"]["failed"] == 2


def test_a_mark_that_outlived_its_summary_in_a_crash_is_not_believed():
    """The summary counted up to position 5; the changelog's tail replayed over a newer one that
    had counted e7 at position 7, whose mark survived. e7 re-read at 7 is counted, once."""
    _, s = fold([failure(f"e{i}", "2026-11-02T00:00:00Z") for i in range(6)])
    assert s["at"] == 5
    e7 = failure("e7", "2026-11-02T00:00:00Z")
    again = count(s, e7, POLICY, 7, mark_at=7)  # type: ignore[arg-type]
    assert again.mark == mark_of(e7, POLICY) and again.state["months"]["2026-11"]["failed"] == 7
    assert count(again.state, e7, POLICY, 9, mark_at=7).mark is None  # and later copies are seen


def test_the_summary_stays_the_same_size_however_many_failures_a_month_has():
    state: dict = {}
    sizes = []
    for i in range(5000):
        _, state = step(state, failure(f"e{i}", "2026-11-02T00:00:00Z", no=f"RR{i:09d}CN"))
        if i in (10, 4999):
            sizes.append(len(repr(state)))
    assert state["months"]["2026-11"]["failed"] == 5000
    assert sizes[1] - sizes[0] <= 8  # four numbers in it (count, reason count, last id, at) grow 2 digits


def test_marks_of_a_store_month_share_a_prefix_no_other_store_or_month_has():
    f = failure("e1", "2026-11-02T00:00:00Z")
    assert mark_of(f, POLICY).startswith(month_prefix("L1", "S1", "2026-11"))
    assert not mark_of(f, POLICY).startswith(month_prefix("L1", "S1", "2026-12"))
    assert not mark_of(f, POLICY).startswith(month_prefix("L1", "S", "2026-11"))
    assert not store_key("L1", "S1").startswith(month_prefix("L1", "S1", "2026-11"))
    tricky = Failure("L1", 'S1","2026-11', "e1", "duplicate", "USED_BY_LICENSE", "RR1", "2026-11-02T00:00:00Z")
    assert not mark_of(tricky, POLICY).startswith(month_prefix("L1", "S1", "2026-11"))


def test_a_month_dropped_names_its_marks_to_forget():
    policy = PerformancePolicy(keep_months=2)
    _, s = fold([failure("a", "2026-09-10T00:00:00Z"), failure("b", "2026-10-10T00:00:00Z")], policy)
    counted = count(s, failure("c", "2026-11-10T00:00:00Z"), policy, 2, None)  # type: ignore[arg-type]
    assert counted.forget == ("2026-09",) and list(counted.state["months"]) == ["2026-10", "2026-11"]


def test_a_summary_of_the_older_shape_is_upgraded_with_its_marks():
    old = {
        "license": "L1",
        "store": "S1",
        "months": {
            "2026-11": {
                "ids": [["e1", "RR1"], ["e2", "RR2"], ["e3", "RR3"], ["e4", "RR4"]],
                "reasons": {"USED_BY_LICENSE": 4},
            }
        },
        "alerted": ["2026-11/LFR_PENALTY"],
    }
    assert outdated(old)
    state, marks = upgrade(old, POLICY)
    assert not outdated(state)  # type: ignore[arg-type]
    assert state["months"]["2026-11"] == {
        "failed": 4,
        "reasons": {"USED_BY_LICENSE": 4},
        "first": [["e1", "RR1"], ["e2", "RR2"], ["e3", "RR3"]],
    }
    assert marks == [mark_of(failure(f"e{i}", "2026-11-15T00:00:00Z", no=f"RR{i}"), POLICY) for i in range(1, 5)]
    e2 = failure("e2", "2026-11-15T00:00:00Z", no="RR2")
    assert mark_of(e2, POLICY) in marks
    again = count(state, e2, POLICY, 0, mark_at=-1)  # type: ignore[arg-type]
    assert again.mark is None and again.alerts == []
    assert (
        count(state, failure("e5", "2026-11-15T00:00:00Z"), POLICY, 0, None).state["months"]["2026-11"]["failed"] == 5
    )


def test_two_penalised_months_in_a_row_downgrade_whichever_arrives_last():
    nov = [failure(f"n{i}", "2026-11-10T00:00:00Z") for i in range(3)]
    dec = [failure(f"d{i}", "2026-12-10T00:00:00Z") for i in range(3)]
    for order in (nov + dec, dec + nov):
        alerts, state = fold(order)
        kinds = sorted((a["kind"], a["month"]) for a in alerts)
        assert kinds == [
            ("LFR_PENALTY", "2026-11"),
            ("LFR_PENALTY", "2026-12"),
            ("SERVICE_DOWNGRADE", "2026-12"),
        ]
        downgrade = next(a for a in alerts if a["kind"] == AlertKind.SERVICE_DOWNGRADE)
        assert downgrade["months"] == ["2026-11", "2026-12"]
        assert downgrade["event_ids"] == ["n0", "n1", "n2", "d0", "d1", "d2"]
        shown = view(state, "L1", "S1", POLICY)
        assert [(m["month"], m["failed"], m["lfr_penalty"], m["service_downgrade"]) for m in shown["months"]] == [
            ("2026-11", 3, 0.5, False),
            ("2026-12", 3, 0.5, True),
        ]
        assert shown["downgraded"] and shown["lfr_penalty_total"] == 1.0


def test_penalised_months_with_a_gap_are_no_downgrade():
    alerts, _ = fold(
        [failure(f"a{i}", "2026-10-10T00:00:00Z") for i in range(3)]
        + [failure(f"b{i}", "2026-12-10T00:00:00Z") for i in range(3)]
    )
    assert [a["kind"] for a in alerts] == ["LFR_PENALTY", "LFR_PENALTY"]


def test_a_year_boundary_is_a_run_too():
    alerts, _ = fold(
        [failure(f"a{i}", "2026-12-10T00:00:00Z") for i in range(3)]
        + [failure(f"b{i}", "2027-01-10T00:00:00Z") for i in range(3)]
    )
    assert ("SERVICE_DOWNGRADE", "2027-01") in [(a["kind"], a["month"]) for a in alerts]


def test_only_failed_first_verdicts_count():
    base = {
        "license_id": "L1",
        "store_id": "S1",
        "event_id": "e1",
        "reason": "USED_BY_LICENSE",
        "tracking_no": "RR1",
        "decided_at": "2026-11-01T00:00:00.000Z",
    }
    assert failure_of({**base, "verdict": "duplicate", "replay": False}) == Failure(
        "L1", "S1", "e1", "duplicate", "USED_BY_LICENSE", "RR1", "2026-11-01T00:00:00.000Z"
    )
    assert failure_of({**base, "verdict": "frozen", "replay": False}) is not None
    # An event-id replay is the same failure (deduplicated by count): after a crash at least once
    # it may be the only announcement of a decision.
    assert failure_of({**base, "verdict": "duplicate", "replay": True}) == failure_of(
        {**base, "verdict": "duplicate", "replay": False}
    )
    assert failure_of({**base, "verdict": "accepted", "replay": False}) is None
    assert failure_of({**base, "verdict": "invalid", "replay": False}) is None
    assert failure_of({"verdict": "duplicate", "replay": False}) is None


def test_months_beyond_those_kept_are_dropped_oldest_first():
    policy = PerformancePolicy(keep_months=2)
    _, s = fold([failure("a", "2026-09-10T00:00:00Z"), failure("b", "2026-10-10T00:00:00Z")], policy)
    _, s = step(s, failure("c", "2026-11-10T00:00:00Z"), policy)
    assert list(s["months"]) == ["2026-10", "2026-11"]
    late, s2 = step(s, failure("d", "2026-08-10T00:00:00Z"), policy)
    assert late == [] and s2 is s


def test_store_keys_keep_licence_and_store_apart():
    assert store_key("L1", "S1") != store_key("L1S", "1")
    assert store_key('a","b', "c") != store_key("a", 'b","c')


# --- property: any delivery order, any re-deliveries: the model's counts and alerts -------------

months = st.sampled_from(["2026-10", "2026-11", "2026-12", "2027-01"])
events = st.lists(st.tuples(st.integers(0, 12), months, st.sampled_from(["RR1", "RR2"])), min_size=0, max_size=40)


def model(distinct: set[tuple[str, str, str]], policy: PerformancePolicy) -> tuple[dict[str, int], set[str]]:
    """Written from the spec: counts per month of distinct (event id, number); alert ids expected."""
    per_month: dict[str, int] = defaultdict(int)
    for _, _, month in distinct:
        per_month[month] += 1
    bad = {m for m, n in per_month.items() if n >= policy.failures_for_penalty}
    expected = {f"L1/S1/{m}/LFR_PENALTY" for m in bad}
    for m in bad:
        year, mon = int(m[:4]), int(m[5:])
        before = f"{year - (mon == 1):04d}-{12 if mon == 1 else mon - 1:02d}"
        if before in bad:
            expected.add(f"L1/S1/{m}/SERVICE_DOWNGRADE")
    return dict(per_month), expected


@settings(max_examples=300)
@given(events, st.randoms(use_true_random=False))
def test_counts_and_alerts_match_the_model_in_any_order_with_redeliveries(raw, rnd):
    failures = [failure(f"e{i}", f"{m}-15T00:00:00Z", no=no) for i, m, no in raw]
    delivered = failures + [rnd.choice(failures) for _ in range(len(failures) // 2)] if failures else []
    rnd.shuffle(delivered)
    alerts, state = fold(delivered)
    distinct = {(f.event_id, f.tracking_no, f.decided_at[:7]) for f in failures}
    per_month, expected = model(distinct, POLICY)
    assert {m: e["failed"] for m, e in state.get("months", {}).items()} == per_month
    ids = [a["alert_id"] for a in alerts]
    assert len(ids) == len(set(ids))  # each alert once
    assert set(ids) == expected
    for a in alerts:  # each alert names failures of its own months that were counted
        assert len(a["event_ids"]) == POLICY.failures_for_penalty * (
            1 if a["kind"] == AlertKind.LFR_PENALTY else POLICY.months_for_downgrade
        )


@settings(max_examples=300)
@given(events, st.randoms(use_true_random=False), st.data())
def test_a_crash_that_loses_the_summarys_tail_but_keeps_its_marks_still_counts_each_failure_once(raw, rnd, data):
    """The shell's writes, modelled: per failure the summary, then its mark (two keys). A crash at
    position k keeps every mark written (RocksDB) but the summary of an earlier position j (the
    changelog's tail replayed over it; the offsets committed, c <= j + 1, were flushed first);
    reading resumes at c. Each distinct failure is counted once all the same."""
    failures = [failure(f"e{i}", f"{m}-15T00:00:00Z", no=no) for i, m, no in raw]
    topic = failures + [rnd.choice(failures) for _ in range(len(failures) // 2)] if failures else []
    rnd.shuffle(topic)
    if not topic:
        return
    crash = data.draw(st.integers(0, len(topic) - 1))
    kept = data.draw(st.integers(-1, crash))  # the summary of after position `kept` survives
    committed = data.draw(st.integers(0, kept + 1))
    state: dict = {}
    marks: dict[bytes, int] = {}
    history: list[dict] = [{}]  # the summary after each position (history[p + 1])

    def process(at: int, f: Failure) -> None:
        nonlocal state
        counted = count(state, f, POLICY, at, marks.get(mark_of(f, POLICY)))  # type: ignore[arg-type]
        state = counted.state  # type: ignore[assignment]
        if counted.mark is not None:
            marks[counted.mark] = at

    for at in range(crash + 1):
        process(at, topic[at])
        history.append(state)
    state = history[kept + 1]  # the crash: the summary rolls back, the marks stay
    for at in range(committed, len(topic)):
        process(at, topic[at])
    distinct = {(f.event_id, f.tracking_no, f.decided_at[:7]) for f in failures}
    per_month, _ = model(distinct, POLICY)
    assert {m: e["failed"] for m, e in state.get("months", {}).items()} == per_month
