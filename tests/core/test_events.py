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


# --- Licence ids as Unified Social Credit Codes ([policy] license_id_format = "uscc", issue 18).
# Valid codes are from python-stdnum's own doc tests (tests/test_cn_uscc.doctest, "found online"),
# not computed here. The invalid ones are stdnum's own examples, a valid code with its check
# character changed (one check character per code), or of the wrong shape.
USCC = Limits(license_id_format="uscc")
VALID_USCC = [
    "91110000600037341L",
    "91310115MA1K3BTP2B",
    "9144030071526726XG",
    "91440300568520498A",
    "121200004013590816",
    "92340602MA2PBMEM24",
]


@pytest.mark.parametrize("license_id", VALID_USCC)
def test_uscc_mode_accepts_valid_codes(license_id):
    s = parse({**GOOD, "license_id": license_id}, USCC)
    assert isinstance(s, Submission) and s.license_id == license_id


@pytest.mark.parametrize(
    "license_id, reason",
    [
        ("91110000600037341N", "BAD_CHECK_DIGIT:license_id"),  # stdnum's own checksum example
        ("91310115MA1K3BTP2C", "BAD_CHECK_DIGIT:license_id"),
        ("A1110000600037341L", "BAD_FORMAT:license_id"),  # the first 8 must be digits
        ("9111000060003IOZSV", "BAD_FORMAT:license_id"),  # I, O, Z, S, V are not in the alphabet
        ("12345", "BAD_FORMAT:license_id"),
        ("91110000600037341L0", "BAD_FORMAT:license_id"),
        ("91110000600037341l", "BAD_FORMAT:license_id"),  # not normalized: the id keys state and tokens
        ("9111 0000 6000 3734 1L", "BAD_FORMAT:license_id"),
        ("91330100MA2H0X1234", "BAD_CHECK_DIGIT:license_id"),  # GOOD's licence: fine in "any" mode
    ],
)
def test_uscc_mode_rejects_bad_codes_naming_the_field(license_id, reason):
    r = parse({**GOOD, "license_id": license_id}, USCC)
    assert isinstance(r, Rejection) and r.reason == reason
    assert "Unified Social Credit Code" in r.error and license_id in r.error
    assert r.fields["license_id"] == license_id and r.fields["event_id"] == GOOD["event_id"]  # echoed


def test_any_format_is_the_default_and_accepts_any_licence_id():
    assert Limits().license_id_format == "any"
    for license_id in ("91330100MA2H0X1234", "L1", "yiwu seller 7"):
        assert isinstance(parse({**GOOD, "license_id": license_id}), Submission)


def test_a_missing_licence_is_named_before_its_format():
    assert parse({**GOOD, "license_id": ""}, USCC).reason == "MISSING_FIELD:license_id"


def test_the_setting_reaches_the_parser(tmp_path):
    carriers = settings_mod.DEFAULT_CONFIG.parent / "carriers.toml"
    config = tmp_path / "t.toml"
    config.write_text(f'[policy]\nlicense_id_format = "uscc"\n[carriers]\nfile = "{carriers}"\n')
    limits = settings_mod.load(config, env={}).limits
    assert limits.license_id_format == "uscc"
    assert parse({**GOOD, "license_id": "91110000600037341N"}, limits).reason == "BAD_CHECK_DIGIT:license_id"
    config.write_text(f'[policy]\nlicense_id_format = "usc"\n[carriers]\nfile = "{carriers}"\n')
    with pytest.raises(settings_mod.SettingsError, match="license_id_format must be any or uscc"):
        settings_mod.load(config, env={})


# --- Exact limits, reasons, messages and echoes: what a publisher reads in its dead letter -------

ECHO = {
    k: GOOD[k] for k in ("event_id", "license_id", "store_id", "order_id", "carrier_code", "tracking_no", "shipped_at")
}


def without(name):
    return {k: v for k, v in GOOD.items() if k != name}


