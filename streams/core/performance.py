"""Store performance: failed shipments per store per calendar month, penalties and downgrades.

Pure: `count(state, failure, policy) -> (alerts, new_state)` folds one failed verdict into a
store's state; `view(state, policy)` is what `GET /stores/{id}/performance` shows. A store is
(licence, store id). A failed shipment is a `duplicate` or `frozen` verdict, counted once per
(event id, number) however often it is delivered: an event-id replay (rule 2) repeats a failure
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
    # [event id, tracking number] of the month's failures, in the order counted: an event id is
    # unique per number only (rule 2), so two numbers' failures may share one.
    ids: list[list[str]]
    reasons: dict[str, int]  # reason -> failures


class StoreState(TypedDict, total=False):
    license: str
    store: str
    months: dict[str, Month]  # "YYYY-MM" -> the month's failures
    alerted: list[str]  # "YYYY-MM/KIND" of every alert emitted


def store_key(license_id: str, store_id: str) -> bytes:
    """The key of a store in the stores table and on `stores.alerts`: licence and store id.

    JSON, so that no licence or store id (which may hold any character) can make two stores one key."""
    return f'["{_escape(license_id)}","{_escape(store_id)}"]'.encode()


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
    state: StoreState | None, failure: Failure, policy: PerformancePolicy
) -> tuple[list[dict[str, Any]], StoreState]:
    """Count one failure; returns the alerts this failure triggers (usually none) and the new state.

    Returns the same state object when nothing changed (an event id already counted, or a month
    older than those kept), so the shell can skip the write.
    """
    state = state if state is not None else {}
    month = month_of(failure.decided_at, policy.timezone)
    months = state.get("months", {})
    known = months.get(month)
    mark = [failure.event_id, failure.tracking_no]
    if known is not None and mark in known["ids"]:
        return [], state  # delivered again (a replay, a re-read after a crash): counted once
    if months and len(months) >= policy.keep_months and month < min(months):
        return [], state  # older than every month kept: nothing to show it in
    reasons = dict(known["reasons"]) if known else {}
    reasons[failure.reason] = reasons.get(failure.reason, 0) + 1
    entry: Month = {"ids": [*(known["ids"] if known else ()), mark], "reasons": reasons}
    new_months = {**months, month: entry}
    while len(new_months) > policy.keep_months:
        del new_months[min(new_months)]
    new: StoreState = {
        **state,
        "license": failure.license_id,
        "store": failure.store_id,
        "months": dict(sorted(new_months.items())),
    }
    alerted = state.get("alerted", [])
    alerts: list[dict[str, Any]] = []
    if len(entry["ids"]) == policy.failures_for_penalty:
        alerts.append(_alert(new, month, AlertKind.LFR_PENALTY, policy))
    if len(entry["ids"]) >= policy.failures_for_penalty:
        # Every run of penalised months that this month completes, including one it closes a gap
        # in (verdicts of two months can arrive in any order): dated its last month.
        n = policy.months_for_downgrade
        for last in (_shift(month, k) for k in range(n)):
            run = [_shift(last, -k) for k in range(n)]
            if all(_penalised(new["months"].get(m), policy) for m in run):
                alerts.append(_alert(new, last, AlertKind.SERVICE_DOWNGRADE, policy))
    alerts = [a for a in alerts if f"{a['month']}/{a['kind']}" not in alerted]
    if alerts:
        new["alerted"] = [*alerted, *(f"{a['month']}/{a['kind']}" for a in alerts)]
    return alerts, new


def _penalised(month: Month | None, policy: PerformancePolicy) -> bool:
    return month is not None and len(month["ids"]) >= policy.failures_for_penalty


def _alert(state: StoreState, month: str, kind: str, policy: PerformancePolicy) -> dict[str, Any]:
    entry = state["months"][month]
    out: dict[str, Any] = {
        "alert_id": f"{state['license']}/{state['store']}/{month}/{kind}",
        "license_id": state["license"],
        "store_id": state["store"],
        "month": month,
        "kind": kind,
        "count": len(entry["ids"]),
        # The failures that crossed the threshold (the first ones of the month).
        "event_ids": [e for e, _ in entry["ids"][: policy.failures_for_penalty]],
        "timezone": policy.timezone,
    }
    if kind == AlertKind.LFR_PENALTY:
        out["lfr_penalty"] = policy.penalty
    else:
        out["months"] = [_shift(month, -k) for k in range(policy.months_for_downgrade - 1, -1, -1)]
        out["event_ids"] = [
            e for m in out["months"] for e, _ in state["months"][m]["ids"][: policy.failures_for_penalty]
        ]
    return out


def view(state: StoreState | None, license_id: str, store_id: str, policy: PerformancePolicy) -> dict[str, Any]:
    """GET /stores/{id}/performance: every kept month, oldest first, with count, penalty, downgrade."""
    state = state or {}
    kept = state.get("months", {})
    months = []
    for month, entry in kept.items():
        penalised = _penalised(entry, policy)
        run = (kept.get(_shift(month, -k)) for k in range(policy.months_for_downgrade))
        months.append(
            {
                "month": month,
                "failed": len(entry["ids"]),
                "by_reason": dict(sorted(entry["reasons"].items())),
                "lfr_penalty": policy.penalty if penalised else 0.0,
                "service_downgrade": all(_penalised(m, policy) for m in run),
                "failures": [{"event_id": e, "tracking_no": n} for e, n in entry["ids"]],
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
