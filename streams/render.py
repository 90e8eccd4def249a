"""What the CLI shows people: rich renderables built from the HTTP API's JSON, the audit report,
the settings and the verdicts, in Simplified Chinese or English.

Pure: JSON and a language in, renderables out; tests print them to a recording Console, with no
broker and no worker. Every code (reason, check status, reconciliation finding, alert) is shown
with what it means and what to do next, in the words of streams/i18n/reasons.json, which the web
console shows too; the CLI's own labels are in streams/i18n/cli.json. Data always goes in as
`Text`, never as markup: a store id such as "[S1]" prints as typed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .i18n import explain, t

STYLES = {
    "accepted": "green",
    "available": "green",
    "matched": "green",
    "duplicate": "yellow",
    "bound": "yellow",
    "reserved": "yellow",
    "differs": "yellow",
    "erp_not_accepted": "yellow",
    "accepted_not_in_erp": "yellow",
    "frozen": "red",
    "blacklisted": "red",
    "invalid": "red",
    "erp_invalid": "red",
}


def label(key: str, lang: str, /, **values: Any) -> str:
    """One of the CLI's own messages (streams/i18n/cli.json, keys `cli.<key>`)."""
    return t(f"cli.{key}", lang, **values)


def _text(value: Any, style: str = "") -> Text:
    return Text("" if value is None else str(value), style=style)


def _time(value: Any) -> str:
    """An API time (RFC 3339, UTC, milliseconds) in the reader's own time zone (the machine's, or
    TZ), to the second, with its offset: a seller in Shanghai reads 08:00+08:00, not 00:00Z. A value
    that is no time is shown as sent."""
    if value is None:
        return ""
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if when.tzinfo is None:
        return str(value)
    return when.astimezone().isoformat(sep=" ", timespec="seconds")


def _word(kind: str, code: str, lang: str) -> Text:
    """A verdict, status or finding as a short word in `lang`, coloured by what it means."""
    try:
        shown = label(f"{kind}.{code}", lang)
    except KeyError:  # a value newer than this catalogue: shown as the API sent it
        shown = code
    return Text(shown, style=STYLES.get(code, ""))


