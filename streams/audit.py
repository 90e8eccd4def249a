"""`trackguard audit`: read the topics from the start and check the invariants.

1. every submission has a verdict (invalid ones: a dead letter naming their source offset; one
   whose decision raised or whose verdict the broker refused: an INTERNAL_ERROR / PRODUCE_FAILED
   dead letter, counted, and left out of the replay as the worker left it out of the state);
2. no normalized number is accepted for two different (licence, order) pairs;
3. every verdict and command result agrees with the pure core replayed over the same input, in
   the order the worker decided them (the `seq` each carries), so replays are marked as replays.
   An identical verdict emitted twice (a crash between a batch's verdicts and its changelog, with
   at-least-once delivery) is counted as `re_emitted_after_crash`, not replayed twice.
Idempotency keys are a licence's: submissions and verdicts are matched by (licence, event id),
commands and results by (licence, command id). A record on an output topic that is none of the
worker's (not JSON, fields missing or of the wrong type) is counted as `foreign_records` and left out.
Prints the counts and every violation; the CLI exits 1 on any.
"""

from __future__ import annotations

import base64
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .core.commands import Command, apply_command, parse_command
from .core.events import Rejection, Submission, parse_submission
from .core.performance import PerformancePolicy, failure_of, fold, month_of, store_key
from .core.rules import decide
from .kafka import read_topics
from .settings import Settings

COMPARED = ("verdict", "code", "reason", "replay", "seq")
VERDICTS = ("accepted", "duplicate", "frozen", "invalid")
Key = tuple[str, str]  # (licence, event id or command id)
COMPARED_COMMAND = ("ok", "error", "replay", "seq")
PROGRESS_EVERY = 500  # records read between two progress callbacks


@dataclass
class AuditReport:
    counts: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        """What `trackguard audit --json` prints, and what streams/render.py shows people."""
        return {"ok": self.ok, "counts": dict(sorted(self.counts.items())), "violations": self.violations}

    def render(self, limit: int = 50) -> str:
        """Plain text, for a failed test's message."""
        lines = [f"{k}: {v:,}" for k, v in sorted(self.counts.items())]
        lines.append(f"violations: {len(self.violations)}")
        lines += [f"  - {v}" for v in self.violations[:limit]]
        if len(self.violations) > limit:
            lines.append(f"  ... and {len(self.violations) - limit} more")
        return "\n".join(lines)


def _read(
    settings: Settings, topics: list[str], idle_s: float, max_s: float, on_record: Callable[[], None] | None = None
) -> list:
    records = []
    for m in read_topics(settings, topics, until_idle_s=idle_s, max_s=max_s):
        if not m.error():
            records.append(m)
            if on_record is not None:
                on_record()
    return records


