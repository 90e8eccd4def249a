"""Store performance: failed shipments per store per calendar month, penalties and downgrades.

Pure: `count(state, failure, policy, at, mark_at) -> Counted` folds one failed verdict into a store's
summary; `view(state, ...)` is what `GET /stores/{id}/performance` shows; `fold` counts a whole
sequence in memory (the auditor's reference). A store is (licence, store id). A failed shipment is
a `duplicate` or `frozen` verdict, counted once per (event id, number) however often it is
delivered, by remembering each counted failure under its own small key (its mark) beside the
store's summary, so that neither the summary nor the cost of a failure grows with the store: an event-id replay (rule 2) repeats a failure
already counted, unless at least once lost its first announcement in a crash — then the replay is
the only one there is, and it carries the original decision's time. Its month is the month of the verdict's
`decided_at` (the submission's own time, never the wall clock) in the platform's time zone.

`failures_for_penalty` or more failures in a month cost an LFR penalty for that month; that many
in `months_for_downgrade` calendar months in a row is a service downgrade, dated the last month of
the run. Each alert is emitted once per (store, month, kind): the state remembers what it
emitted, and the alert carries an `alert_id` built from those three, so a consumer can drop the
copy a crash between publishing and the changelog may re-send.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, NamedTuple, TypedDict
from zoneinfo import ZoneInfo

from .rules import Verdict


class AlertKind:
    LFR_PENALTY: Final = "LFR_PENALTY"
    SERVICE_DOWNGRADE: Final = "SERVICE_DOWNGRADE"


@dataclass(frozen=True, slots=True)
class PerformancePolicy:
    """Knobs of store performance (config: [performance])."""

    timezone: str = "Asia/Shanghai"  # the platform's calendar months
    failures_for_penalty: int = 3
    penalty: float = 0.5  # LFR penalty of a month with that many failures
    months_for_downgrade: int = 2  # penalised months in a row that downgrade the store
    keep_months: int = 13  # months kept per store (older ones dropped, with their event ids)


class Failure(NamedTuple):
    """A failed shipment, as far as store performance needs it."""

    license_id: str
    store_id: str
    event_id: str
    verdict: str
    reason: str
    tracking_no: str
    decided_at: str  # RFC 3339, from the verdict


class Month(TypedDict):
    failed: int  # failures counted in the month
    reasons: dict[str, int]  # reason -> failures
    # [event id, tracking number] of the month's first `failures_for_penalty` failures, in the
    # order counted (the alerts name them): an event id is unique per number only (rule 2), so
    # two numbers' failures may share one.
    first: list[list[str]]


class StoreState(TypedDict, total=False):
    """A store's summary: the same size whatever its failures (the marks are apart, see `Counted`)."""

    license: str
    store: str
    months: dict[str, Month]  # "YYYY-MM" -> the month's failures
    alerted: list[str]  # "YYYY-MM/KIND" of every alert emitted in the months kept
    # The mark of the failure counted last: the summary is written before that mark, so a crash
    # between the two writes still knows the failure (and the shell writes the mark it missed).
    last: str
    # The position (the re-keyed topic's offset) of the failure counted last. A store's failures
    # arrive in order on one partition, so one at or before it is a re-read, and a mark written
    # after it (`mark_at` above it) belongs to a summary that a crash lost: not to be trusted.
    at: int


class Counted(NamedTuple):
    """What counting one failure does to a store.

    The store's summary is one small value; each failure counted is remembered apart, by its mark
    (`mark_key`), so that a failure delivered again is recognised by one lookup and counting costs
    the same at the first failure of a month and at the 200,000th."""

    alerts: list[dict[str, Any]]  # alerts this failure triggers (usually none)
    state: StoreState  # the new summary: the same object when the failure was not counted
    mark: bytes | None  # the key to remember this failure by; None: not counted
    forget: tuple[str, ...]  # months dropped from the summary, whose marks can go (`month_prefix`)


def store_key(license_id: str, store_id: str) -> bytes:
    """The key of a store in the stores table and on `stores.alerts`: licence and store id.

    JSON, so that no licence or store id (which may hold any character) can make two stores one key."""
    return f'["{_escape(license_id)}","{_escape(store_id)}"]'.encode()


def mark_key(failure: Failure, month: str) -> bytes:
    """The key a counted failure is remembered by, beside its store's (same JSON, more members):
    the store's marks of a month share the prefix `month_prefix`, so they are listed and dropped
    by one range of keys."""
    parts = (failure.license_id, failure.store_id, month, failure.event_id, failure.tracking_no)
    return ("[" + ",".join(f'"{_escape(p)}"' for p in parts) + "]").encode()


def month_prefix(license_id: str, store_id: str, month: str) -> bytes:
    """The prefix of every mark of (store, month)."""
    return f'["{_escape(license_id)}","{_escape(store_id)}","{month}",'.encode()


