"""The stored state: versioned, upgraded from the format before versions, never misread."""

from __future__ import annotations

import orjson
import pytest

from streams import settings as settings_mod
from streams.core import state as codec
from streams.core.events import Submission
from streams.core.rules import Judged, Policy, Use, decide, scoped_id
from streams.partitioning import partition_for
from streams.processor import GuardProcessor, InRecord

NOW = 1_790_000_000_000
# A state exactly as the worker stored it before versions (issue 15): positional rows, no "v".
V1 = (
    b'{"binding":{"license":"L1","store":"S1","order":"O1","carrier":"CHINAPOST","shipped_ms":1790000000000},'
    b'"judged":{"e1":["accepted","ACCEPTED","FIRST_USE",null,{"store_id":"S1","order_id":"O1"},1790000000000,1],'
    b'"e2":["duplicate","TRACKING_DUPLICATE","USED_BY_LICENSE",1790259200000,{"store_id":"S1","order_id":"O1"},'
    b'1790000000000,2]},"uses":[["L1","S1","O1",1790000000000,"accepted","FIRST_USE"],'
    b'["L1","S1","O2",1790000000000,"duplicate","USED_BY_LICENSE"]],"frozen":{"L1":1790259200000},'
    b'"blacklist":["L1"],"seq":2}'
)


def sub(event_id: str, order: str = "O1") -> Submission:
    return Submission(event_id, "L1", "S1", order, "CHINAPOST", "RR123456785CN", NOW, "api", NOW + 1000)


def test_a_state_from_before_versions_is_read_and_decides_as_before():
    state = codec.decode(V1)
    assert Judged(*state["judged"][scoped_id("L1", "e2")]).reason == "USED_BY_LICENSE"
    assert Use(*state["uses"][1]).order == "O2"
    again, same = decide(state, sub("e2", "O2"), Policy())
    assert (again["verdict"], again["reason"], again["replay"], again["seq"]) == (
        "duplicate",
        "USED_BY_LICENSE",
        True,
        2,
    )
    frozen, new = decide(state, sub("e3", "O3"), Policy())
    assert (frozen["verdict"], frozen["reason"], new["seq"]) == ("frozen", "FROZEN_AFTER_DUPLICATE", 3)
    stored = orjson.loads(codec.encode(new))
    assert stored["v"] == codec.STATE_VERSION and codec.decode(codec.encode(new)) == new


def test_a_newer_version_is_an_error_for_the_worker_not_a_record():
    raw = orjson.dumps({"v": codec.STATE_VERSION + 1, "seq": 1})
    with pytest.raises(codec.StateVersionError, match=f"version {codec.STATE_VERSION + 1}"):
        codec.decode(raw)
    settings = settings_mod.load()
    p = partition_for(b"RR123456785CN", settings.partitions)
    event = orjson.dumps(
        {
            "event_id": "e9",
            "license_id": "L1",
            "store_id": "S1",
            "order_id": "O1",
            "carrier_code": "CHINAPOST",
            "tracking_no": "RR123456785CN",
            "shipped_at": "2026-11-20T08:00:00Z",
        }
    )
    record = InRecord(settings.topics.submitted, p, 0, b"RR123456785CN", event, NOW)
    with pytest.raises(codec.StateVersionError):  # not swallowed as one record's INTERNAL_ERROR
        GuardProcessor(settings).process([record], lambda _p, _k: raw)


def test_rows_are_written_in_the_field_order_they_are_read_by():
    verdict, state = decide(None, sub("e1"), Policy())
    row = Judged(*state["judged"][scoped_id("L1", "e1")])
    assert (row.verdict, row.code, row.reason, row.bound_to, row.decided_ms, row.seq, row.frozen_until_ms) == (
        verdict["verdict"],
        verdict["code"],
        verdict["reason"],
        verdict["bound_to"],
        NOW + 1000,
        1,
        None,
    )
    use = Use(*state["uses"][-1])
    assert (use.license, use.store, use.order, use.at_ms, use.verdict, use.reason) == (
        "L1",
        "S1",
        "O1",
        NOW + 1000,
        "accepted",
        "FIRST_USE",
    )


def test_a_version_2_state_scopes_its_ids_to_their_licences():
    """Ids stored before issue 29 were per number only: each takes its licence where that can be
    told (a command result names it; an event id, its one matching use), else it is dropped."""
    v2 = {
        "v": 2,
        "binding": {"license": "L1", "store": "S1", "order": "O1", "carrier": "CHINAPOST", "shipped_ms": NOW},
        "judged": {
            "e1": ["accepted", "ACCEPTED", "FIRST_USE", None, {"store_id": "S1", "order_id": "O1"}, NOW, 1],
            "e2": ["duplicate", "TRACKING_DUPLICATE", "USED_BY_OTHER_LICENSE", NOW + 9, "other-license", NOW + 5, 2],
            "gone": ["duplicate", "TRACKING_DUPLICATE", "USED_BY_LICENSE", NOW + 9, None, NOW - 99, 0],
        },
        "uses": [
            ["L1", "S1", "O1", NOW, "accepted", "FIRST_USE"],
            ["L2", "S2", "O2", NOW + 5, "duplicate", "USED_BY_OTHER_LICENSE"],
        ],
        "commands": {"c1": {"command_id": "c1", "license_id": "L2", "ok": False, "error": "ALREADY_BOUND", "seq": 3}},
        "seq": 3,
    }
    state = codec.decode(orjson.dumps(v2))
    assert list(state["judged"]) == [scoped_id("L1", "e1"), scoped_id("L2", "e2")]
    assert list(state["commands"]) == [scoped_id("L2", "c1")]
    # L2 re-sending its own e2 is a replay; L1 re-sending e2 (another licence's id) is decided anew.
    again, same = decide(
        state, Submission("e2", "L2", "S2", "O2", "CHINAPOST", "RR123456785CN", NOW, "api", NOW + 7), Policy()
    )
    assert again["replay"] and again["reason"] == "USED_BY_OTHER_LICENSE" and same is state
    fresh, _ = decide(state, sub("e2", "O1"), Policy())
    assert (fresh["reason"], fresh["replay"]) == ("SAME_ORDER_REPUSH", True) and fresh["seq"] == 4
