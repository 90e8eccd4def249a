"""Reconciliation: a seller's ERP log against the numbers bound to their licence, by fingerprint.

Pure: the ERP rows come parsed (streams.core.events), the states are passed in, "now" too. Each
worker reconciles the rows whose numbers live in its partitions together with its part of the
licence's used-list index; `merge` joins the workers' reports.

What a seller gets (one finding per row, `kind`):
- `erp_not_accepted`: the ERP shipped it, the guard never bound it to the licence — with the last
  verdict and reason the licence got on that number, or `NOT_SUBMITTED`, and the number's status
  for the licence now (`bound` means another licence holds it);
- `accepted_not_in_erp`: bound to the licence, on no row of the ERP log;
- `differs`: bound to the licence with another carrier or ship time than the ERP row
  (`differs_in`), i.e. another fingerprint;
- `erp_invalid`: a row the guard would refuse (its `invalid` reason);
matched rows and rows outside the month are only counted.

A month (`YYYY-MM`, ship time in the platform's time zone) limits both sides; an ERP row outside
it still counts when the number's binding is inside it (the ship times differ: that is a finding
of this month).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .normalize import fingerprint, format_ms
from .performance import month_of
from .queries import status
from .rules import Binding, State, Use

KINDS = ("erp_not_accepted", "accepted_not_in_erp", "differs", "erp_invalid")  # listed, in this order
MAX_FINDINGS = 10_000  # findings listed in one report (the counts are always whole)
_KIND_ORDER = {kind: i for i, kind in enumerate(KINDS)}
COUNTED = (*KINDS, "matched", "outside_month")
COLUMNS = (
    "kind",
    "tracking_no",
    "line",
    "differs_in",
    "verdict",
    "reason",
    "status",
    "erp_carrier_code",
    "erp_shipped_at",
    "erp_store_id",
    "erp_order_id",
    "erp_fingerprint",
    "accepted_carrier_code",
    "accepted_shipped_at",
    "accepted_store_id",
    "accepted_order_id",
    "accepted_fingerprint",
)


class ErpRow(NamedTuple):
    """One parsed, normalized row of the ERP log (`line` as the file numbers it)."""

    line: int
    tracking_no: str
    carrier_code: str
    shipped_ms: int
    store_id: str
    order_id: str


@dataclass
class Report:
    findings: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    unlisted: int = 0  # findings another worker found but did not list (its share was cut)

    def as_dict(self, license_id: str, month: str | None, max_findings: int = MAX_FINDINGS) -> dict[str, Any]:
        """The counts in full, the first `max_findings` findings in the report's order: a file of
        junk rows must not answer with a finding per row (hundreds of MB). Each worker's share is
        cut the same way, so the merged first findings are the same as if nothing had been cut."""
        listed = sorted(self.findings, key=_finding_order)[:max_findings]
        return {
            "license_id": license_id,
            "month": month,
            "counts": {kind: self.counts.get(kind, 0) for kind in COUNTED},
            "findings": listed,
            "findings_total": len(self.findings) + self.unlisted,
            "findings_truncated": len(self.findings) + self.unlisted > len(listed),
        }


def ship_month(shipped_ms: int, timezone: str) -> str:
    return month_of(format_ms(shipped_ms), timezone)


def reconcile(
    license_id: str,
    rows: Iterable[ErpRow],
    states: Mapping[str, State | None],
    used: Iterable[tuple[str, State]],
    *,
    month: str | None,
    timezone: str,
    now_ms: int,
) -> Report:
    """`rows`: the ERP rows of these partitions; `states`: the state of each of their numbers;
    `used`: (number, state) for the licence's index entries in these partitions."""

    def in_month(ms: int) -> bool:
        return month is None or ship_month(ms, timezone) == month

    report = Report()
    in_erp: set[str] = set()
    for row in rows:
        in_erp.add(row.tracking_no)
        state = states.get(row.tracking_no)
        binding = _own_binding(state, license_id)
        if not in_month(row.shipped_ms) and (binding is None or not in_month(binding["shipped_ms"])):
            report.counts["outside_month"] += 1
            continue
        erp_fp = fingerprint(row.carrier_code, row.tracking_no, row.shipped_ms)
        if binding is None:
            verdict, reason = _last_verdict(state, license_id)
            found = _finding("erp_not_accepted", row.tracking_no, row=row, erp_fp=erp_fp)
            found.update(verdict=verdict, reason=reason, status=status(state, license_id, now_ms))
        else:
            accepted_fp = fingerprint(binding["carrier"], row.tracking_no, binding["shipped_ms"])
            if accepted_fp == erp_fp:
                report.counts["matched"] += 1
                continue
            differs = [
                name
                for name, same in (
                    ("carrier_code", binding["carrier"] == row.carrier_code),
                    ("shipped_at", binding["shipped_ms"] == row.shipped_ms),
                )
                if not same
            ]
            found = _finding("differs", row.tracking_no, row=row, erp_fp=erp_fp, binding=binding)
            found["differs_in"] = "+".join(differs)
        report.counts[found["kind"]] += 1
        report.findings.append(found)
    for number, state in used:
        binding = _own_binding(state, license_id)
        if binding is None or number in in_erp or not in_month(binding["shipped_ms"]):
            continue  # a stale index entry, on the ERP log, or another month
        report.counts["accepted_not_in_erp"] += 1
        report.findings.append(_finding("accepted_not_in_erp", number, binding=binding))
    return report


