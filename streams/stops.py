"""Why the worker last stopped, kept in its data directory: a crash loop is named, not guessed at.

A worker that stops on a broker- or worker-wide failure writes one line of why to
`<data_dir>/last-stop.json` before it exits non-zero, and counts how many starts in a row ended
in that same failure (numbers in the reason, such as offsets, are not part of "the same"). The
next start reads it: a repeat is logged as a crash loop and shown in /metrics
(`trackguard_consecutive_fatal_stops`), so an operator sees a worker that restarts, runs for six
seconds and dies, every time, for what it is. A clean stop clears it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("trackguard.stops")

FILE = "last-stop.json"
EX_WORKER_FAILED = 70  # the exit status of a worker stopped by a failure (EX_SOFTWARE)
_data_dir: list[Path] = []  # set once by the worker (`watch`): where `fatal` writes


@dataclass(frozen=True)
class LastStop:
    reason: str  # one line: what stopped the worker
    repeats: int  # starts in a row that ended in this same failure
    at: float  # when (epoch seconds)


def same(a: str, b: str) -> bool:
    """The same failure, whatever offsets, ports or pids it names."""
    return re.sub(r"\d+", "#", a) == re.sub(r"\d+", "#", b)


def read(data_dir: Path) -> LastStop | None:
    try:
        raw = json.loads((Path(data_dir) / FILE).read_text())
        return LastStop(str(raw["reason"]), int(raw["repeats"]), float(raw["at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def watch(data_dir: Path) -> LastStop | None:
    """At start: remember where to write, and say what the last stop was (a crash loop if it repeats)."""
    _data_dir[:] = [Path(data_dir)]
    last = read(data_dir)
    if last is not None and last.repeats > 1:
        log.error(
            "crash loop: the last %d starts of this worker each ended in the same failure: %s",
            last.repeats,
            last.reason,
        )
    elif last is not None:
        log.warning("the last run of this worker stopped on a failure: %s", last.reason)
    return last


def fatal(reason: str) -> int:
    """Record a fatal stop (one line); returns how many starts in a row have ended in it."""
    line = " ".join(reason.split())[:500]
    if not _data_dir:
        return 1
    last = read(_data_dir[0])
    repeats = last.repeats + 1 if last is not None and same(last.reason, line) else 1
    try:
        _data_dir[0].mkdir(parents=True, exist_ok=True)
        tmp = _data_dir[0] / f".{FILE}.{os.getpid()}"
        tmp.write_text(json.dumps({"reason": line, "repeats": repeats, "at": time.time()}))
        tmp.replace(_data_dir[0] / FILE)
    except OSError:
        pass  # a disk that refuses the note must not hide the failure itself
    return repeats


def clean() -> None:
    """A clean stop: the next start is no repeat of anything."""
    if _data_dir:
        (_data_dir[0] / FILE).unlink(missing_ok=True)


def explain(exc: BaseException) -> str:
    """One line a person can act on, for a failure that stopped the worker outside our own checks."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    if name == "ConsistencyError":
        return (
            f"{text} — the changelog topic holds less than this worker's RocksDB: records were removed "
            "from it (a topic deleted and created again, an unclean leader election). Stop the worker, "
            "move its data directory aside and start it again: its state is rebuilt from the changelog"
        )
    return f"{name}: {text or 'no message'} (the trace is in the log above)"
