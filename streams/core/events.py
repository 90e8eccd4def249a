"""Rule 1: turn the raw bytes of a submission into a normalized `Submission`, or a `Rejection`.

Pure: the caller passes in the event time, the carrier book and the limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from stdnum.cn import uscc
from stdnum.exceptions import InvalidChecksum, ValidationError

from .carriers import CarrierBook
from .normalize import format_ms, is_clean_tracking, normalize_tracking, parse_rfc3339_ms

REQUIRED = ("event_id", "license_id", "store_id", "order_id", "carrier_code", "tracking_no", "shipped_at")
SOURCES = frozenset({"api", "erp", "manual"})
# How a licence id must look ([policy] license_id_format): "any" (the default: any text within the
# limits) or "uscc" (China's Unified Social Credit Code, 统一社会信用代码: 18 characters, check digit).
LICENSE_ID_FORMATS = ("any", "uscc")


@dataclass(frozen=True, slots=True)
class Limits:
    """Input limits (config: [limits]). Anything beyond them is `invalid`, never a crash."""

    max_event_bytes: int = 16_384
    max_field_chars: int = 128  # event_id, license_id, store_id, order_id (spec: event_id 1-128)
    max_carrier_chars: int = 32
    max_tracking_chars: int = 40  # after normalization; the longest real formats are 34
    # A dead letter keeps the raw bytes (base64) in full while the whole record stays within
    # this size; beyond it, a prefix of `dead_letter_prefix_bytes`, the SHA-256 and the length.
    # Well under the producer's and Kafka's ~1 MB message limit, so a dead letter always fits.
    max_dead_letter_bytes: int = 262_144
    dead_letter_prefix_bytes: int = 1024
    # Not a size, but an input rule that travels with these to parse_submission: set from
    # [policy] license_id_format (one of LICENSE_ID_FORMATS).
    license_id_format: str = "any"
    # (field, for_field(field)) in REQUIRED order, derived once: parse_submission reads it per event.
    required_limits: tuple[tuple[str, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "required_limits", tuple((name, self.for_field(name)) for name in REQUIRED))

    def for_field(self, name: str) -> int:
        """The most characters a submission field may have as sent (before normalization)."""
        if name == "carrier_code":
            return self.max_carrier_chars
        if name == "shipped_at":
            return 64
        if name == "tracking_no":
            return 4 * self.max_tracking_chars  # the raw form may hold spaces and dashes
        return self.max_field_chars


@dataclass(slots=True)
class Submission:
    """A valid, normalized submission. `now_ms` is the Kafka timestamp: the rules' clock.

    Not frozen, though nothing changes one: a frozen dataclass builds itself through Python-level
    object.__setattr__ calls even when compiled, ~1 µs an event (py-spy --native)."""

    event_id: str
    license_id: str
    store_id: str
    order_id: str
    carrier_code: str
    tracking_no: str
    shipped_ms: int
    source: str | None
    now_ms: int
    carrier_known: bool = True

    @property
    def shipped_at(self) -> str:
        return format_ms(self.shipped_ms)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a submission is `invalid`: `reason` is machine-readable and names the field."""

    reason: str
    error: str
    fields: dict[str, Any]  # whatever could be read, echoed in the dead-letter verdict


