"""`trackguard demo` runs end to end and leaves nothing running."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streams.demo import run_demo

pytestmark = pytest.mark.broker


def children() -> set[int]:
    """Pids of this process's children, from /proc (the demo's broker and worker would be among them)."""
    mine = str(os.getpid())
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if fields[1] == mine:  # ppid
            found.add(int(stat.parent.name))
    return found


def test_demo_decides_the_whole_sample_prints_the_summary_and_leaves_nothing_running(tmp_path, capsys):
    before = children()
    assert run_demo(events=300, workdir=tmp_path / "demo") == 0
    out = capsys.readouterr().out
    assert "verdict / reason" in out and "Throughput:" in out and "Where to look next:" in out
    assert "accepted / FIRST_USE" in out
    # The store alerts it found are those the pure core calls for, and one licence is reconciled.
    alerts_line = next(line for line in out.splitlines() if line.startswith("Store alerts on"))
    published, called = alerts_line.split(": ")[1].split(" (the pure core counts ")
    assert published == called.split(" ")[0]
    assert "Reconciliation of licence" in out and "matched" in out
    assert (tmp_path / "demo" / "sample.jsonl").stat().st_size > 0
    assert children() - before == set(), "the demo left a process running"
