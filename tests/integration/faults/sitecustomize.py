"""Fault injection for the broker tests: a real worker process whose decision raises for chosen numbers.

A test starts the worker with this directory on PYTHONPATH and `TRACKGUARD_TEST_RAISE_FOR` set to
tracking numbers (comma-separated); Python imports this module at start-up, before the worker
imports the processor, so `streams.processor.decide` is this wrapper (in the Python build). Nothing in `streams/`
knows about it.
"""

import os

_numbers = frozenset(filter(None, os.environ.get("TRACKGUARD_TEST_RAISE_FOR", "").split(",")))
if _numbers:
    # Replacing a function takes on the Python build only: compiled modules call each other
    # natively (streams/native.py), so this worker runs the decision path's Python reference.
    os.environ["TRACKGUARD_PURE"] = "1"
    import streams.processor as _processor

    _decide = _processor.decide

    def _faulty_decide(state, sub, policy):
        if sub.tracking_no in _numbers:
            raise RuntimeError(f"injected fault deciding {sub.tracking_no}")
        return _decide(state, sub, policy)

    _processor.decide = _faulty_decide
