"""Cross-licence reuse: numbers claimed by more than one licence (admin only).

The seed's forwarder number-pool reuse: one forwarder hands the same tracking number to two
customers, each pushes it under their own licence, and the second one's shipment fails. The
report groups such numbers by carrier and by the month the reuse happened, so an operator can
see which forwarder (carrier) reuses numbers, and how often.

A licence *claims* a number by submitting it: every decided use, whatever its verdict, and what
outlives the bounded list of uses (the binding, the blacklist and the freezes, which only a
duplicate creates). A reservation is not a claim: it ships nothing, and a reserve on a number
another licence uses is refused anyway.

Pure: states in, rows out; the month is in the time zone passed in (the performance one).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from .normalize import format_ms
from .performance import month_of
from .rules import State, Use, Verdict

NO_CARRIER: Final = "UNBOUND"  # a reused number nobody holds any more (the carrier lives in the binding)

COLUMNS: Final = (
    "tracking_no",
    "carrier_code",
    "month",
    "reused_at",
    "licenses",
    "bound_license",
    "uses",
    "failed",
)


def claimants(state: State | None) -> list[str]:
    """The licences that claimed the number, in the order of their first recorded claim."""
    if not state:
        return []
    seen: dict[str, None] = {}
    binding = state.get("binding")
    for row in state.get("uses", ()):
        seen.setdefault(row[0], None)
    # What outlives the bounded uses: after them, as their first claim is no longer known.
    if binding is not None:
        seen.setdefault(binding["license"], None)
    for lic in state.get("blacklist", ()):
        seen.setdefault(lic, None)
    for lic in state.get("frozen", {}):
        seen.setdefault(lic, None)
    return list(seen)


def newly_reused(before: State | None, license_id: str) -> bool:
    """Whether a decision on `before` for `license_id` makes the number claimed by a second licence
    (the moment the processor adds it to the reuse index). Every decision that changes a state
    records a use by its licence, so the claimants after it are those before plus `license_id`."""
    if not before:
        return False
    found = claimants(before)
    return len(found) == 1 and found[0] != license_id


def reuse_entry(number: str, state: State, timezone: str) -> dict[str, Any] | None:
    """One row of the report (`uses` and `failed` count the recorded, bounded uses), or None when
    fewer than two licences claim the number."""
    licenses = claimants(state)
    if len(licenses) < 2:
        return None
    uses = [Use(*row) for row in state.get("uses", ())]
    # The reuse is the first recorded use by a licence other than the first one; if the uses that
    # showed it were trimmed, the oldest use kept is the best time known.
    first = uses[0].license if uses else licenses[0]
    reused = next((u for u in uses if u.license != first), uses[0] if uses else None)
    binding = state.get("binding")
    reused_at = format_ms(reused.at_ms) if reused is not None else None
    return {
        "tracking_no": number,
        "carrier_code": binding["carrier"] if binding is not None else NO_CARRIER,
        "month": month_of(reused_at, timezone) if reused_at is not None else None,
        "reused_at": reused_at,
        "licenses": licenses,
        "bound_license": binding["license"] if binding is not None else None,
        "uses": len(uses),
        "failed": sum(1 for u in uses if u.verdict in (Verdict.DUPLICATE, Verdict.FROZEN)),
    }


def report(
    entries: Iterable[dict[str, Any]], *, month: str | None = None, carrier: str | None = None
) -> dict[str, Any]:
    """The rows (filtered by month and carrier) and their summary by (carrier, month): how many
    numbers were reused and how many licences they touched."""
    rows = sorted(
        (
            e
            for e in entries
            if (month is None or e["month"] == month) and (carrier is None or e["carrier_code"] == carrier)
        ),
        key=lambda e: (e["carrier_code"], e["month"] or "", e["tracking_no"]),
    )
    groups: dict[tuple[str, str | None], dict[str, Any]] = {}
    for row in rows:
        group = groups.setdefault(
            (row["carrier_code"], row["month"]),
            {"carrier_code": row["carrier_code"], "month": row["month"], "numbers": 0, "licenses": set()},
        )
        group["numbers"] += 1
        group["licenses"].update(row["licenses"])
    summary = [{**g, "licenses": len(g["licenses"])} for g in groups.values()]
    return {"month": month, "carrier_code": carrier, "groups": summary, "items": rows}