def marked(key: bytes) -> tuple[str, str]:
    """(event id, tracking number) of a mark's key."""
    parts = json.loads(key)
    return parts[3], parts[4]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def failure_of(verdict: Any) -> Failure | None:
    """The failed shipment a verdict is, or None: accepted, invalid, or no verdict of ours at all.

    The verdict topics are read by more than the worker that writes them, and anyone with access
    can write to them: a record that is not a readable failed verdict (a field missing or not
    text, a `decided_at` that is no time) is None here, for the caller to count and skip, never an
    exception that would stop a worker on every restart."""
    if not isinstance(verdict, dict) or verdict.get("verdict") not in (Verdict.DUPLICATE, Verdict.FROZEN):
        return None
    return readable_failure([verdict.get(name) for name in Failure._fields])


def readable_failure(values: Any) -> Failure | None:
    """A `Failure` from its fields in order (a verdict's, or a failures-by-store record's JSON
    array), or None when they are not all non-empty text with a readable `decided_at`."""
    if not isinstance(values, list) or len(values) != len(Failure._fields):
        return None
    if not all(isinstance(v, str) and v for v in values):
        return None
    failure = Failure(*values)
    if failure.verdict not in (Verdict.DUPLICATE, Verdict.FROZEN):
        return None
    try:
        month_of(failure.decided_at, "UTC")
    except (ValueError, OverflowError):
        return None
    return failure


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def month_of(decided_at: str, timezone: str) -> str:
    """`YYYY-MM` of an RFC 3339 time in the given IANA time zone."""
    when = datetime.fromisoformat(decided_at.replace("Z", "+00:00")).astimezone(_zone(timezone))
    return f"{when.year:04d}-{when.month:02d}"


def _shift(month: str, by: int) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    index = year * 12 + (mon - 1) + by
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def count(
    state: StoreState | None, failure: Failure, policy: PerformancePolicy, at: int, mark_at: int | None
) -> Counted:
    """Count one failure into its store's summary.

    `at`: the failure's position in the store's input (its offset on the re-keyed topic, which
    only grows); `mark_at`: the position its mark (`mark_of`) was counted at, None without one.

    Counted once however it comes again: a re-read after a crash (at or before the summary's
    `at`), another copy later (a replay of its event id, a verdict published twice: its mark).
    The summary and the marks are separate writes: after a crash, a mark may outlive the summary
    that counted it (the changelog's tail replayed over it); such a mark is past the summary's
    `at` and is not believed, so its failure is counted again, once, when it is re-read."""
    state = state if state is not None else {}
    month = month_of(failure.decided_at, policy.timezone)
    months = state.get("months", {})
    mark = mark_key(failure, month)
    counted_up_to = state.get("at", -1)
    seen = mark_at is not None and mark_at <= counted_up_to
    if at <= counted_up_to or seen or state.get("last") == mark.decode():
        return Counted([], state, None, ())  # delivered again: counted once
    if months and len(months) >= policy.keep_months and month < min(months):
        return Counted([], state, None, ())  # older than every month kept: nothing to show it in
    known = months.get(month)
    reasons = dict(known["reasons"]) if known else {}
    reasons[failure.reason] = reasons.get(failure.reason, 0) + 1
    first = known["first"] if known else []
    if len(first) < policy.failures_for_penalty:
        first = [*first, [failure.event_id, failure.tracking_no]]
    entry: Month = {"failed": (known["failed"] if known else 0) + 1, "reasons": reasons, "first": first}
    new_months = {**months, month: entry}
    dropped = []
    while len(new_months) > policy.keep_months:
        oldest = min(new_months)
        dropped.append(oldest)
        del new_months[oldest]
    new: StoreState = {
        **state,
        "license": failure.license_id,
        "store": failure.store_id,
        "months": dict(sorted(new_months.items())),
        "last": mark.decode(),
        "at": at,
    }
    alerted = [a for a in state.get("alerted", []) if a[:7] not in dropped]
    alerts: list[dict[str, Any]] = []
    if entry["failed"] == policy.failures_for_penalty:
        alerts.append(_alert(new, month, AlertKind.LFR_PENALTY, policy))
    if entry["failed"] >= policy.failures_for_penalty:
        # Every run of penalised months that this month completes, including one it closes a gap
        # in (verdicts of two months can arrive in any order): dated its last month.
        n = policy.months_for_downgrade
        for last in (_shift(month, k) for k in range(n)):
            run = [_shift(last, -k) for k in range(n)]
            if all(_penalised(new["months"].get(m), policy) for m in run):
                alerts.append(_alert(new, last, AlertKind.SERVICE_DOWNGRADE, policy))
    alerts = [a for a in alerts if f"{a['month']}/{a['kind']}" not in alerted]
    alerted += [f"{a['month']}/{a['kind']}" for a in alerts]
    if alerted or "alerted" in state:
        new["alerted"] = alerted
    return Counted(alerts, new, mark, tuple(dropped))


