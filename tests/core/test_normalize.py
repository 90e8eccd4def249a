"""Times and numbers: the fast paths against the general ones they stand in for."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from streams.core.normalize import _any_rfc3339_ms, _common_rfc3339_ms, format_ms, parse_rfc3339_ms


def two(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map(lambda n: f"{n:02d}")


# Near-valid pieces: out-of-range fields, odd separators and fraction lengths, other digits.
times = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, zone: f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{zone}",
    st.sampled_from(["1970", "2026", "2024", "0001", "9999", "1969", "20２6"]),
    two(0, 13),
    two(0, 32),
    st.sampled_from(["T", "t", " "]),
    two(0, 25),
    two(0, 61),
    two(0, 61),
    st.sampled_from(["", ".123", ".999999", ".1", ".12345", ".1234567", ".12a", ".１２３"]),
    st.sampled_from(
        ["Z", "z", "+08:00", "-05:30", "+00:00", "-00:00", "+23:59", "+24:00", "+08:60", "+0800", "", "+08"]
    ),
)


@hsettings(max_examples=2000)
@given(times)
@example("2026-11-20T08:00:00.123+08:00")
@example("2024-02-29T23:59:59.999999-05:30")
@example("1969-12-31T23:59:59.999Z")
def test_the_common_shapes_read_as_datetime_reads_them(value):
    fast = _common_rfc3339_ms(value)
    try:
        general: int | None = _any_rfc3339_ms(value)
    except ValueError:
        general = None
    if fast is not None:
        assert fast == general
    # And what the caller gets is the general answer, fast path or not.
    if general is None:
        with pytest.raises(ValueError):
            parse_rfc3339_ms(value)
    else:
        assert parse_rfc3339_ms(value) == general


def test_the_common_shapes_take_the_fast_path():
    for value in ("2026-11-20T08:00:00Z", "2026-11-20T08:00:00.123+08:00", "2026-11-20 08:00:00.123456-05:30"):
        assert _common_rfc3339_ms(value) is not None


@given(st.integers(-(10**13), 10**14))
def test_format_ms_reads_back(epoch_ms):
    assert parse_rfc3339_ms(format_ms(epoch_ms)) == epoch_ms