def audit(
    settings: Settings,
    *,
    idle_s: float = 3.0,
    max_s: float = 600.0,
    exactly_once: bool = False,
    alerts_wait_s: float = 30.0,
    on_records: Callable[[int], None] | None = None,
) -> AuditReport:
    """With `exactly_once`, every submission must have exactly as many answers as it was sent
    (a verdict, or a dead letter, each once), not at least as many: for runs without a crash.
    `on_records` hears how many records were read so far (a progress bar)."""
    report = AuditReport()
    t = settings.topics
    read = 0

    def counted() -> None:
        nonlocal read
        read += 1
        if on_records is not None and read % PROGRESS_EVERY == 0:
            on_records(read)

    submissions = _read(settings, [t.submitted], idle_s, max_s, counted)
    commands = _read(settings, [t.commands], idle_s, max_s, counted)
    outputs = _read(settings, [*t.verdicts, t.command_results], idle_s, max_s, counted)
    if on_records is not None:
        on_records(read)
    report.counts.update(submissions=len(submissions), commands=len(commands), verdicts_and_results=len(outputs))

    # Inputs, parsed exactly as the worker parses them (same config, same Kafka timestamps).
    by_event: dict[Key, Submission] = {}
    expected_events: Counter = Counter()
    expected_dead: Counter = Counter()  # (partition, offset) of the submissions rule 1 rejects
    event_at: dict[tuple[int, int], Key] = {}  # (partition, offset) of each valid submission -> its key
    for m in submissions:
        parsed = parse_submission(m.value(), m.timestamp()[1], settings.carriers, settings.limits)
        if isinstance(parsed, Rejection):
            expected_dead[(m.partition(), m.offset())] += 1
        else:
            key = (parsed.license_id, parsed.event_id)
            by_event.setdefault(key, parsed)
            expected_events[key] += 1
            event_at[(m.partition(), m.offset())] = key
    by_command: dict[Key, Command] = {}
    for m in commands:
        command = parse_command(m.value(), m.timestamp()[1], settings.carriers, settings.limits)
        if isinstance(command, Command):
            by_command.setdefault((command.license_id, command.command_id), command)

    seen_events: Counter = Counter()
    seen_dead: Counter = Counter()
    chains: dict[str, list[tuple[int, int, str, dict]]] = defaultdict(list)
    binders: dict[str, set] = defaultdict(set)
    verdicts: list[dict] = []
    for m in outputs:
        out = _ours(m.value(), m.topic() == t.command_results)
        if out is None:
            report.counts["foreign_records"] += 1
            continue
        ts = m.timestamp()[1]
        if m.topic() == t.command_results:
            if out.get("seq") is not None:
                chains[out["tracking_no"]].append((out["seq"], ts, "command", out))
            continue
        verdicts.append(out)
        report.counts[f"verdict:{out['verdict']}"] += 1
        if out["verdict"] == "invalid":
            if out["reason"] == "INTERNAL_ERROR" or out["reason"].startswith("PRODUCE_FAILED:"):
                report.counts[f"failed:{out['reason']}"] += 1
                where = _source(out)
                if where is not None and where[0] == t.submitted:  # found by where it was read, whatever its size
                    found: Key | None = event_at.get(where[1:])
                else:
                    found = _event_key(out)
                if found is not None:
                    seen_events[found] += 1
            else:
                where = _source(out)
                if where is not None and where[0] == t.submitted:
                    seen_dead[where[1:]] += 1
            continue
        seen_events[(out["license_id"], out["event_id"])] += 1
        chains[out["tracking_no"]].append((out["seq"], ts, "verdict", out))
        if out["verdict"] == "accepted" and not out["replay"]:
            binders[out["tracking_no"]].add((out["license_id"], out["order_id"]))

    # 1. Nothing lost (and, with exactly_once, nothing doubled).
    for key, n in expected_events.items():
        if seen_events[key] < n or (exactly_once and seen_events[key] != n):
            report.violations.append(f"event {_shown(key)}: {seen_events[key]} verdicts for {n} submissions")
    for (partition, offset), n in expected_dead.items():
        if seen_dead[(partition, offset)] < n or (exactly_once and seen_dead[(partition, offset)] != n):
            report.violations.append(
                f"invalid submission {t.submitted}[{partition}]@{offset}: {seen_dead[(partition, offset)]} dead letters"
            )
    if exactly_once:
        for key in set(seen_events) - set(expected_events):
            report.violations.append(f"verdicts for event {_shown(key)}, which was never submitted as valid")
    # 2. One owner per number.
    for number, owners in binders.items():
        if len(owners) > 1:
            report.violations.append(f"{number} accepted for {len(owners)} (licence, order) pairs: {sorted(owners)}")
    # 3. The worker's decisions are the core's, in the worker's order.
    for number, chain in chains.items():
        chain.sort(key=lambda item: (item[0], item[1]))
        state = None
        emitted: set[tuple] = set()
        for _seq, _ts, kind, out in chain:
            # At-least-once without transactions: a worker killed after a batch's verdicts reached
            # the broker but before its changelog did decides those events again, identically
            # (same seq, same verdict). Counted, not replayed twice; a *different* decision would
            # still be a violation.
            identity = (
                kind,
                out.get("license_id"),
                out.get("event_id") or out.get("command_id"),
                out.get("seq"),
                out.get("verdict", out.get("ok")),
                out.get("reason", out.get("error")),
                out.get("replay"),
            )
            if identity in emitted and not out.get("replay"):
                report.counts["re_emitted_after_crash"] += 1
                continue
            emitted.add(identity)
            if kind == "verdict":
                sub = by_event.get((out["license_id"], out["event_id"]))
                if sub is None:
                    report.violations.append(
                        f"verdict for an event never submitted: {_shown((out['license_id'], out['event_id']))}"
                    )
                    continue
                expected, state = decide(state, sub, settings.policy)
                fields, name = COMPARED, out["event_id"]
            else:
                cmd = by_command.get((out["license_id"], out["command_id"]))
                if cmd is None:
                    report.violations.append(f"result for a command never sent: {out['command_id']}")
                    continue
                expected, state = apply_command(state, cmd, settings.policy)
                fields, name = COMPARED_COMMAND, out["command_id"]  # type: ignore[assignment]  # fewer fields
            diff = {f: (out.get(f), expected.get(f)) for f in fields if out.get(f) != expected.get(f)}
            if set(diff) <= {"replay", "seq"} and out.get("replay") and not expected.get("replay"):
                # The mirror case: the changelog reached the broker, the verdict did not; after the
                # crash the event is an event-id replay of a decision nobody saw. Same decision.
                report.counts["first_emitted_as_replay_after_crash"] += 1
                diff = {}
            if diff:
                report.violations.append(f"{number} {kind} {name}: worker vs core {diff}")
            report.counts["replayed_against_core"] += 1
    report.counts["numbers"] = len(chains)
    _audit_alerts(settings, verdicts, report, idle_s, max_s, alerts_wait_s)
    return report


