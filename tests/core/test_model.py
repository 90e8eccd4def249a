"""The core against an independent model (tests/model.py), step by step.

A hypothesis state machine submits, replays event ids, re-pushes, reserves, releases, appeals and
moves the clock, over a few numbers, licences, stores, orders and carriers so that every rule
fires often; after each step the verdict (or command result) and the number's binding,
reservation, freezes and blacklist must be the model's. Plausible bugs this catches and a
one-direction property would not: rules 4 and 5 swapped, rule 3 dropped, reservations ignored,
a freeze extended by a frozen verdict, an appeal that unbinds.
"""

from __future__ import annotations

from datetime import datetime

from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from streams.core.commands import Command, apply_command
from streams.core.events import Submission
from streams.core.rules import HOUR_MS, Policy, decide

from ..model import Model

NUMBERS = ["RR100000001CN", "RR100000002CN", "RR100000003CN"]
LICENCES, STORES, ORDERS, CARRIERS = ["L1", "L2"], ["S1", "S2"], ["O1", "O2", "O3"], ["CHINAPOST", "YANWEN"]
BASE = 1_790_000_000_000
POLICY = Policy()


def ms(rfc3339: str | None) -> int | None:
    """The core's timestamp text back to epoch ms, with the standard library (not the core)."""
    return None if rfc3339 is None else int(datetime.fromisoformat(rfc3339).timestamp() * 1000)


class CoreAgainstModel(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.now = BASE
        self.model = Model(POLICY.freeze_ms)
        self.states: dict[str, dict] = {}
        self.event_ids: list[tuple[str, str]] = []  # (event id, number) already used
        self.command_ids: list[tuple[str, str, str, dict, dict]] = []  # (id, kind, number, fields, model's)
        self.serial = 0

    def _new_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def _submit(self, event_id: str, licence: str, store: str, order: str, carrier: str, no: str, hours: int) -> None:
        shipped = BASE + hours * HOUR_MS
        sub = Submission(event_id, licence, store, order, carrier, no, shipped, "api", self.now)
        verdict, self.states[no] = decide(self.states.get(no), sub, POLICY)
        expected = self.model.submit(event_id, licence, store, order, carrier, no, shipped, self.now)
        got = (
            verdict["verdict"],
            verdict["code"],
            verdict["reason"],
            ms(verdict.get("frozen_until")),
            verdict["bound_to"],
            verdict["replay"],
        )
        assert got == (
            expected.verdict,
            expected.code,
            expected.reason,
            expected.frozen_until,
            expected.bound_to,
            expected.replay,
        ), (sub, got, expected)

    @rule(
        licence=st.sampled_from(LICENCES),
        store=st.sampled_from(STORES),
        order=st.sampled_from(ORDERS),
        carrier=st.sampled_from(CARRIERS),
        no=st.sampled_from(NUMBERS),
        hours=st.integers(0, 3),
    )
    def submit(self, licence: str, store: str, order: str, carrier: str, no: str, hours: int) -> None:
        event_id = self._new_id("e")
        self.event_ids.append((event_id, no))
        self._submit(event_id, licence, store, order, carrier, no, hours)

    @rule(data=st.data(), licence=st.sampled_from(LICENCES), order=st.sampled_from(ORDERS), hours=st.integers(0, 3))
    def replay_an_event_id(self, data: st.DataObject, licence: str, order: str, hours: int) -> None:
        if not self.event_ids:
            return
        event_id, no = data.draw(st.sampled_from(self.event_ids))
        self._submit(event_id, licence, "S1", order, "CHINAPOST", no, hours)  # other fields: still a replay

    @rule(hours=st.sampled_from([0, 1, 24, 71, 72, 73, 200]))
    def time_passes(self, hours: int) -> None:
        self.now += hours * HOUR_MS

    def _command(self, command_id: str, kind: str, licence: str, no: str, fields: dict, model_fields: dict) -> None:
        self.command_ids.append((command_id, kind, no, fields, model_fields))
        cmd = Command(kind, command_id, licence, no, self.now, fields)
        result, self.states[no] = apply_command(self.states.get(no), cmd, POLICY)
        expected = self.model.command(command_id, kind, licence, no, self.now, **model_fields)
        assert (result["ok"], result["error"], result["replay"]) == expected, (cmd, result, expected)

    @rule(
        licence=st.sampled_from(LICENCES),
        store=st.sampled_from(STORES),
        order=st.sampled_from(ORDERS),
        carrier=st.sampled_from(CARRIERS),
        no=st.sampled_from(NUMBERS),
        ttl_h=st.sampled_from([1, 24, 100]),
    )
    def reserve(self, licence: str, store: str, order: str, carrier: str, no: str, ttl_h: int) -> None:
        cid = self._new_id("c")
        fields = {"store_id": store, "order_id": order, "carrier_code": carrier, "ttl_s": ttl_h * 3600}
        self._command(
            cid,
            "reserve",
            licence,
            no,
            fields,
            {"store": store, "order": order, "carrier": carrier, "ttl_s": ttl_h * 3600},
        )

    @rule(licence=st.sampled_from(LICENCES), order=st.sampled_from(ORDERS), no=st.sampled_from(NUMBERS))
    def release(self, licence: str, order: str, no: str) -> None:
        cid = self._new_id("c")
        self._command(cid, "release", licence, no, {"order_id": order}, {"order": order})

    @rule(
        licence=st.sampled_from(LICENCES),
        no=st.sampled_from(NUMBERS),
        decision=st.sampled_from(["pending", "approved", "rejected"]),
    )
    def appeal(self, licence: str, no: str, decision: str) -> None:
        cid = self._new_id("c")
        fields = {"evidence_sha256": "ab" * 32, "evidence_ref": "T-1", "decided_by": "ops", "decision": decision}
        self._command(cid, "appeal", licence, no, fields, {"decision": decision})

    @rule(data=st.data(), licence=st.sampled_from(LICENCES))
    def repeat_a_command_id(self, data: st.DataObject, licence: str) -> None:
        """The same licence: the first result again; another licence: its own new command."""
        if not self.command_ids:
            return
        cid, kind, no, fields, model_fields = data.draw(st.sampled_from(self.command_ids))
        self._command(cid, kind, licence, no, fields, model_fields)

    @invariant()
    def state_is_the_models(self) -> None:
        for no, n in self.model.numbers.items():
            state = self.states.get(no) or {}
            b = state.get("binding")
            assert (
                None if b is None else (b["license"], b["store"], b["order"], b["carrier"], b["shipped_ms"])
            ) == n.binding
            r = state.get("reservation")
            live = r is not None and r["expires_ms"] > self.now
            model_live = n.reservation is not None and n.reservation[4] > self.now
            assert live == model_live
            if live:
                assert (r["license"], r["store"], r["order"], r["carrier"], r["expires_ms"]) == n.reservation
            assert state.get("frozen", {}) == n.frozen
            assert set(state.get("blacklist", [])) == n.blacklist


CoreAgainstModel.TestCase.settings = hsettings(max_examples=300, stateful_step_count=40, deadline=None)
test_core_against_the_model = CoreAgainstModel.TestCase
