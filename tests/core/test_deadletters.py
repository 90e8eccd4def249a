"""Dead letters always fit: whatever the payload and fields, the encoded record stays within the limit."""

from __future__ import annotations

import base64
import hashlib

import orjson
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from streams.core.deadletters import (
    MAX_KEY_BYTES,
    Source,
    dead_letter,
    dead_letter_key,
    internal_error,
    invalid_verdict,
    produce_failed,
)
from streams.core.events import REQUIRED, Limits, Rejection

LIMITS = Limits()
SOURCE = Source("shipments.submitted", 3, 41)
NOW = 1_790_000_000_000


def encoded_size(out: dict) -> int:
    return len(orjson.dumps(out))


def test_small_payload_is_kept_whole_with_its_digest_and_source():
    raw = b'{"event_id": "e1", "license_id": '
    out = dead_letter("MALFORMED_JSON", "not valid JSON", {"event_id": "e1"}, raw, NOW, SOURCE, LIMITS)
    assert base64.b64decode(out["raw"]) == raw and out["raw_truncated"] is False
    assert (out["raw_length"], out["raw_sha256"]) == (len(raw), hashlib.sha256(raw).hexdigest())
    assert out["source"] == {"topic": "shipments.submitted", "partition": 3, "offset": 41}
    assert (out["verdict"], out["code"], out["event_id"], out["license_id"]) == ("invalid", "INVALID_EVENT", "e1", None)
    assert out["fingerprint"] is None and out["bound_to"] is None and out["replay"] is False  # every verdict has them
    assert out["decided_at"] == "2026-09-21T14:13:20.000Z"  # date -u -d @1790000000


def test_payload_just_past_what_fits_keeps_a_prefix():
    limit = 8192
    limits = Limits(max_dead_letter_bytes=limit, dead_letter_prefix_bytes=1000)
    fits = [
        n
        for n in range(4000, 7000, 7)
        if not dead_letter("TOO_LARGE", "e", {}, b"x" * n, NOW, SOURCE, limits)["raw_truncated"]
    ]
    largest = max(fits)
    whole = dead_letter("TOO_LARGE", "e", {}, b"x" * largest, NOW, SOURCE, limits)
    cut = dead_letter("TOO_LARGE", "e", {}, b"x" * (largest + 7), NOW, SOURCE, limits)
    assert encoded_size(whole) <= limit < encoded_size(whole) + 16  # whole up to the very limit
    assert cut["raw_truncated"] and len(base64.b64decode(cut["raw"])) == 1000 and cut["raw_length"] == largest + 7


@hsettings(max_examples=200, deadline=None)
@given(
    size=st.integers(0, 1_100_000),
    fill=st.sampled_from([b"7", "运".encode(), b"\xff", b'"']),
    fields=st.dictionaries(st.sampled_from(REQUIRED), st.text(max_size=128), max_size=7),
    error=st.text(max_size=5000),
    max_bytes=st.integers(8192, 400_000),
)
def test_any_payload_up_to_the_broker_limit_gives_a_dead_letter_within_the_limit(size, fill, fields, error, max_bytes):
    limits = Limits(max_dead_letter_bytes=max_bytes)
    raw = (fill * size)[:size]
    out = dead_letter("TOO_LARGE", error, fields, raw, NOW, SOURCE, limits)
    assert encoded_size(out) <= max_bytes
    kept = base64.b64decode(out["raw"])
    assert raw.startswith(kept) and (kept == raw) is (not out["raw_truncated"])
    assert out["raw_sha256"] == hashlib.sha256(raw).hexdigest() and out["raw_length"] == size


def test_a_refused_record_is_always_compact():
    raw = b"v" * 50_000
    out = produce_failed(
        "MSG_SIZE_TOO_LARGE", "Broker: Message size too large", "shipments.accepted", raw, NOW, None, LIMITS
    )
    assert out["reason"] == "PRODUCE_FAILED:MSG_SIZE_TOO_LARGE" and out["raw_truncated"] is True
    assert len(base64.b64decode(out["raw"])) == LIMITS.dead_letter_prefix_bytes
    assert out["error"].startswith("shipments.accepted: ")


def test_long_keys_are_replaced_by_their_digest():
    assert dead_letter_key(None) is None
    assert dead_letter_key(b"k" * MAX_KEY_BYTES) == b"k" * MAX_KEY_BYTES
    assert (
        dead_letter_key(b"k" * (MAX_KEY_BYTES + 1)) == hashlib.sha256(b"k" * (MAX_KEY_BYTES + 1)).hexdigest().encode()
    )


def test_each_kind_of_dead_letter_keeps_the_raw_bytes_and_the_source():
    raw = b'{"event_id": "e1"'
    rejection = Rejection("MALFORMED_JSON", "not valid JSON", {"event_id": "e1"})
    for out in (
        invalid_verdict(rejection, raw, NOW, SOURCE, LIMITS),
        internal_error(KeyError("boom"), raw, NOW, SOURCE, LIMITS),
        produce_failed("INVALID_RECORD", "Broker: invalid record", "shipments.accepted", raw, NOW, SOURCE, LIMITS),
    ):
        assert base64.b64decode(out["raw"]) == raw and out["raw_truncated"] is False, out["reason"]
        assert (out["raw_length"], out["raw_sha256"]) == (len(raw), hashlib.sha256(raw).hexdigest())
        assert out["source"] == {"topic": "shipments.submitted", "partition": 3, "offset": 41}
    internal = internal_error(KeyError("boom"), raw, NOW, SOURCE, LIMITS)
    assert (internal["reason"], internal["error"]) == ("INTERNAL_ERROR", "KeyError: 'boom'")


def test_a_refused_record_without_a_value_is_an_empty_raw():
    out = produce_failed("INVALID_RECORD", "invalid", "shipments.accepted", None, NOW, None, LIMITS)
    assert (out["raw"], out["raw_length"], out["raw_truncated"], out["source"]) == ("", 0, False, None)
    assert out["raw_sha256"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256 of b""


def test_a_refused_record_of_exactly_the_prefix_size_is_kept_whole():
    prefix = LIMITS.dead_letter_prefix_bytes
    exact = produce_failed("MSG_SIZE_TOO_LARGE", "too large", "t", b"p" * prefix, NOW, None, LIMITS)
    assert exact["raw_truncated"] is False and base64.b64decode(exact["raw"]) == b"p" * prefix
    over = produce_failed("MSG_SIZE_TOO_LARGE", "too large", "t", b"p" * (prefix + 1), NOW, None, LIMITS)
    assert over["raw_truncated"] is True and base64.b64decode(over["raw"]) == b"p" * prefix


def test_the_raw_bytes_are_kept_whole_exactly_while_the_whole_dead_letter_fits():
    """Truncated if and only if the dead letter with the whole payload (base64 by the standard
    library) would exceed the limit: checked byte by byte around the boundary for several limits."""
    for limit in range(8192, 8200):
        limits = Limits(max_dead_letter_bytes=limit, dead_letter_prefix_bytes=100)
        for n in range(5700, 5900):  # the boundary is near 5,795 bytes
            raw = b"x" * n
            out = dead_letter("TOO_LARGE", "e", {}, raw, NOW, SOURCE, limits)
            whole = {**out, "raw": base64.b64encode(raw).decode(), "raw_truncated": False}
            assert out["raw_truncated"] is (encoded_size(whole) > limit), (limit, n)
