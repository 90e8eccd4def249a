"""The decision core: `decide(state, submission, policy) -> (verdict, new_state)`.

Pure Python: no Faust, Kafka, RocksDB or clock. "Now" is `submission.now_ms`, the Kafka timestamp
of the submission. State is one JSON-ready dict per normalized tracking number (see `State`);
`decide` never mutates its input and returns the *same* object when nothing changed, so the shell
can skip the write and the changelog record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, NamedTuple, TypedDict

from .events import Submission
from .normalize import fingerprint, format_ms


class Verdict:
    """A verdict's name; each has its own topic (settings.Topics.for_verdict). Plain strings, not an
    Enum: an Enum member hashes through Python code, ~4 µs a decision on the hot path."""

    ACCEPTED: Final = "accepted"
    DUPLICATE: Final = "duplicate"
    FROZEN: Final = "frozen"
    INVALID: Final = "invalid"  # a dead letter (core.deadletters)


OTHER_LICENSE = "other-license"
# Read-only defaults for absent state fields: `state.get("judged", {})` built a new dict per call.
_NO_JUDGED: Final[dict[str, list[Any]]] = {}
_NO_FROZEN: Final[dict[str, int]] = {}
HOUR_MS = 3_600_000
# Between a licence and its own idempotency key in `judged` / `commands`: a control character, which
# no licence id holds (rule 1 refuses them), so (licence, id) pairs cannot collide.
_ID_SEP: Final = "\x1f"


def scoped_id(license_id: str, key: str) -> str:
    """The key under which a licence's idempotency key (event_id, command_id) is remembered:
    every such id belongs to its licence, so another licence re-sending it is a new submission."""
    return license_id + _ID_SEP + key


@dataclass(frozen=True, slots=True)
class Policy:
    """Knobs of the rules (config: [policy])."""

    freeze_ms: int = 72 * HOUR_MS
    # Per-number memory is bounded: an ERP stuck in a retry loop must not grow one key forever.
    # An event id evicted from `judged` is decided again by rules 3-8, which for a true re-push
    # still gives `accepted` (rule 3) and for anything else the same duplicate reason.
    max_judged: int = 256
    max_uses: int = 64


class Binding(TypedDict):
    license: str
    store: str
    order: str
    carrier: str
    shipped_ms: int


class Reservation(TypedDict):
    license: str
    store: str
    order: str
    carrier: str
    expires_ms: int


class Judged(NamedTuple):
    """What rule 2 remembers of an event id; stored as a JSON array in this field order."""

    verdict: str
    code: str
    reason: str
    frozen_until_ms: int | None
    bound_to: Any
    decided_ms: int
    seq: int


class Use(NamedTuple):
    """One decision on a number, for the diagnosis; stored as a JSON array in this field order."""

    license: str
    store: str
    order: str
    at_ms: int
    verdict: str
    reason: str


class State(TypedDict, total=False):
    """Everything known about one normalized tracking number."""

    binding: Binding  # who the number belongs to (rule 7)
    reservation: Reservation  # a pre-assignment (reserve command), live while expires_ms > now
    frozen: dict[str, int]  # license -> frozen until (epoch ms)
    blacklist: list[str]  # licenses that had a duplicate on this number
    judged: dict[str, list[Any]]  # scoped_id(licence, event_id) -> a Judged row, bounded (oldest dropped)
    uses: list[list[Any]]  # Use rows, oldest first, bounded
    commands: dict[str, dict[str, Any]]  # scoped_id(licence, command_id) -> its result, bounded like `judged`
    appeals: list[dict[str, Any]]  # appeals decided on this number, oldest first, bounded
    seq: int  # decisions (and commands) that changed this state so far


def _bound_to(binding: Binding | None, license_id: str) -> Any:
    if binding is None:
        return None
    if binding["license"] != license_id:
        return OTHER_LICENSE  # nothing of another licence is revealed
    return {"store_id": binding["store"], "order_id": binding["order"]}


def _verdict(
    sub: Submission,
    verdict: str,
    code: str,
    reason: str,
    *,
    replay: bool = False,
    frozen_until_ms: int | None = None,
    bound_to: Any = None,
    decided_ms: int | None = None,
) -> dict[str, Any]:
    out = {
        "event_id": sub.event_id,
        "license_id": sub.license_id,
        "store_id": sub.store_id,
        "order_id": sub.order_id,
        "carrier_code": sub.carrier_code,
        "tracking_no": sub.tracking_no,
        "shipped_at": sub.shipped_at,
        "source": sub.source,
        "verdict": verdict,
        "code": code,
        "reason": reason,
        "fingerprint": fingerprint(sub.carrier_code, sub.tracking_no, sub.shipped_ms),
        "decided_at": format_ms(sub.now_ms if decided_ms is None else decided_ms),
        "replay": replay,
        "bound_to": bound_to,
    }
    if frozen_until_ms is not None:
        out["frozen_until"] = format_ms(frozen_until_ms)
    return out


def _record(
    state: State, sub: Submission, verdict: dict[str, Any], policy: Policy, frozen_until_ms: int | None
) -> None:
    """Remember the verdict for its event id (rule 2) and the use (diagnosis), both bounded.

    `seq` counts the decisions that changed this number's state; the verdict carries it, so an
    auditor can replay a number's decisions in the order the worker made them.
    """
    state["seq"] = verdict["seq"] = state.get("seq", 0) + 1
    judged = dict(state.get("judged", _NO_JUDGED))
    # Rows are written as plain lists in the field order of Judged / Use (read back through them):
    # building the named tuple first cost ~1 µs a decision (bench/decision_path.py).
    judged[scoped_id(sub.license_id, sub.event_id)] = [
        verdict["verdict"],
        verdict["code"],
        verdict["reason"],
        frozen_until_ms,
        verdict["bound_to"],
        sub.now_ms,
        verdict["seq"],
    ]
    while len(judged) > policy.max_judged:
        del judged[next(iter(judged))]  # dicts keep insertion order: drop the oldest
    state["judged"] = judged
    uses = state.get("uses", [])[-(policy.max_uses - 1) :] if policy.max_uses > 1 else []
    state["uses"] = [
        *uses,
        [sub.license_id, sub.store_id, sub.order_id, sub.now_ms, verdict["verdict"], verdict["reason"]],
    ]


def _duplicate(state: State, sub: Submission, reason: str, policy: Policy) -> tuple[dict[str, Any], State]:
    """Every duplicate blacklists the number for the licence and freezes it for `freeze_ms`."""
    new: State = dict(state)  # type: ignore[assignment]
    until = sub.now_ms + policy.freeze_ms
    new["frozen"] = {**state.get("frozen", _NO_FROZEN), sub.license_id: until}
    blacklist = state.get("blacklist", [])
    if sub.license_id not in blacklist:
        new["blacklist"] = [*blacklist, sub.license_id]
    verdict = _verdict(
        sub,
        Verdict.DUPLICATE,
        "TRACKING_DUPLICATE",
        reason,
        frozen_until_ms=until,
        bound_to=_bound_to(state.get("binding"), sub.license_id),
    )
    _record(new, sub, verdict, policy, until)
    return verdict, new


def decide(state: State | None, sub: Submission, policy: Policy) -> tuple[dict[str, Any], State]:
    """Apply rules 2-8 of the spec, in order, to a valid submission (rule 1 is `parse_submission`)."""
    state = state if state is not None else {}
    now = sub.now_ms
    binding = state.get("binding")

    # 2. An event id this licence already had judged for this number: the same verdict again,
    # nothing changes. Another licence's event id is its own: a new submission.
    row = state.get("judged", _NO_JUDGED).get(scoped_id(sub.license_id, sub.event_id))
    if row is not None:
        seen = Judged(*row)
        again = _verdict(
            sub,
            seen.verdict,
            seen.code,
            seen.reason,
            replay=True,
            frozen_until_ms=seen.frozen_until_ms,
            bound_to=seen.bound_to,
            decided_ms=seen.decided_ms,
        )
        again["seq"] = seen.seq  # the original decision's place in the number's history
        return again, state

    # 3. The binder's own order re-pushing (same carrier, same or later ship time): never a duplicate.
    if (
        binding is not None
        and binding["license"] == sub.license_id
        and binding["order"] == sub.order_id
        and binding["carrier"] == sub.carrier_code
        and sub.shipped_ms >= binding["shipped_ms"]
    ):
        new: State = dict(state)  # type: ignore[assignment]
        if sub.shipped_ms > binding["shipped_ms"]:
            # The watermark moves forward so that a later push can never go back behind it.
            new["binding"] = {**binding, "shipped_ms": sub.shipped_ms}
        verdict = _verdict(
            sub,
            Verdict.ACCEPTED,
            "ACCEPTED",
            "SAME_ORDER_REPUSH",
            replay=True,
            bound_to=_bound_to(binding, sub.license_id),
        )
        _record(new, sub, verdict, policy, None)
        return verdict, new

    # 4. Frozen for this licence: a failed shipment, but the freeze is not extended.
    frozen_until = state.get("frozen", _NO_FROZEN).get(sub.license_id)
    if frozen_until is not None and frozen_until > now:
        new = dict(state)  # type: ignore[assignment]
        verdict = _verdict(
            sub,
            Verdict.FROZEN,
            "TRACKING_FROZEN",
            "FROZEN_AFTER_DUPLICATE",
            frozen_until_ms=frozen_until,
            bound_to=_bound_to(binding, sub.license_id),
        )
        _record(new, sub, verdict, policy, frozen_until)
        return verdict, new

    # 5. On this licence's blacklist (the freeze is over, no appeal approved yet).
    if sub.license_id in state.get("blacklist", ()):
        return _duplicate(state, sub, "BLACKLISTED", policy)

    # 6. A live reservation held by another licence or order.
    reservation = state.get("reservation")
    live_reservation = reservation if reservation is not None and reservation["expires_ms"] > now else None
    if live_reservation is not None and (
        live_reservation["license"] != sub.license_id or live_reservation["order"] != sub.order_id
    ):
        return _duplicate(state, sub, "RESERVED_BY_OTHER", policy)

    # 7. Unbound: the first use binds it.
    if binding is None:
        new = dict(state)  # type: ignore[assignment]
        new["binding"] = {
            "license": sub.license_id,
            "store": sub.store_id,
            "order": sub.order_id,
            "carrier": sub.carrier_code,
            "shipped_ms": sub.shipped_ms,
        }
        new.pop("reservation", None)  # a reservation ends when its holder uses the number (or expired)
        verdict = _verdict(
            sub,
            Verdict.ACCEPTED,
            "ACCEPTED",
            "RESERVED_NUMBER_USED" if live_reservation is not None else "FIRST_USE",
            bound_to={"store_id": sub.store_id, "order_id": sub.order_id},
        )
        _record(new, sub, verdict, policy, None)
        return verdict, new

    # 8. Bound to something else.
    if binding["carrier"] != sub.carrier_code:
        reason = "CARRIER_MISMATCH"
    elif binding["license"] != sub.license_id:
        reason = "USED_BY_OTHER_LICENSE"
    elif binding["order"] != sub.order_id:
        reason = "USED_BY_LICENSE"
    else:
        reason = "TIMESTAMP_REGRESSION"
    return _duplicate(state, sub, reason, policy)
