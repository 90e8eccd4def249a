"""The stored form of a number's state: versioned JSON, decoded and encoded in one place.

Version 1 (until issue 15) had no version field; version 2 is the same document with `"v": 2`.
A state of an unknown (newer) version means a newer worker wrote it: deciding with it could
silently misread it, so it is an error for the whole worker (`StateVersionError`), never one
record's verdict.
"""

from __future__ import annotations

from typing import Any

import orjson

from .rules import State

STATE_VERSION = 2


class StateVersionError(RuntimeError):
    """A stored state this code does not know how to read."""


def decode(raw: bytes) -> State:
    doc: dict[str, Any] = orjson.loads(raw)
    version = doc.pop("v", 1)
    if version == STATE_VERSION:
        return doc  # type: ignore[return-value]
    if version == 1:
        return _from_v1(doc)
    raise StateVersionError(
        f"a stored state has version {version!r}; this worker reads versions 1 to {STATE_VERSION}: "
        f"run the trackguard release that wrote it, or a newer one"
    )


def encode(state: State) -> bytes:
    return orjson.dumps({"v": STATE_VERSION, **state})


def _from_v1(doc: dict[str, Any]) -> State:
    """Version 1 had the same fields: only the version marker was missing."""
    return doc  # type: ignore[return-value]
