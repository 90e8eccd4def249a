"""Commands through the broker: rule 6 (reservations), expiry by event time, appeals."""

from __future__ import annotations

import time

import pytest

from .conftest import fresh_s10

pytestmark = pytest.mark.broker
HOUR_MS = 3_600_000
SHA = "0f" * 32


def test_rule6_reserved_number_is_refused_to_others_and_accepted_for_the_holder(guard):
    number = fresh_s10()
    r = guard.verdict(
        guard.command("reserve", tracking_no=number, store_id="S9", order_id="O9", carrier_code="CHINAPOST", ttl_s=3600)
    )
    assert (r["ok"], r["error"], r["_topic"]) == (True, None, guard.settings.topics.command_results)
    other = guard.verdict(guard.submit(tracking_no=number, license_id="L2"))
    assert (other["verdict"], other["reason"]) == ("duplicate", "RESERVED_BY_OTHER")
    holder = guard.verdict(guard.submit(tracking_no=number, store_id="S9", order_id="O9"))
    assert (holder["verdict"], holder["reason"]) == ("accepted", "RESERVED_NUMBER_USED")
    again = guard.verdict(
        guard.command("reserve", tracking_no=number, store_id="S1", order_id="O1", carrier_code="CHINAPOST", ttl_s=60)
    )
    assert (again["ok"], again["error"]) == (False, "ALREADY_BOUND")


def test_reservation_expires_by_event_time_and_command_ids_are_idempotent(guard):
    number = fresh_s10()
    t = int(time.time() * 1000)
    cid = guard.command(
        "reserve",
        tracking_no=number,
        store_id="S9",
        order_id="O9",
        carrier_code="CHINAPOST",
        ttl_s=60,
        ts_ms=t - 2 * HOUR_MS,
    )
    assert guard.verdict(cid)["ok"]
    v = guard.verdict(guard.submit(tracking_no=number, ts_ms=t))  # two hours later: expired
    assert (v["verdict"], v["reason"]) == ("accepted", "FIRST_USE")
    guard.publisher.send(
        {
            "command": "reserve",
            "command_id": cid,
            "license_id": "L1",
            "tracking_no": number,
            "store_id": "S9",
            "order_id": "O9",
            "carrier_code": "CHINAPOST",
            "ttl_s": 60,
        },
        topic=guard.settings.topics.commands,
    )
    guard.publisher.flush()
    replayed = guard.verdict(cid, nth=1)
    assert (replayed["ok"], replayed["replay"]) == (True, True)  # the first result again


def test_approved_appeal_lifts_freeze_and_blacklist_without_unbinding(guard):
    number = fresh_s10()
    guard.verdict(guard.submit(tracking_no=number, license_id="L2", store_id="S7", order_id="O7"))
    assert guard.verdict(guard.submit(tracking_no=number))["reason"] == "USED_BY_OTHER_LICENSE"
    assert guard.verdict(guard.submit(tracking_no=number, order_id="O3"))["verdict"] == "frozen"
    appeal = guard.verdict(
        guard.command(
            "appeal",
            tracking_no=number,
            evidence_sha256=SHA,
            evidence_ref="ticket-42",
            decided_by="ops",
            decision="approved",
        )
    )
    assert appeal["ok"]
    # Not frozen, not blacklisted any more, but the number is still L2's: a fresh duplicate.
    v = guard.verdict(guard.submit(tracking_no=number, order_id="O4"))
    assert (v["verdict"], v["reason"]) == ("duplicate", "USED_BY_OTHER_LICENSE")
    owner = guard.verdict(guard.submit(tracking_no=number, license_id="L2", store_id="S7", order_id="O7"))
    assert owner["verdict"] == "accepted"


def test_invalid_command_gets_a_clear_error(guard):
    cid = guard.command("release", tracking_no=fresh_s10())  # no order_id
    r = guard.verdict(cid)
    assert (r["ok"], r["error"]) == (False, "INVALID_COMMAND:order_id")


def test_zz_every_record_this_module_read_fits_the_contract(guard):
    """Runs last in this module: verdicts and command results as the worker wrote them (with a
    command of its own, so that it means something when run alone)."""
    guard.verdict(guard.command("release", tracking_no=fresh_s10(), order_id="O1"))
    assert any(v["_topic"] == guard.settings.topics.command_results for v in guard.collector.verdicts)
    assert guard.contract_violations() == []