def mark_of(failure: Failure, policy: PerformancePolicy) -> bytes:
    """The key `count` remembers `failure` by once it is counted."""
    return mark_key(failure, month_of(failure.decided_at, policy.timezone))


def fold(
    failures: Iterable[Failure], policy: PerformancePolicy
) -> tuple[list[dict[str, Any]], dict[bytes, StoreState]]:
    """Every failure counted into its store, as the worker does, in memory (each at its place in
    the sequence): the alerts in the order they were called for and each store's summary. The
    auditor's and the tests' reference."""
    states: dict[bytes, StoreState] = {}
    marks: dict[bytes, int] = {}
    alerts: list[dict[str, Any]] = []
    for at, failure in enumerate(failures):
        key = store_key(failure.license_id, failure.store_id)
        counted = count(states.get(key), failure, policy, at, marks.get(mark_of(failure, policy)))
        states[key] = counted.state
        alerts += counted.alerts
        if counted.mark is not None:
            marks[counted.mark] = at
        for month in counted.forget:
            prefix = month_prefix(failure.license_id, failure.store_id, month)
            marks = {m: n for m, n in marks.items() if not m.startswith(prefix)}
    return alerts, states


def upgrade(state: Mapping[str, Any], policy: PerformancePolicy) -> tuple[StoreState, list[bytes]]:
    """A summary written before the marks were apart (each month held every failure's
    [event id, number] under "ids"): the summary of today and the marks of those failures, all
    counted at position -1 (before any the summary will see)."""
    months: dict[str, Month] = {}
    marks = []
    for month, old in state.get("months", {}).items():
        ids = old.get("ids")
        if ids is None:
            months[month] = old
            continue
        months[month] = {"failed": len(ids), "reasons": old["reasons"], "first": ids[: policy.failures_for_penalty]}
        for event_id, number in ids:
            marks.append(mark_key(Failure(state["license"], state["store"], event_id, "", "", number, ""), month))
    return {**state, "months": months, "at": -1}, marks  # type: ignore[typeddict-item]


def outdated(state: Mapping[str, Any]) -> bool:
    """Is this a summary of before the marks were apart (see `upgrade`)?"""
    return any("ids" in m for m in state.get("months", {}).values())


def _penalised(month: Month | None, policy: PerformancePolicy) -> bool:
    return month is not None and month["failed"] >= policy.failures_for_penalty


def _alert(state: StoreState, month: str, kind: str, policy: PerformancePolicy) -> dict[str, Any]:
    entry = state["months"][month]
    out: dict[str, Any] = {
        "alert_id": f"{state['license']}/{state['store']}/{month}/{kind}",
        "license_id": state["license"],
        "store_id": state["store"],
        "month": month,
        "kind": kind,
        "count": entry["failed"],
        # The failures that crossed the threshold (the first ones of the month).
        "event_ids": [e for e, _ in entry["first"][: policy.failures_for_penalty]],
        "timezone": policy.timezone,
    }
    if kind == AlertKind.LFR_PENALTY:
        out["lfr_penalty"] = policy.penalty
    else:
        out["months"] = [_shift(month, -k) for k in range(policy.months_for_downgrade - 1, -1, -1)]
        out["event_ids"] = [
            e for m in out["months"] for e, _ in state["months"][m]["first"][: policy.failures_for_penalty]
        ]
    return out


def view(
    state: StoreState | None,
    license_id: str,
    store_id: str,
    policy: PerformancePolicy,
    listed: Mapping[str, list[tuple[str, str]]] | None = None,
) -> dict[str, Any]:
    """GET /stores/{id}/performance: every kept month, oldest first, with count, penalty, downgrade.

    `listed`: month -> the (event id, number) failures to list (the shell reads them from the
    marks, up to a limit); without it, a month lists the failures its summary keeps."""
    state = state or {}
    kept = state.get("months", {})
    months = []
    for month, entry in kept.items():
        penalised = _penalised(entry, policy)
        run = (kept.get(_shift(month, -k)) for k in range(policy.months_for_downgrade))
        failures = listed[month] if listed is not None and month in listed else [(e, n) for e, n in entry["first"]]
        months.append(
            {
                "month": month,
                "failed": entry["failed"],
                "by_reason": dict(sorted(entry["reasons"].items())),
                "lfr_penalty": policy.penalty if penalised else 0.0,
                "service_downgrade": all(_penalised(m, policy) for m in run),
                "failures": [{"event_id": e, "tracking_no": n} for e, n in failures],
                "failures_listed": len(failures),
            }
        )
    return {
        "license_id": license_id,
        "store_id": store_id,
        "timezone": policy.timezone,
        "failures_for_penalty": policy.failures_for_penalty,
        "months": months,
        "lfr_penalty_total": sum(m["lfr_penalty"] for m in months),
        "downgraded": any(m["service_downgrade"] for m in months),
    }
