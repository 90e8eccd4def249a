"""Normalization of tracking numbers and times, and the fingerprint.

Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import UTC, datetime, timedelta

# Characters people and ERPs put inside numbers that carriers never print as part of them.
_STRIP = str.maketrans("", "", " \t\r\n-_\u3000")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def normalize_tracking(raw: str) -> str:
    """NFKC (full-width digits/letters from Chinese IMEs become ASCII), strip separators, upper-case.

    NFKC runs first because it maps the ideographic space and full-width '－' to their ASCII
    forms, which the strip table then removes. Idempotent: normalize(normalize(x)) == normalize(x).
    """
    if raw.isascii():  # the common case; ASCII is already NFKC-stable
        return raw.translate(_STRIP).upper()
    number = unicodedata.normalize("NFKC", raw).translate(_STRIP).upper()
    # Stripping or upper-casing can leave a string that NFKC would still change (e.g. a spacing
    # accent decomposes into space + combining mark); repeat until stable so this is idempotent.
    for _ in range(3):
        again = unicodedata.normalize("NFKC", number).translate(_STRIP).upper()
        if again == number:
            break
        number = again
    return number


def is_clean_tracking(number: str) -> bool:
    """True when a normalized number holds only ASCII letters and digits."""
    return number.isascii() and number.isalnum()


def parse_rfc3339_ms(value: str) -> int:
    """RFC 3339 with an offset -> epoch milliseconds. Raises ValueError without an offset."""
    if not isinstance(value, str) or len(value) < 20 or value[10] not in "Tt ":
        raise ValueError("not an RFC 3339 date-time")
    dt = datetime.fromisoformat(value.replace("z", "Z"))
    if dt.tzinfo is None:
        raise ValueError("RFC 3339 needs an offset")
    # Integer arithmetic: float timestamps drift by a millisecond for some dates.
    return (dt - _EPOCH) // _ONE_MS


_day_prefix: dict[int, str] = {}


def format_ms(epoch_ms: int) -> str:
    """Epoch milliseconds -> RFC 3339 in UTC with milliseconds, e.g. 2026-11-25T08:00:00.000Z."""
    # Two of these per verdict: the date part is memoized per day, the time is plain arithmetic.
    days, in_day = divmod(epoch_ms, 86_400_000)
    prefix = _day_prefix.get(days)
    if prefix is None:
        if len(_day_prefix) > 50_000:
            _day_prefix.clear()
        prefix = _day_prefix[days] = (_EPOCH + timedelta(days=days)).strftime("%Y-%m-%dT")
    seconds, millis = divmod(in_day, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{prefix}{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


def fingerprint(carrier_code: str, tracking_no: str, shipped_ms: int) -> str:
    """Hex MD5 of carrier|tracking|shipped_at(epoch ms), as the spec defines it."""
    return hashlib.md5(f"{carrier_code}|{tracking_no}|{shipped_ms}".encode()).hexdigest()
