"""Commands beside the submission rules: reserve, release, appeal.

`parse_command(raw, now_ms, carriers, limits) -> Command | CommandRejection` and
`apply_command(state, command, policy) -> (result, new_state)`; pure, like `rules.decide`.
Every command gets exactly one result; a repeated `command_id` gets the first result again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from .carriers import CarrierBook
from .events import Limits
from .normalize import format_ms, is_clean_tracking, normalize_tracking
from .rules import Policy, State, scoped_id

KINDS = ("reserve", "release", "appeal")
FIELDS = {
    "reserve": ("store_id", "order_id", "carrier_code", "ttl_s"),
    "release": ("order_id",),
    "appeal": ("evidence_sha256", "evidence_ref", "decision", "decided_by"),
}
# A licence files an appeal (`pending`, with its evidence); only the platform decides it
# (`approved` / `rejected`: the admin token over HTTP, a platform principal on Kafka, docs/SECURITY.md).
DECISIONS = ("pending", "approved", "rejected")
MAX_TTL_S = 30 * 24 * 3600  # a pre-assignment longer than a month is a mistake, not a plan
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Command:
    command: str
    command_id: str
    license_id: str
    tracking_no: str
    now_ms: int
    fields: dict[str, Any]  # the kind's own fields, validated


@dataclass(frozen=True, slots=True)
class CommandRejection:
    error: str  # INVALID_COMMAND:<field>, or BAD_CHECK_DIGIT / UNKNOWN_FORMAT for reserve
    command: str | None
    command_id: str | None
    tracking_no: str | None
    license_id: str | None = None  # echoed when readable: a command id is the licence's (HTTP waiters)


def _text(obj: dict[str, Any], name: str, limit: int) -> str | None:
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > limit or not value.isprintable():
        return None
    return value.strip()


def parse_command(raw: bytes | None, now_ms: int, carriers: CarrierBook, limits: Limits) -> Command | CommandRejection:
    def reject(field: str, obj: dict[str, Any] | None = None, number: str | None = None) -> CommandRejection:
        obj = obj or {}
        kind = obj.get("command") if obj.get("command") in KINDS else None
        cid = _text(obj, "command_id", limits.max_field_chars)  # echoed: bounded like every field
        lic = _text(obj, "license_id", limits.max_field_chars)
        return CommandRejection(
            field if field in ("BAD_CHECK_DIGIT",) else f"INVALID_COMMAND:{field}", kind, cid, number, lic
        )

    if raw is None or len(raw) > limits.max_event_bytes:
        return reject("body")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return reject("json")
    if not isinstance(obj, dict):
        return reject("json")
    if obj.get("command") not in KINDS:
        return reject("command", obj)
    kind = obj["command"]
    for name in ("command_id", "license_id", "tracking_no"):
        if _text(obj, name, limits.max_field_chars) is None:
            return reject(name, obj)
    number = normalize_tracking(obj["tracking_no"])
    if not number or len(number) > limits.max_tracking_chars or not is_clean_tracking(number):
        return reject("tracking_no", obj)
    fields: dict[str, Any] = {}
    for name in FIELDS[kind]:
        value = obj.get(name)
        if name == "ttl_s":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_TTL_S:
                return reject(name, obj, number)
        elif name == "evidence_sha256":
            if not isinstance(value, str) or not _SHA256.fullmatch(value.lower()):
                return reject(name, obj, number)
            value = value.lower()
        elif name == "decision":
            if value not in DECISIONS:
                return reject(name, obj, number)
        elif name == "decided_by" and fields["decision"] == "pending" and value is None:
            pass  # nobody has decided a pending appeal yet
        else:
            value = _text(obj, name, limits.max_field_chars)
            if value is None:
                return reject(name, obj, number)
        fields[name] = value
    if kind == "reserve":
        fields["carrier_code"] = carriers.canonical(fields["carrier_code"])
        problem = carriers.validate(fields["carrier_code"], number)
        if problem is not None:
            return reject("BAD_CHECK_DIGIT" if problem == "BAD_CHECK_DIGIT" else "tracking_no", obj, number)
    return Command(kind, obj["command_id"].strip(), obj["license_id"].strip(), number, now_ms, fields)


def rejection_result(rej: CommandRejection, now_ms: int) -> dict[str, Any]:
    out = {
        "command_id": rej.command_id,
        "command": rej.command,
        "tracking_no": rej.tracking_no,
        "ok": False,
        "error": rej.error,
        "decided_at": format_ms(now_ms),
        "replay": False,
    }
    if rej.license_id is not None:
        out["license_id"] = rej.license_id
    return out


def _result(cmd: Command, error: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "command_id": cmd.command_id,
        "command": cmd.command,
        "tracking_no": cmd.tracking_no,
        "license_id": cmd.license_id,
        "ok": error is None,
        "error": error,
        "decided_at": format_ms(cmd.now_ms),
        "replay": False,
        **extra,
    }


def apply_command(state: State | None, cmd: Command, policy: Policy) -> tuple[dict[str, Any], State]:
    state = state if state is not None else {}
    key = scoped_id(cmd.license_id, cmd.command_id)  # a command id belongs to its licence
    seen = state.get("commands", {}).get(key)
    if seen is not None:  # idempotency: the first result again, nothing changes
        return {**seen, "replay": True}, state  # keeps the first result's seq: its place in history

    now = cmd.now_ms
    new: State = dict(state)  # type: ignore[assignment]
    binding, reservation = state.get("binding"), state.get("reservation")
    live = reservation if reservation is not None and reservation["expires_ms"] > now else None
    extra: dict[str, Any] = {}

    if cmd.command == "reserve":
        f = cmd.fields
        if binding is not None:
            error = "ALREADY_BOUND"
        elif live is not None and (live["license"], live["order"]) != (cmd.license_id, f["order_id"]):
            error = "ALREADY_RESERVED"
        else:  # free, expired, or the holder renewing its own reservation
            expires = now + f["ttl_s"] * 1000
            new["reservation"] = {
                "license": cmd.license_id,
                "store": f["store_id"],
                "order": f["order_id"],
                "carrier": f["carrier_code"],
                "expires_ms": expires,
            }
            error, extra = None, {"expires_at": format_ms(expires)}
    elif cmd.command == "release":
        if live is None:
            error = "NOT_RESERVED"
        elif (live["license"], live["order"]) != (cmd.license_id, cmd.fields["order_id"]):
            error = "NOT_HOLDER"
        else:
            new.pop("reservation", None)
            error = None
    else:  # appeal: an approved one lifts this licence's freeze and blacklist entry; never the binding
        frozen, blacklist = state.get("frozen", {}), state.get("blacklist", [])
        if cmd.license_id not in frozen and cmd.license_id not in blacklist:
            error = "NOTHING_TO_APPEAL"
        else:
            error = None
            if cmd.fields["decision"] == "approved":
                new["frozen"] = {k: v for k, v in frozen.items() if k != cmd.license_id}
                new["blacklist"] = [x for x in blacklist if x != cmd.license_id]
            appeals = state.get("appeals", [])[-(policy.max_uses - 1) :]
            new["appeals"] = [
                *appeals,
                {
                    "license": cmd.license_id,
                    "decision": cmd.fields["decision"],
                    "evidence_sha256": cmd.fields["evidence_sha256"],
                    "evidence_ref": cmd.fields["evidence_ref"],
                    "decided_by": cmd.fields["decided_by"],
                    "at_ms": now,
                },
            ]
            extra = {"decision": cmd.fields["decision"]}

    new["seq"] = state.get("seq", 0) + 1  # orders commands among the number's decisions (audit)
    result = _result(cmd, error, seq=new["seq"], **extra)
    commands = dict(state.get("commands", {}))
    commands[key] = result
    while len(commands) > policy.max_judged:
        del commands[next(iter(commands))]
    new["commands"] = commands
    return result, new