def _table(lang: str, *columns: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold")
    for column in columns:  # too narrow a terminal folds a number or a time, never cuts it short
        table.add_column(label(f"col.{column}", lang), overflow="fold")
    return table


def _explained(meaning: str, next_step: str, lang: str) -> Text:
    return Text.assemble(meaning, "\n", (label("next", lang) + next_step, "dim"))


def legend(entries: Iterable[tuple[str, str]], lang: str) -> RenderableType | None:
    """What each code shown above means and what to do next, once per code: (as shown, its key in
    reasons.json). Codes the catalogue lacks are left out (the table shows them as sent)."""
    grid = _grid()
    for shown, key in dict.fromkeys(entries):
        explained = explain(key, lang) if key else None
        if explained is not None:
            grid.add_row(_text(shown), _explained(*explained, lang))
    if not grid.rows:
        return None
    return Group(Text(label("legend", lang), style="bold underline"), grid)


def _grid() -> Table:
    """Two columns, a label and its text; Chinese has no spaces to wrap at, so lines fold."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    return grid


def _group(*parts: RenderableType | None) -> Group:
    return Group(*(part for part in parts if part is not None))


def _title(text: str) -> Text:
    """A heading above a table (a table's own title would wrap to the table's width)."""
    return Text(text, style="bold")


# --- GET /tracking/{no} -----------------------------------------------------------------------


def diagnosis(answer: Mapping[str, Any], lang: str) -> Panel:
    """A number's binding, reservation, freezes (with their end) and blacklist, each explained,
    and the uses the caller may see."""
    facts = _grid()
    status = answer.get("status", "")
    status_text = _word("status", status, lang)
    meaning = explain(f"status.{status}", lang)
    if meaning is not None:
        status_text.append("  ").append_text(_explained(*meaning, lang))
    facts.add_row(label("col.status", lang), status_text)
    facts.add_row(label("diagnose.binding", lang), _binding(answer.get("binding"), lang))
    facts.add_row(label("diagnose.reservation", lang), _reservation(answer.get("reservation"), lang))
    freezes = answer.get("freezes") or []
    if freezes:
        lines = Text()
        for freeze in freezes:
            over = label("diagnose.freeze_active" if freeze.get("active") else "diagnose.freeze_over", lang)
            lines.append(
                label("diagnose.frozen_until", lang, licence=freeze["license_id"], until=_time(freeze["frozen_until"]))
            )
            lines.append(over + "\n", style="red" if freeze.get("active") else "dim")
        facts.add_row(
            label("diagnose.freeze", lang), lines.append_text(_reason_explained("FROZEN_AFTER_DUPLICATE", lang))
        )
    blacklisted = answer.get("blacklisted_for") or []
    if blacklisted:
        text = Text(label("diagnose.blacklisted_for", lang, licences=", ".join(blacklisted)) + "\n", style="red")
        facts.add_row(label("diagnose.blacklist", lang), text.append_text(_reason_explained("BLACKLISTED", lang)))

    uses = answer.get("uses") or []
    parts: list[RenderableType | None] = [facts]
    if uses:
        # a licence caller sees only its own uses (and a count of the others'): no licence column
        admin = answer.get("uses_by_other_licenses") is None
        columns = (
            ["time", "licence", "store", "order", "verdict", "reason"]
            if admin
            else ["time", "store", "order", "verdict", "reason"]
        )
        table = _table(lang, *columns)
        for use in uses:
            cells = {
                "time": _text(_time(use.get("at"))),
                "licence": _text(use.get("license_id")),
                "store": _text(use.get("store_id")),
                "order": _text(use.get("order_id")),
                "verdict": _word("verdict", use.get("verdict", ""), lang),
                "reason": _text(use.get("reason")),
            }
            table.add_row(*(cells[column] for column in columns))
        parts += [_title(label("diagnose.uses", lang)), table]
    else:
        parts.append(Text(label("diagnose.no_uses", lang), style="dim"))
    if answer.get("uses_by_other_licenses"):
        parts.append(Text(label("diagnose.other_uses", lang, count=answer["uses_by_other_licenses"]), style="dim"))
    parts.append(legend(((u["reason"], u["reason"]) for u in uses if u.get("reason")), lang))
    return Panel(_group(*parts), title=_text(label("diagnose.title", lang, number=answer.get("tracking_no"))))


def _reason_explained(code: str, lang: str) -> Text:
    explained = explain(code, lang)
    return _explained(*explained, lang) if explained is not None else Text(code)


def _binding(binding: Any, lang: str) -> Text:
    if binding is None:
        return Text(label("diagnose.unbound", lang), style="dim")
    if not isinstance(binding, Mapping):  # "other-license": a licence caller sees nothing of theirs
        return Text(label("diagnose.bound_elsewhere", lang), style="yellow")
    text = Text(
        label(
            "diagnose.bound_to",
            lang,
            carrier=binding.get("carrier_code"),
            store=binding.get("store_id"),
            order=binding.get("order_id"),
            shipped_at=_time(binding.get("shipped_at")),
            licence=binding.get("license_id"),
        )
    )
    if binding.get("fingerprint"):
        text.append("\n" + label("diagnose.fingerprint", lang, fingerprint=binding["fingerprint"]), style="dim")
    return text


def _reservation(reservation: Any, lang: str) -> Text:
    if reservation is None:
        return Text(label("none", lang), style="dim")
    if not isinstance(reservation, Mapping):
        return Text(label("diagnose.reserved_elsewhere", lang), style="yellow")
    return Text(
        label(
            "diagnose.reserved_for",
            lang,
            order=reservation.get("order_id"),
            store=reservation.get("store_id"),
            licence=reservation.get("license_id"),
            until=_time(reservation.get("expires_at")),
        )
    )


# --- POST /tracking/check ---------------------------------------------------------------------


def check(answer: Mapping[str, Any], lang: str) -> Group:
    """One row per number with its status; what each status means and what to do, below."""
    results = [r for r in answer.get("results") or [] if r is not None]
    licence = answer.get("license_id")
    title = (
        label("check.title_licence", lang, licence=licence, count=len(results))
        if licence
        else label("check.title", lang, count=len(results))
    )
    table = _table(lang, "number", "status")
    for result in results:
        table.add_row(_text(result.get("tracking_no")), _word("status", result.get("status", ""), lang))
    statuses = [r.get("status", "") for r in results]
    return _group(_title(title), table, legend(((_status_word(s, lang), f"status.{s}") for s in statuses), lang))


def _status_word(status: str, lang: str) -> str:
    return _word("status", status, lang).plain


# --- GET /stores/{id}/performance -------------------------------------------------------------


def performance(answer: Mapping[str, Any], lang: str) -> Group:
    """Each kept month's failures by reason, penalty and downgrade; the alerts explained."""
    title = label("performance.title", lang, store=answer.get("store_id"), licence=answer.get("license_id"))
    rule = label("performance.rule", lang, timezone=answer.get("timezone"), failures=answer.get("failures_for_penalty"))
    months = answer.get("months") or []
    if not months:
        return _group(_title(title), Text(rule, style="dim"), Text(label("performance.none", lang)))
    table = _table(lang, "month", "failed", "by_reason", "penalty", "downgrade")
    codes: list[str] = []
    for month in months:
        by_reason = month.get("by_reason") or {}
        codes += by_reason
        penalty = month.get("lfr_penalty") or 0
        downgrade = bool(month.get("service_downgrade"))
        codes += [code for code, on in (("LFR_PENALTY", penalty), ("SERVICE_DOWNGRADE", downgrade)) if on]
        table.add_row(
            _text(month.get("month")),
            _text(month.get("failed")),
            _text(", ".join(f"{code} ×{n}" for code, n in by_reason.items())),
            _text(penalty or "", "red" if penalty else ""),
            Text(label("yes", lang), style="red") if downgrade else Text(label("no", lang), style="dim"),
        )
    total = label(
        "performance.total",
        lang,
        total=answer.get("lfr_penalty_total", 0),
        downgraded=label("yes" if answer.get("downgraded") else "no", lang),
    )
    return _group(_title(title), table, Text(rule, style="dim"), Text(total), legend(((c, c) for c in codes), lang))


# --- POST /licenses/{id}/reconcile ------------------------------------------------------------


def reconcile(answer: Mapping[str, Any], lang: str) -> Group:
    """The counts per finding, then every finding: the ERP's row against the accepted one, with
    the licence's last verdict and reason, or the number's status now."""
    licence, month = answer.get("license_id"), answer.get("month")
    title = (
        label("reconcile.title_month", lang, licence=licence, month=month)
        if month
        else label("reconcile.title", lang, licence=licence)
    )
    counts = _table(lang, "finding", "count", "meaning")
    for kind, n in (answer.get("counts") or {}).items():
        counts.add_row(_word("finding", kind, lang), _text(n), _text(_finding_meaning(kind, lang)))
    findings = answer.get("findings") or []
    if not findings:
        return _group(_title(title), counts, Text(label("reconcile.clean", lang), style="green"))
    table = _table(lang, "finding", "number", "line", "reason", "problem", "erp", "accepted")
    kinds: list[tuple[str, str]] = []
    reasons: list[tuple[str, str]] = []
    statuses: list[tuple[str, str]] = []
    for found in findings:
        kind, reason, status = found.get("kind", ""), found.get("reason") or "", found.get("status") or ""
        verdict = _word("verdict", found["verdict"], lang) if found.get("verdict") else Text()
        # erp_invalid: `status` is the row's problem in words; otherwise the number's check status
        problem = _text(status) if kind == "erp_invalid" else (_word("status", status, lang) if status else Text())
        table.add_row(
            _word("finding", kind, lang),
            _text(found.get("tracking_no")),
            _text(found.get("line")),
            Text.assemble(verdict, "\n", reason) if verdict else _text(reason),
            _differs_in(found.get("differs_in") or "", lang) if kind == "differs" else problem,
            _text(_side(found, "erp")),
            _text(_side(found, "accepted")),
        )
        kinds.append((_word("finding", kind, lang).plain, kind))
        reasons.append((reason, reason))
        if status and kind == "erp_not_accepted":
            statuses.append((_status_word(status, lang), f"status.{status}"))
    return _group(_title(title), counts, table, legend([*kinds, *reasons, *statuses], lang))


def _differs_in(fields: str, lang: str) -> Text:
    """`carrier_code+shipped_at` in words."""
    named = []
    for field in fields.split("+"):
        try:
            named.append(label(f"reconcile.field.{field}", lang))
        except KeyError:  # a field newer than this catalogue
            named.append(field)
    return Text(label("reconcile.differs_in", lang, fields=" + ".join(named)), style="yellow")


def _finding_meaning(kind: str, lang: str) -> str:
    """A finding's meaning (reasons.json); the two kinds only counted (matched, outside_month)
    are the CLI's own words."""
    explained = explain(kind, lang)
    if explained is not None:
        return explained[0]
    try:
        return label(f"finding.{kind}.meaning", lang)
    except KeyError:  # a kind newer than this catalogue
        return ""


def _side(found: Mapping[str, Any], side: str) -> str:
    """One side of a finding: carrier and ship time (what the fingerprint is made of)."""
    return "\n".join(_time(found[f"{side}_{f}"]) for f in ("carrier_code", "shipped_at") if found.get(f"{side}_{f}"))


# --- GET /reuse -------------------------------------------------------------------------------


def reuse(answer: Mapping[str, Any], lang: str) -> Group:
    """The groups (carrier, month), then each reused number with the licences in claim order."""
    anything = label("reuse.any", lang)
    title = label("reuse.title", lang)
    scope = label(
        "reuse.filter", lang, carrier=answer.get("carrier_code") or anything, month=answer.get("month") or anything
    )
    items = answer.get("items") or []
    if not items:
        return _group(_title(title), Text(scope, style="dim"), Text(label("reuse.none", lang)))
    groups = _table(lang, "carrier", "month", "numbers", "licence_count")
    for group in answer.get("groups") or []:
        groups.add_row(
            _text(group.get("carrier_code")),
            _text(group.get("month")),
            _text(group.get("numbers")),
            _text(group.get("licenses")),
        )
    table = _table(lang, "number", "carrier", "month", "reused_at", "licences", "bound_licence", "uses", "failed")
    for item in items:
        table.add_row(
            _text(item.get("tracking_no")),
            _text(item.get("carrier_code")),
            _text(item.get("month")),
            _text(_time(item.get("reused_at"))),
            _text("\n".join(item.get("licenses") or [])),
            _text(item.get("bound_license") or label("none", lang)),
            _text(item.get("uses")),
            _text(item.get("failed"), "red" if item.get("failed") else ""),
        )
    return _group(_title(title), Text(scope, style="dim"), groups, table)


# --- POST /commands/{kind} --------------------------------------------------------------------


def command_result(answer: Mapping[str, Any], lang: str) -> Group:
    """A reserve, release or appeal: done (with the reservation's end, the appeal's decision), or
    refused with the reason explained."""
    kind = answer.get("command", "")
    try:
        command = label(f"command.{kind}", lang)
    except KeyError:
        command = kind
    number = answer.get("tracking_no")
    parts: list[RenderableType] = []
    if answer.get("ok"):
        parts.append(Text(label("command.done", lang, command=command, number=number), style="green"))
        if answer.get("expires_at"):
            parts.append(Text(label("command.expires", lang, until=_time(answer["expires_at"]))))
        if answer.get("decision") in ("pending", "approved", "rejected"):
            parts.append(Text(label(f"command.{answer['decision']}", lang)))
    else:
        error = answer.get("error") or ""
        parts.append(Text(label("command.refused", lang, command=command, number=number, error=error), style="red"))
        explained = explain(error, lang)
        if explained is not None:
            parts.append(_explained(*explained, lang))
    if answer.get("replay"):
        parts.append(Text(label("command.replay", lang, command_id=answer.get("command_id")), style="dim"))
    return Group(*parts)


# --- trackguard audit, settings, tail ---------------------------------------------------------


def audit_report(report: Mapping[str, Any], lang: str, limit: int = 50) -> Group:
    """The counts, then the violations (the first `limit`), or that there are none."""
    counts = Table(box=box.SIMPLE_HEAD, header_style="bold")
    counts.add_column(label("audit.what", lang))
    counts.add_column(label("col.count", lang), justify="right")
    for name, n in sorted((report.get("counts") or {}).items()):
        counts.add_row(_text(name), _text(f"{n:,}"))
    violations = report.get("violations") or []
    if not violations:
        return _group(_title(label("audit.title", lang)), counts, Text(label("audit.ok", lang), style="green"))
    listed = Text(label("audit.violations", lang, count=len(violations)), style="bold red")
    for violation in violations[:limit]:
        listed.append(f"\n  - {violation}", style="")
    if len(violations) > limit:
        listed.append("\n  " + label("audit.more", lang, count=len(violations) - limit))
    return _group(_title(label("audit.title", lang)), counts, listed)


def settings_table(rows: Iterable[Mapping[str, Any]], lang: str) -> Table:
    """Every setting: its value in force (or its default), environment variable and meaning."""
    table = _table(lang, "setting", "value", "env", "meaning")
    for row in rows:
        value = (
            _text(row["value"])
            if row.get("value") is not None
            else Text(label("settings.default", lang, value=repr(row.get("default"))), style="dim")
        )
        table.add_row(_text(f"[{row['section']}] {row['key']}"), value, _text(row.get("env")), _text(row.get("help")))
    return table


def verdict_line(verdict: Mapping[str, Any], lang: str) -> Text:
    """One verdict as `trackguard tail` shows it: when, what, why (explained), which number, whose."""
    code = verdict.get("verdict", "")
    reason = verdict.get("reason", "")
    where = f"{verdict.get('license_id')}/{verdict.get('store_id')}/{verdict.get('order_id')}"
    line = Text(f"{_time(verdict.get('decided_at'))}  ")
    word = _word("verdict", code, lang).plain
    line.append(word + " " * (9 - cell_len(word)), style=STYLES.get(code, ""))  # Chinese: two cells a character
    line.append(f" {reason:<24} {verdict.get('carrier_code')} {verdict.get('tracking_no')}  {where}")
    if verdict.get("replay"):
        line.append(label("tail.replay", lang), style="dim")
    if verdict.get("frozen_until"):
        line.append(label("tail.until", lang, until=_time(verdict["frozen_until"])))
    explained = explain(reason, lang) if reason else None
    if explained is not None:
        line.append(f"  {explained[0]}", style="dim")
    return line
