"""Dead letters: the verdict of a record that cannot be judged, sized so that it always fits.

A publisher can send anything up to the broker's message limit; the dead letter that answers it
must still be accepted by the broker, or the one bad record would stop the worker. So the raw
bytes are kept in full (base64) only while the whole dead letter stays within
`limits.max_dead_letter_bytes`; beyond that it keeps a prefix, and always the SHA-256 and length
of the whole payload and the record's source topic, partition and offset, so the original can be
found. Pure: no clock, no client library.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, NamedTuple

import orjson

from .events import REQUIRED, Limits, Rejection
from .normalize import format_ms
from .rules import Verdict

MAX_ERROR_CHARS = 300  # an exception's text or a client library's error: enough to act on
MAX_KEY_BYTES = 512  # a longer raw key is replaced by its SHA-256 (hex) on the dead-letter topic


class Source(NamedTuple):
    """Where a record was read: enough to find the original bytes again."""

    topic: str
    partition: int
    offset: int


def dead_letter(
    reason: str,
    error: str,
    fields: dict[str, Any],
    raw: bytes | None,
    now_ms: int,
    source: Source | None,
    limits: Limits,
) -> dict[str, Any]:
    """The `invalid` verdict for `raw`, whose encoding is at most `limits.max_dead_letter_bytes`."""
    raw = raw or b""
    out: dict[str, Any] = {name: fields.get(name) for name in REQUIRED}
    out.update(
        {
            "verdict": Verdict.INVALID,
            "code": "INVALID_EVENT",
            "reason": reason,
            "error": error[:MAX_ERROR_CHARS],
            "fingerprint": None,
            "decided_at": format_ms(now_ms),
            "replay": False,
            "bound_to": None,
            "source": source._asdict() if source is not None else None,
            "raw_length": len(raw),
            "raw_sha256": hashlib.sha256(raw).hexdigest(),
            "raw_truncated": False,
            "raw": "",
        }
    )
    room = limits.max_dead_letter_bytes - len(orjson.dumps(out))
    if _b64_len(len(raw)) > room:
        raw = raw[: limits.dead_letter_prefix_bytes]
        out["raw_truncated"] = True
    out["raw"] = base64.b64encode(raw).decode("ascii")
    return out


def invalid_verdict(
    rejection: Rejection, raw: bytes | None, now_ms: int, source: Source | None, limits: Limits
) -> dict[str, Any]:
    """Rule 1's dead letter: the reason names the field, the error says what is wrong with it."""
    return dead_letter(rejection.reason, rejection.error, rejection.fields, raw, now_ms, source, limits)


def internal_error(
    exc: BaseException, raw: bytes | None, now_ms: int, source: Source | None, limits: Limits
) -> dict[str, Any]:
    """A record whose decision raised: that record's verdict, not the worker's death."""
    return dead_letter("INTERNAL_ERROR", describe(exc), {}, raw, now_ms, source, limits)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


def produce_failed(
    error_name: str, error: str, topic: str, raw: bytes | None, now_ms: int, source: Source | None, limits: Limits
) -> dict[str, Any]:
    """A record the broker refused (too large, invalid, not allowed on `topic`): compactly, its
    prefix and digest instead of the record, so this dead letter itself cannot be refused."""
    out = dead_letter(f"PRODUCE_FAILED:{error_name}", f"{topic}: {error}", {}, raw, now_ms, source, limits)
    if not out["raw_truncated"]:  # keep it small whatever the limit: the broker refused the size once
        out["raw"] = base64.b64encode((raw or b"")[: limits.dead_letter_prefix_bytes]).decode("ascii")
        out["raw_truncated"] = len(raw or b"") > limits.dead_letter_prefix_bytes
    return out


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The raw key, unless it is too long to repeat: then its SHA-256, hex."""
    if key is None or len(key) <= MAX_KEY_BYTES:
        return key
    return hashlib.sha256(key).hexdigest().encode()


def _b64_len(n: int) -> int:
    return 4 * ((n + 2) // 3)
