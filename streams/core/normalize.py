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
        # Letters and digits only (most numbers as sent): nothing to strip, and no table to walk.
        return raw.upper() if raw.isalnum() else raw.translate(_STRIP).upper()
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
    fast = _common_rfc3339_ms(value)
    return fast if fast is not None else _any_rfc3339_ms(value)


_day_ms: dict[str, int] = {}  # "YYYY-MM-DD" -> epoch ms of its midnight (UTC), for dates seen


def _two(value: str, at: int) -> int:
    """The two ASCII digits at `at` as a number, or -1."""
    high, low = ord(value[at]) - 48, ord(value[at + 1]) - 48
    return high * 10 + low if 0 <= high <= 9 and 0 <= low <= 9 else -1


def _common_rfc3339_ms(value: str) -> int | None:
    """The shapes ERPs send, without datetime (~1 µs less an event): YYYY-MM-DD?HH:MM:SS, then
    nothing, .fff or .ffffff, then Z or ±HH:MM. None for anything else, which `_any_rfc3339_ms`
    decides (a property test holds the two to the same answers)."""
    length = len(value)
    if length not in (20, 24, 25, 27, 29, 32) or value[13] != ":" or value[16] != ":":
        return None
    day_ms = _day_ms.get(value[:10])
    if day_ms is None:
        date = value[:10]
        if not (date.isascii() and date[4] == "-" and date[7] == "-" and date[:4].isdigit()):
            return None
        try:
            day_ms = (datetime.fromisoformat(date + "T00:00:00+00:00") - _EPOCH) // _ONE_MS
        except ValueError:
            return None
        if len(_day_ms) > 50_000:
            _day_ms.clear()
        _day_ms[date] = day_ms
    hour, minute, second = _two(value, 11), _two(value, 14), _two(value, 17)
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
        return None
    at = 19
    millis = 0
    if value[19] == ".":
        digits = 6 if length in (27, 32) else 3
        fraction = value[20 : 20 + digits]
        if not (fraction.isascii() and fraction.isdigit()):
            return None
        millis = int(fraction[:3])
        at = 20 + digits
    zone = value[at:]
    if zone == "Z" or zone == "z":
        offset_ms = 0
    elif len(zone) == 6 and zone[0] in "+-" and zone[3] == ":":
        zone_hours, zone_minutes = _two(zone, 1), _two(zone, 4)
        if not (0 <= zone_hours <= 23 and 0 <= zone_minutes <= 59):
            return None
        offset_ms = (zone_hours * 60 + zone_minutes) * 60_000
        if zone[0] == "-":
            offset_ms = -offset_ms
    else:
        return None
    return day_ms + ((hour * 60 + minute) * 60 + second) * 1000 + millis - offset_ms


def _any_rfc3339_ms(value: str) -> int:
    """Every form datetime.fromisoformat reads (this Python's), with an offset."""
    dt = datetime.fromisoformat(value.replace("z", "Z"))
    if dt.tzinfo is None:
        raise ValueError("RFC 3339 needs an offset")
    # Integer arithmetic: float timestamps drift by a millisecond for some dates.
    return (dt - _EPOCH) // _ONE_MS


_day_prefix: dict[int, str] = {}
# The time of day from tables, not format specs: a third of the cost.
_CLOCK = [f"{hour:02d}:{minute:02d}:" for hour in range(24) for minute in range(60)]
_SECOND = [f"{second:02d}." for second in range(60)]
_MILLIS = [f"{millis:03d}Z" for millis in range(1000)]


def format_ms(epoch_ms: int) -> str:
    """Epoch milliseconds -> RFC 3339 in UTC with milliseconds, e.g. 2026-11-25T08:00:00.000Z."""
    # Two of these per verdict: the date part is memoized per day, the time read from tables.
    days, in_day = divmod(epoch_ms, 86_400_000)
    prefix = _day_prefix.get(days)
    if prefix is None:
        if len(_day_prefix) > 50_000:
            _day_prefix.clear()
        prefix = _day_prefix[days] = (_EPOCH + timedelta(days=days)).strftime("%Y-%m-%dT")
    seconds, millis = divmod(in_day, 1000)
    minutes, second = divmod(seconds, 60)
    return prefix + _CLOCK[minutes] + _SECOND[second] + _MILLIS[millis]


def fingerprint(carrier_code: str, tracking_no: str, shipped_ms: int) -> str:
    """Hex MD5 of carrier|tracking|shipped_at(epoch ms), as the spec defines it."""
    return hashlib.md5(f"{carrier_code}|{tracking_no}|{shipped_ms}".encode()).hexdigest()