@pytest.mark.parametrize(
    ("event", "reason", "error", "fields"),
    [
        (without("carrier_code"), "MISSING_FIELD:carrier_code", "field 'carrier_code' is missing", without("carrier_code")),
        ({**GOOD, "store_id": "  "}, "MISSING_FIELD:store_id", "field 'store_id' is empty", {**ECHO, "store_id": "  "}),
        ({**GOOD, "order_id": 1001}, "BAD_TYPE:order_id", "field 'order_id' must be a string, got int", without("order_id")),
        ({**GOOD, "license_id": ["L"]}, "BAD_TYPE:license_id", "field 'license_id' must be a string, got list", without("license_id")),
        ({**GOOD, "event_id": "x" * 129}, "TOO_LONG:event_id", "field 'event_id' has 129 characters, at most 128", without("event_id")),
        ({**GOOD, "store_id": "a\x00b"}, "BAD_CHARS:store_id", "field 'store_id' holds control characters", {**ECHO, "store_id": "a\x00b"}),
        ({**GOOD, "source": "fax"}, "BAD_VALUE:source", "source must be one of ['api', 'erp', 'manual']", ECHO),
        ({**GOOD, "tracking_no": "- _ -"}, "MISSING_FIELD:tracking_no", "tracking_no is empty after normalization", {**ECHO, "tracking_no": "- _ -"}),
        ({**GOOD, "tracking_no": "A" * 41}, "TOO_LONG:tracking_no", "tracking_no has 41 characters, at most 40", {**ECHO, "tracking_no": "A" * 41}),
        ({**GOOD, "tracking_no": "RR12345678€CN"}, "BAD_CHARS:tracking_no", "tracking_no may hold only letters and digits", {**ECHO, "tracking_no": "RR12345678€CN"}),
        ({**GOOD, "shipped_at": "2026-11-25T08:00:00"}, "BAD_TIME:shipped_at", "shipped_at is not RFC 3339 with an offset: not an RFC 3339 date-time", {**ECHO, "shipped_at": "2026-11-25T08:00:00"}),
        ({**GOOD, "shipped_at": "2026-11-25T08:00:00.000"}, "BAD_TIME:shipped_at", "shipped_at is not RFC 3339 with an offset: RFC 3339 needs an offset", {**ECHO, "shipped_at": "2026-11-25T08:00:00.000"}),
        ({**GOOD, "carrier_code": "-"}, "MISSING_FIELD:carrier_code", "carrier_code is empty after normalization", {**ECHO, "carrier_code": "-"}),
        # A format failure echoes the normalized carrier and number: what the check was run on.
        ({**GOOD, "tracking_no": "rr 1234 5678 4cn"}, "BAD_CHECK_DIGIT", "tracking_no RR123456784CN fails its carrier's check digit", {**ECHO, "carrier_code": "CHINAPOST", "tracking_no": "RR123456784CN"}),
        ({**GOOD, "tracking_no": "hello"}, "UNKNOWN_FORMAT:tracking_no", "tracking_no HELLO fits no format of its carrier", {**ECHO, "carrier_code": "CHINAPOST", "tracking_no": "HELLO"}),
    ],
)  # fmt: skip
def test_a_rejection_names_the_field_says_what_is_wrong_and_echoes_what_is_readable(event, reason, error, fields):
    r = parse(event)
    assert isinstance(r, Rejection), r
    assert (r.reason, r.error, r.fields) == (reason, error, {k: v for k, v in fields.items() if k in ECHO})


@pytest.mark.parametrize(
    ("raw", "reason", "error"),
    [
        (None, "EMPTY_MESSAGE", "the message has no value"),
        (b"[1, 2]", "NOT_AN_OBJECT", "event must be a JSON object, got list"),
        (b'"text"', "NOT_AN_OBJECT", "event must be a JSON object, got str"),
    ],
)
def test_a_message_that_is_no_event_says_so(raw, reason, error):
    r = parse_submission(raw, NOW, CARRIERS, Limits())
    assert (r.reason, r.error, r.fields) == (reason, error, {})


def test_the_event_size_limit_is_inclusive_and_named():
    limits = Limits()
    base = orjson.dumps({**GOOD, "note": ""})
    exact = orjson.dumps({**GOOD, "note": "x" * (limits.max_event_bytes - len(base))})
    assert len(exact) == limits.max_event_bytes and isinstance(parse(exact), Submission)
    over = exact[:-1] + b" }"
    r = parse(over)
    assert (r.reason, r.error, r.fields) == ("TOO_LARGE", "event is 16385 bytes, at most 16384", {})


def test_malformed_json_says_why():
    r = parse(b"{not json")
    assert r.reason == "MALFORMED_JSON" and r.error.startswith("not valid JSON: ") and r.fields == {}
    assert len(r.error) > len("not valid JSON: ")  # orjson's own explanation follows


