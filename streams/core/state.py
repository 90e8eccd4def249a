"""The stored form of a number's state: versioned JSON, decoded and encoded in one place.

Version 1 (until issue 15) had no version field; version 2 is the same document with `"v": 2`;
version 3 (issue 29) keys `judged` and `commands` by (licence, id) (`rules.scoped_id`). Reading a
v1/v2 state scopes its ids: a command result names its licence; a judged event id takes the licence
of the one use with the same time, verdict and reason. An id whose licence cannot be told (its use
aged out of the bounded `uses`, or two licences match) is dropped, and is decided again by rules
3-8 like an id evicted by `policy.max_judged` (a true re-push is still `accepted`, rule 3).
A state of an unknown (newer) version means a newer worker wrote it: deciding with it could
silently misread it, so it is an error for the whole worker (`StateVersionError`), never one
record's verdict.
"""

from __future__ import annotations

from typing import Any

import orjson

from .rules import State, scoped_id

STATE_VERSION = 3


class StateVersionError(Exception):
    """A stored state this code does not know how to read."""


def decode(raw: bytes) -> State:
    doc: dict[str, Any] = orjson.loads(raw)
    version = doc.pop("v", 1)
    if version == STATE_VERSION:
        return doc  # type: ignore[return-value]
    if version in (1, 2):
        return _scope_ids(doc)
    raise StateVersionError(
        f"a stored state has version {version!r}; this worker reads versions 1 to {STATE_VERSION}: "
        f"run the trackguard release that wrote it, or a newer one"
    )


_VERSION_PREFIX = b'{"v":%d,' % STATE_VERSION


def encode(state: State) -> bytes:
    """The state with `"v"` first. Spliced into orjson's bytes rather than copying the dict: a
    stored state never holds "v" (decode takes it out), and the bytes are the same."""
    if not state:
        return orjson.dumps({"v": STATE_VERSION})
    return _VERSION_PREFIX + orjson.dumps(state)[1:]


def _scope_ids(doc: dict[str, Any]) -> State:
    """Versions 1 and 2: the same fields (1 lacked the marker), ids not yet scoped (see above)."""
    if doc.get("judged"):
        # A Judged row is [verdict, code, reason, frozen_until, bound_to, decided_ms, seq]; a Use row
        # is [licence, store, order, at_ms, verdict, reason].
        licences: dict[tuple[Any, ...], set[str]] = {}
        for use in doc.get("uses", ()):
            licences.setdefault((use[3], use[4], use[5]), set()).add(use[0])
        judged = {}
        for event_id, row in doc["judged"].items():
            found = licences.get((row[5], row[0], row[2]), set())
            if len(found) == 1:
                judged[scoped_id(next(iter(found)), event_id)] = row
        doc["judged"] = judged
    if doc.get("commands"):
        doc["commands"] = {
            scoped_id(result["license_id"], command_id): result
            for command_id, result in doc["commands"].items()
            if isinstance(result.get("license_id"), str)
        }
    return doc  # type: ignore[return-value]


# The used list's index (one per licence, in each partition's store): a key per number bound to
# the licence, written with the binding (and so in the changelog, restored with it). Index keys
# start with NUL, which no tracking number ([A-Z0-9]) and no licence id (no control characters)
# holds, so they sort before every number and cannot collide with one.
INDEX_MARK = b"\x00"
INDEX_VALUE = b"1"  # not empty: an empty changelog value is too close to a tombstone (None) to trust


def used_index_prefix(license_id: str) -> bytes:
    return b"\x00used\x00" + license_id.encode() + b"\x00"


def used_index_key(license_id: str, number: bytes) -> bytes:
    return used_index_prefix(license_id) + number


# The cross-licence reuse index: a key per number claimed by a second licence (core.reuse),
# written by the decision that made it so; the admin's reuse report costs what is reused.
REUSE_INDEX_PREFIX = b"\x00reuse\x00"


def reuse_index_key(number: bytes) -> bytes:
    return REUSE_INDEX_PREFIX + number