def _echo(obj: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """The readable fields of a rejected event, echoed in its dead-letter verdict: only those
    within their limit (an over-long one is named by the reason, and kept in the raw bytes)."""
    return {k: obj[k] for k in REQUIRED if isinstance(obj.get(k), str) and len(obj[k]) <= limits.for_field(k)}


def _text_field(obj: dict[str, Any], name: str, limit: int) -> str | Rejection:
    value = obj.get(name)
    if value is None:
        return Rejection(f"MISSING_FIELD:{name}", f"field '{name}' is missing", {})
    if not isinstance(value, str):
        return Rejection(f"BAD_TYPE:{name}", f"field '{name}' must be a string, got {type(value).__name__}", {})
    value = value.strip()
    if not value:
        return Rejection(f"MISSING_FIELD:{name}", f"field '{name}' is empty", {})
    if len(value) > limit:
        return Rejection(f"TOO_LONG:{name}", f"field '{name}' has {len(value)} characters, at most {limit}", {})
    if not value.isprintable():
        return Rejection(f"BAD_CHARS:{name}", f"field '{name}' holds control characters", {})
    return value


def license_id_problem(license_id: str, id_format: str) -> Rejection | None:
    """None when `license_id` (already stripped, within its limit) has the configured format.

    "uscc": exactly as the licence prints it, 18 upper-case characters with no spaces; a code that
    fits but fails the check digit is `BAD_CHECK_DIGIT:license_id`. Nothing is normalized: the
    licence id keys state and API tokens, so two spellings must not silently become one.
    """
    if id_format != "uscc":
        return None
    try:
        fits = uscc.compact(license_id) == license_id and bool(uscc.validate(license_id))
    except InvalidChecksum:
        return Rejection(
            "BAD_CHECK_DIGIT:license_id",
            f"license_id {license_id!r} fails the check digit of a Unified Social Credit Code",
            {},
        )
    except ValidationError:
        fits = False
    if not fits:
        return Rejection(
            "BAD_FORMAT:license_id",
            f"license_id {license_id!r} is not a Unified Social Credit Code (18 characters: 8 digits, then "
            "digits and upper-case letters other than I, O, S, V, Z; no spaces)",
            {},
        )
    return None


def parse_submission(raw: bytes | None, now_ms: int, carriers: CarrierBook, limits: Limits) -> Submission | Rejection:
    """Rule 1 of the spec, field by field, in a fixed order so the reason is deterministic."""
    if raw is None:
        return Rejection("EMPTY_MESSAGE", "the message has no value", {})
    if len(raw) > limits.max_event_bytes:
        return Rejection("TOO_LARGE", f"event is {len(raw)} bytes, at most {limits.max_event_bytes}", {})
    try:
        obj = orjson.loads(raw)  # rejects invalid UTF-8, NaN and nesting deeper than 1024
    except orjson.JSONDecodeError as exc:
        reason = "BAD_ENCODING" if "utf-8" in str(exc).lower() else "MALFORMED_JSON"
        return Rejection(reason, f"not valid JSON: {exc}", {})
    if not isinstance(obj, dict):
        return Rejection("NOT_AN_OBJECT", f"event must be a JSON object, got {type(obj).__name__}", {})
    values: list[str] = []
    for name, limit in limits.required_limits:
        value = obj.get(name)
        if isinstance(value, str):  # the common case, inline; _text_field names any problem
            value = value.strip()
            if value and len(value) <= limit and value.isprintable():
                values.append(value)
                continue
        rejected = _text_field(obj, name, limit)
        assert isinstance(rejected, Rejection), "the inline checks are _text_field's"
        return Rejection(rejected.reason, rejected.error, _echo(obj, limits))
    event_id, license_id, store_id, order_id, carrier_code, tracking_no, shipped_at = values
    bad_license = license_id_problem(license_id, limits.license_id_format)
    if bad_license is not None:
        return Rejection(bad_license.reason, bad_license.error, _echo(obj, limits))

    source = obj.get("source")
    if source is not None and source not in SOURCES:
        return Rejection("BAD_VALUE:source", f"source must be one of {sorted(SOURCES)}", _echo(obj, limits))

    tracking = normalize_tracking(tracking_no)
    if not tracking:
        return Rejection("MISSING_FIELD:tracking_no", "tracking_no is empty after normalization", _echo(obj, limits))
    if len(tracking) > limits.max_tracking_chars:
        return Rejection(
            "TOO_LONG:tracking_no",
            f"tracking_no has {len(tracking)} characters, at most {limits.max_tracking_chars}",
            _echo(obj, limits),
        )
    if not is_clean_tracking(tracking):
        return Rejection("BAD_CHARS:tracking_no", "tracking_no may hold only letters and digits", _echo(obj, limits))

    try:
        shipped_ms = parse_rfc3339_ms(shipped_at)
    except ValueError as exc:
        return Rejection("BAD_TIME:shipped_at", f"shipped_at is not RFC 3339 with an offset: {exc}", _echo(obj, limits))

    carrier = carriers.canonical(carrier_code)
    if not carrier:
        return Rejection("MISSING_FIELD:carrier_code", "carrier_code is empty after normalization", _echo(obj, limits))
    problem = carriers.validate(carrier, tracking)
    if problem is not None:
        echo = {**_echo(obj, limits), "carrier_code": carrier, "tracking_no": tracking}
        detail = "fails its carrier's check digit" if problem == "BAD_CHECK_DIGIT" else "fits no format of its carrier"
        return Rejection(
            problem if problem == "BAD_CHECK_DIGIT" else f"{problem}:tracking_no",
            f"tracking_no {tracking} {detail}",
            echo,
        )

    return Submission(
        event_id=event_id,
        license_id=license_id,
        store_id=store_id,
        order_id=order_id,
        carrier_code=carrier,
        tracking_no=tracking,
        shipped_ms=shipped_ms,
        source=source,
        now_ms=now_ms,
        carrier_known=carriers.is_known(carrier),
    )