def alerts_called_for(
    verdicts: list[dict], policy: PerformancePolicy
) -> tuple[set[str], dict[tuple[bytes, str], set[str]]]:
    """The alert ids the failed verdicts call for (the pure core's count, per store), and each
    (store, month)'s failed event ids."""
    failures = [f for f in (failure_of(v) for v in verdicts) if f is not None]
    called, _ = fold(failures, policy)  # which alerts, unlike their event ids, does not depend on the order
    expected = {a["alert_id"] for a in called}
    month_failures: dict[tuple[bytes, str], set[str]] = defaultdict(set)
    for failure in failures:
        key = store_key(failure.license_id, failure.store_id)
        month_failures[(key, month_of(failure.decided_at, policy.timezone))].add(failure.event_id)
    return expected, month_failures


def _audit_alerts(
    settings: Settings, verdicts: list[dict], report: AuditReport, idle_s: float, max_s: float, wait_s: float
) -> None:
    """4. The alerts the failures call for, all published, and nothing else.

    The store path runs behind the verdicts (one more hop, per message): a missing alert is read
    for again for up to `wait_s` before it is a violation."""
    expected, month_failures = alerts_called_for(verdicts, settings.performance)
    deadline = time.monotonic() + wait_s
    while True:
        alerts = [a for a in (_json(m.value()) for m in _read(settings, [settings.topics.alerts], idle_s, max_s))]
        alerts = [a for a in alerts if isinstance(a, dict) and isinstance(a.get("alert_id"), str)]
        published = Counter(str(a.get("alert_id")) for a in alerts)
        if expected <= set(published) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    for alert_id in sorted(expected - set(published)):
        report.violations.append(f"alert {alert_id} is called for by the failed verdicts but was not published")
    for alert_id in sorted(set(published) - expected):
        report.violations.append(f"alert {alert_id} was published but the failed verdicts do not call for it")
    for alert in alerts:
        key = store_key(alert.get("license_id", ""), alert.get("store_id", ""))
        named = set(alert.get("event_ids", []))
        known = set().union(*(month_failures[(key, m)] for m in alert.get("months", [alert.get("month")])))
        if not named <= known:
            report.violations.append(f"alert {alert.get('alert_id')} names failures not of its store and months")
    report.counts["alerts_replayed"] = len(expected)
    report.counts["alerts_re_sent"] = sum(n - 1 for n in published.values())


def _event_key(dead_letter: dict) -> Key | None:
    """(licence, event id) inside a dead letter's raw bytes, when they are whole and readable."""
    if dead_letter.get("raw_truncated"):
        return None
    try:
        event = orjson.loads(base64.b64decode(dead_letter.get("raw") or ""))
    except (ValueError, TypeError, orjson.JSONDecodeError):
        return None
    if not isinstance(event, dict):
        return None
    license_id, event_id = event.get("license_id"), event.get("event_id")
    if isinstance(license_id, str) and isinstance(event_id, str):
        return license_id.strip(), event_id.strip()
    return None


def _json(raw: bytes | None) -> Any:
    try:
        return orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return None


def _ours(raw: bytes | None, command_result: bool) -> dict | None:
    """A verdict or command result as the worker writes them, or None: a record someone else put
    on the topic, which the audit counts and leaves out instead of stopping on it."""
    out = _json(raw)
    if not isinstance(out, dict):
        return None
    if command_result:
        if out.get("seq") is None:  # a refused command's result (no state, no licence needed)
            return out if isinstance(out.get("command_id"), str | None) else None
        texts = ("command_id", "license_id", "tracking_no")
        return out if all(isinstance(out.get(f), str) for f in texts) and isinstance(out["seq"], int) else None
    if out.get("verdict") not in VERDICTS or not isinstance(out.get("reason"), str):
        return None
    if out["verdict"] == "invalid":
        return out if isinstance(out.get("source"), dict | None) else None
    texts = ("event_id", "license_id", "tracking_no")
    return out if all(isinstance(out.get(f), str) for f in texts) and isinstance(out.get("seq"), int) else None


def _source(dead_letter: dict) -> tuple[str, int, int] | None:
    source = dead_letter.get("source")
    if not isinstance(source, dict):
        return None
    topic, partition, offset = source.get("topic"), source.get("partition"), source.get("offset")
    if isinstance(topic, str) and isinstance(partition, int) and isinstance(offset, int):
        return topic, partition, offset
    return None


def _shown(key: Key) -> str:
    return f"{key[1]} (licence {key[0]})"
