"""A deliberately plain reference of the rules and commands, written from the contract
(docs/CONTRACT.md, the product spec's rules 2-8 and commands), not from streams/core.

No bounds, no seq, no encoding: one small object per tracking number and the rules as the spec
words them, in order. tests/core/test_model.py drives it and the real core side by side.
Names of reasons and errors the spec leaves open are the contract's (docs/CONTRACT.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

OTHER = "other-license"


@dataclass
class Number:
    binding: tuple[str, str, str, str, int] | None = None  # licence, store, order, carrier, shipped
    reservation: tuple[str, str, str, str, int] | None = None  # licence, store, order, carrier, expires
    frozen: dict[str, int] = field(default_factory=dict)  # licence -> frozen until
    blacklist: set[str] = field(default_factory=set)
    # Idempotency keys belong to their licence: (licence, id) -> first answer.
    judged: dict[tuple[str, str], tuple] = field(default_factory=dict)
    commands: dict[tuple[str, str], tuple] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    verdict: str
    code: str
    reason: str
    frozen_until: int | None
    bound_to: object
    replay: bool


class Model:
    def __init__(self, freeze_ms: int) -> None:
        self.freeze_ms = freeze_ms
        self.numbers: dict[str, Number] = {}

    def number(self, no: str) -> Number:
        return self.numbers.setdefault(no, Number())

    @staticmethod
    def _seen_by(n: Number, licence: str) -> object:
        if n.binding is None:
            return None
        if n.binding[0] != licence:
            return OTHER
        return {"store_id": n.binding[1], "order_id": n.binding[2]}

    def submit(
        self, event_id: str, licence: str, store: str, order: str, carrier: str, no: str, shipped: int, now: int
    ) -> Answer:
        n = self.number(no)
        # Rule 2: an event id this licence already had judged for this number: the same answer again.
        if (licence, event_id) in n.judged:
            first = n.judged[licence, event_id]
            return Answer(*first[:5], replay=True)
        answer = self._decide(n, licence, store, order, carrier, shipped, now)
        n.judged[licence, event_id] = (answer.verdict, answer.code, answer.reason, answer.frozen_until, answer.bound_to)
        return answer

    def _decide(self, n: Number, licence: str, store: str, order: str, carrier: str, shipped: int, now: int) -> Answer:
        b = n.binding
        # Rule 3: the binder's own order again, same carrier, not earlier: accepted, a replay.
        if b is not None and b[0] == licence and b[2] == order and b[3] == carrier and shipped >= b[4]:
            n.binding = (b[0], b[1], b[2], b[3], max(b[4], shipped))
            return Answer("accepted", "ACCEPTED", "SAME_ORDER_REPUSH", None, self._seen_by(n, licence), True)
        # Rule 4: frozen for this licence (the freeze is not extended).
        until = n.frozen.get(licence)
        if until is not None and until > now:
            return Answer(
                "frozen", "TRACKING_FROZEN", "FROZEN_AFTER_DUPLICATE", until, self._seen_by(n, licence), False
            )
        # Rule 5: blacklisted for this licence.
        if licence in n.blacklist:
            return self._duplicate(n, licence, "BLACKLISTED", now)
        # Rule 6: someone else's live reservation.
        r = n.reservation
        live = r is not None and r[4] > now
        if live and (r[0] != licence or r[2] != order):
            return self._duplicate(n, licence, "RESERVED_BY_OTHER", now)
        # Rule 7: unbound: the first use binds it (and ends any reservation).
        if b is None:
            n.binding = (licence, store, order, carrier, shipped)
            n.reservation = None
            reason = "RESERVED_NUMBER_USED" if live else "FIRST_USE"
            return Answer("accepted", "ACCEPTED", reason, None, {"store_id": store, "order_id": order}, False)
        # Rule 8: bound to something else, checked in this order.
        if b[3] != carrier:
            return self._duplicate(n, licence, "CARRIER_MISMATCH", now)
        if b[0] != licence:
            return self._duplicate(n, licence, "USED_BY_OTHER_LICENSE", now)
        if b[2] != order:
            return self._duplicate(n, licence, "USED_BY_LICENSE", now)
        return self._duplicate(n, licence, "TIMESTAMP_REGRESSION", now)

    def _duplicate(self, n: Number, licence: str, reason: str, now: int) -> Answer:
        # Every duplicate blacklists the number for the licence and freezes it from the event's time.
        seen = self._seen_by(n, licence)
        n.blacklist.add(licence)
        n.frozen[licence] = now + self.freeze_ms
        return Answer("duplicate", "TRACKING_DUPLICATE", reason, now + self.freeze_ms, seen, False)

    # --- commands: (ok, error, replay) -----------------------------------------------------------

    def command(self, command_id: str, kind: str, licence: str, no: str, now: int, **f: object) -> tuple:
        n = self.number(no)
        if (licence, command_id) in n.commands:  # a licence's repeated command id: the first result again
            return (*n.commands[licence, command_id], True)
        result = getattr(self, f"_{kind}")(n, licence, now, **f)
        n.commands[licence, command_id] = result
        return (*result, False)

    def _reserve(self, n: Number, licence: str, now: int, store: str, order: str, carrier: str, ttl_s: int) -> tuple:
        r = n.reservation
        if n.binding is not None:
            return (False, "ALREADY_BOUND")
        if r is not None and r[4] > now and (r[0], r[2]) != (licence, order):
            return (False, "ALREADY_RESERVED")
        n.reservation = (licence, store, order, carrier, now + ttl_s * 1000)
        return (True, None)

    def _release(self, n: Number, licence: str, now: int, order: str) -> tuple:
        r = n.reservation
        if r is None or r[4] <= now:
            return (False, "NOT_RESERVED")
        if (r[0], r[2]) != (licence, order):
            return (False, "NOT_HOLDER")
        n.reservation = None
        return (True, None)

    def _appeal(self, n: Number, licence: str, now: int, decision: str) -> tuple:
        if licence not in n.frozen and licence not in n.blacklist:
            return (False, "NOTHING_TO_APPEAL")
        if (
            decision == "approved"
        ):  # (pending and rejected lift nothing) lifts this licence's freeze and blacklist entry, never a binding
            n.frozen.pop(licence, None)
            n.blacklist.discard(licence)
        return (True, None)