def invalid_row(line: int, tracking_no: str, reason: str, error: str) -> dict[str, Any]:
    """A row the guard would refuse (a Rejection's reason and error), as a finding."""
    found = _finding("erp_invalid", tracking_no)
    found.update(line=line, verdict="invalid", reason=reason, status=error)
    return found


def merge(reports: Iterable[Report]) -> Report:
    """The workers' reports as one, findings in a stable order (kind, number, ERP line)."""
    out = Report()
    for r in reports:
        out.findings.extend(r.findings)
        out.counts.update(r.counts)
        out.unlisted += r.unlisted
    out.findings.sort(key=_finding_order)
    return out


def _finding_order(finding: dict[str, Any]) -> tuple[int, str, int]:
    return (_KIND_ORDER[finding["kind"]], finding["tracking_no"], finding["line"] or 0)


def _own_binding(state: State | None, license_id: str) -> Binding | None:
    binding = state.get("binding") if state else None
    return binding if binding is not None and binding["license"] == license_id else None


def _last_verdict(state: State | None, license_id: str) -> tuple[str, str]:
    """The licence's own last verdict on the number (from the bounded list of uses)."""
    for raw in reversed(state.get("uses", []) if state else []):
        use = Use(*raw)
        if use.license == license_id:
            return use.verdict, use.reason
    return "", "NOT_SUBMITTED"


def _finding(
    kind: str, number: str, *, row: ErpRow | None = None, erp_fp: str = "", binding: Binding | None = None
) -> dict[str, Any]:
    found: dict[str, Any] = dict.fromkeys(COLUMNS, "")
    found.update(kind=kind, tracking_no=number, line=row.line if row else None)
    if row is not None:
        found.update(
            erp_carrier_code=row.carrier_code,
            erp_shipped_at=format_ms(row.shipped_ms),
            erp_store_id=row.store_id,
            erp_order_id=row.order_id,
            erp_fingerprint=erp_fp,
        )
    if binding is not None:
        found.update(
            accepted_carrier_code=binding["carrier"],
            accepted_shipped_at=format_ms(binding["shipped_ms"]),
            accepted_store_id=binding["store"],
            accepted_order_id=binding["order"],
            accepted_fingerprint=fingerprint(binding["carrier"], number, binding["shipped_ms"]),
        )
    return found
