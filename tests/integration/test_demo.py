"""`trackguard demo` runs end to end and leaves nothing running."""

from __future__ import annotations

import pytest

from streams.demo import run_demo

pytestmark = pytest.mark.broker


def test_demo_decides_the_whole_sample_and_prints_the_summary(tmp_path, capsys):
    assert run_demo(events=300, workdir=tmp_path / "demo") == 0
    out = capsys.readouterr().out
    assert "verdict / reason" in out and "Throughput:" in out and "Where to look next:" in out
    assert "accepted / FIRST_USE" in out
    assert (tmp_path / "demo" / "sample.jsonl").stat().st_size > 0