def test_field_limits_are_inclusive():
    # 128 for ids, 32 for a carrier code, 64 for a time, 4 x 40 for a number as sent (separators)
    ok = parse({**GOOD, "event_id": "e" * 128, "carrier_code": "C" * 32, "tracking_no": "RR123456785CN" + "-" * 147})
    assert isinstance(ok, Submission) and ok.event_id == "e" * 128 and ok.carrier_code == "C" * 32
    assert parse({**GOOD, "carrier_code": "C" * 33}).reason == "TOO_LONG:carrier_code"
    assert parse({**GOOD, "tracking_no": "RR123456785CN" + "-" * 148}).reason == "TOO_LONG:tracking_no"
    # Python reads any number of fractional digits: 20 + 38 + 6 = 64 characters, still a valid time
    long_time = "2026-11-25T08:00:00." + "0" * 38 + "+08:00"
    assert len(long_time) == 64 and parse({**GOOD, "shipped_at": long_time}).shipped_at == "2026-11-25T00:00:00.000Z"
    r = parse({**GOOD, "shipped_at": "2026-11-25T08:00:00." + "0" * 39 + "+08:00"})
    assert (r.reason, r.error) == ("TOO_LONG:shipped_at", "field 'shipped_at' has 65 characters, at most 64")


def test_fields_at_their_limit_are_echoed_and_longer_ones_are_not():
    number = "RR123456785CN" + "-" * 147  # 160 characters as sent, 13 after normalization
    event = {**GOOD, "event_id": "e" * 128, "carrier_code": "C" * 32, "tracking_no": number, "shipped_at": "never"}
    r = parse(event)
    assert r.reason == "BAD_TIME:shipped_at"
    assert r.fields == {
        **ECHO,
        "event_id": "e" * 128,
        "carrier_code": "C" * 32,
        "tracking_no": number,
        "shipped_at": "never",
    }
    r = parse({**event, "event_id": "e" * 129})
    assert r.reason == "TOO_LONG:event_id" and "event_id" not in r.fields and r.fields["tracking_no"] == number


def test_a_valid_event_keeps_every_field_stripped_and_its_source():
    s = parse({**GOOD, "event_id": " evt-1 ", "order_id": "SO-1001\t", "source": None})
    assert s == Submission(
        event_id="evt-1",
        license_id="91330100MA2H0X1234",
        store_id="hz-01",
        order_id="SO-1001",
        carrier_code="CHINAPOST",
        tracking_no="RR123456785CN",
        shipped_ms=1_795_564_800_000,  # date -u -d 2026-11-25T00:00:00Z +%s
        source=None,
        now_ms=NOW,
        carrier_known=True,
    )
    assert parse(GOOD).source == "erp"


def test_a_licence_id_that_is_no_uscc_says_what_one_looks_like():
    # GB 32100-2015: 18 characters, the first 8 digits, the rest from an alphabet without I O S V Z
    r = parse({**GOOD, "license_id": "12345"}, Limits(license_id_format="uscc"))
    assert r.error == (
        "license_id '12345' is not a Unified Social Credit Code (18 characters: 8 digits, then "
        "digits and upper-case letters other than I, O, S, V, Z; no spaces)"
    )


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        # RFC 3339 section 5.6: "T" and "Z" may be lower case; a space may separate date and time
        ("2026-11-25t08:00:00z", 1_795_593_600_000),  # date -u -d 2026-11-25T08:00:00Z +%s
        ("2026-11-25T08:00:00Z", 1_795_593_600_000),
        ("2026-11-25 16:00:00+08:00", 1_795_593_600_000),
    ],
)
def test_rfc3339_times_in_each_allowed_spelling(text, ms):
    assert parse_rfc3339_ms(text) == ms


def test_a_time_with_another_separator_is_refused():
    with pytest.raises(ValueError, match="not an RFC 3339 date-time"):
        parse_rfc3339_ms("2026-11-25X08:00:00Z")  # Python alone would read it


def test_full_width_lower_case_numbers_are_upper_cased():
    assert normalize_tracking("ｒｒ １２３４－５６７８ ５ｃｎ") == "RR123456785CN"


def test_a_number_of_exactly_the_normalized_limit_is_accepted():
    s = parse({**GOOD, "carrier_code": "acme", "tracking_no": "A" * Limits().max_tracking_chars})
    assert isinstance(s, Submission) and s.tracking_no == "A" * 40
