"""Rule 1 (parse_submission) and normalization."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams import settings as settings_mod
from streams.core.events import Limits, Rejection, Submission, parse_submission
from streams.core.normalize import format_ms, normalize_tracking, parse_rfc3339_ms

SETTINGS = settings_mod.load()
CARRIERS = SETTINGS.carriers
NOW = 1_790_000_000_000

GOOD = {
    "event_id": "evt-1",
    "license_id": "91330100MA2H0X1234",
    "store_id": "hz-01",
    "order_id": "SO-1001",
    "carrier_code": "china post",
    "tracking_no": "rr 1234-5678 5cn",
    "shipped_at": "2026-11-25T08:00:00+08:00",
    "source": "erp",
    "warehouse": "HZ-3",
}


def parse(event, limits=Limits()):
    raw = event if isinstance(event, bytes) else orjson.dumps(event)
    return parse_submission(raw, NOW, CARRIERS, limits)


def test_valid_event_is_normalized():
    s = parse(GOOD)
    assert isinstance(s, Submission)
    assert (s.carrier_code, s.tracking_no, s.shipped_at) == ("CHINAPOST", "RR123456785CN", "2026-11-25T00:00:00.000Z")
    assert s.now_ms == NOW and s.carrier_known


def test_full_width_digits_from_chinese_input_methods():
    s = parse({**GOOD, "tracking_no": "ＲＲ１２３４５６７８５ＣＮ"})
    assert s.tracking_no == "RR123456785CN"


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"carrier_code": None}, "MISSING_FIELD:carrier_code"),
        ({"carrier_code": "  "}, "MISSING_FIELD:carrier_code"),
        ({"order_id": 1001}, "BAD_TYPE:order_id"),
        ({"event_id": "x" * 129}, "TOO_LONG:event_id"),
        ({"store_id": "a\x00b"}, "BAD_CHARS:store_id"),
        ({"shipped_at": "2026-11-25 08:00"}, "BAD_TIME:shipped_at"),
        ({"shipped_at": "2026-11-25T08:00:00"}, "BAD_TIME:shipped_at"),
        ({"shipped_at": "yesterday"}, "BAD_TIME:shipped_at"),
        ({"tracking_no": "RR123456784CN"}, "BAD_CHECK_DIGIT"),
        ({"tracking_no": "- _ -"}, "MISSING_FIELD:tracking_no"),
        ({"tracking_no": "RR12345678€CN"}, "BAD_CHARS:tracking_no"),
        ({"tracking_no": "HELLO"}, "UNKNOWN_FORMAT:tracking_no"),
        ({"source": "fax"}, "BAD_VALUE:source"),
    ],
)
def test_rule1_reasons_name_the_field(change, reason):
    event = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    r = parse(event)
    assert isinstance(r, Rejection) and r.reason == reason, r


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"{not json", "MALFORMED_JSON"),
        (b"\xff\xfe{}", "BAD_ENCODING"),
        (b"[1, 2]", "NOT_AN_OBJECT"),
        (b'{"a": NaN}', "MALFORMED_JSON"),
        (b"[" * 5000 + b"]" * 5000, "MALFORMED_JSON"),
    ],
)
def test_rule1_malformed_bytes(raw, reason):
    assert parse(raw).reason == reason


def test_oversized_event():
    assert parse({**GOOD, "note": "x" * 20_000}).reason == "TOO_LARGE"
    assert isinstance(parse({**GOOD, "note": "x" * 200}, Limits(max_event_bytes=100)), Rejection)


def test_unknown_carrier_is_accepted_without_format_check():
    s = parse({**GOOD, "carrier_code": "acme-post", "tracking_no": "whatever123"})
    assert isinstance(s, Submission) and s.carrier_code == "ACMEPOST" and not s.carrier_known


@given(st.text(max_size=40))
def test_normalization_is_idempotent(text):
    once = normalize_tracking(text)
    assert normalize_tracking(once) == once


@given(st.integers(0, 4_102_444_800_000))
def test_time_round_trip(ms):
    assert parse_rfc3339_ms(format_ms(ms)) == ms
