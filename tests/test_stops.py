"""The stop ledger (streams/stops.py): one line of why, repeats counted, a crash loop named."""

from __future__ import annotations

import logging

import pytest

from streams import stops


@pytest.fixture
def ledger(tmp_path):
    stops.watch(tmp_path)
    yield tmp_path
    stops._data_dir.clear()


def test_the_same_failure_at_each_start_is_counted_whatever_numbers_it_names(ledger, caplog):
    assert stops.fatal("the persisted offset of stores-changelog[5] is past its end (47 > 46)") == 1
    assert stops.fatal("the persisted offset of stores-changelog[6] is past its end (93 > 92)") == 2
    with caplog.at_level(logging.ERROR, logger="trackguard.stops"):
        last = stops.watch(ledger)
    assert last is not None and last.repeats == 2 and "(93 > 92)" in last.reason
    assert "crash loop: the last 2 starts" in caplog.text
    assert stops.fatal("broker 127.0.0.1:9092 unreachable for 30 s") == 1  # another failure: not a loop


def test_a_clean_stop_clears_it_and_a_reason_is_one_line(ledger):
    stops.fatal("first line\n  second line")
    assert stops.read(ledger).reason == "first line second line"  # type: ignore[union-attr]
    stops.clean()
    assert stops.read(ledger) is None and stops.watch(ledger) is None


def test_an_unreadable_ledger_is_no_stop(ledger):
    (ledger / stops.FILE).write_text("{not json")
    assert stops.read(ledger) is None and stops.fatal("x") == 1


def test_faust_s_consistency_error_is_explained_as_what_to_do():
    from faust.exceptions import ConsistencyError

    line = stops.explain(ConsistencyError("The persisted offset for changelog topic partition\nis higher (82 > 80)"))
    assert "\n" not in line and "move its data directory aside" in line
    assert stops.explain(RuntimeError("boom")) == "RuntimeError: boom (the trace is in the log above)"
