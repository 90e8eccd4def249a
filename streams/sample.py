"""A realistic multi-store sample: three licences, several stores each, and the real failure causes.

Deterministic for a given seed. Each event carries the Kafka timestamp it should be sent with
(the rules' "now"), spread over a few days so that freezes both hold and expire within the sample,
and whether it is keyed the way `trackguard import` keys (by normalized number) or the way a
legacy plug-in does (by store id, which makes the worker re-key it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import orjson

from .core.carriers import CarrierBook
from .core.check_digits import s10_number

HOUR_MS = 3_600_000
CST = timezone(timedelta(hours=8))

LICENSES = {
    # Unified Social Credit Codes (shape only) of three sellers, and their stores
    "91330782MA2HY3KX4Q": ["yiwu-amazon-us", "yiwu-ebay-uk", "yiwu-temu", "yiwu-shopee-sg"],
    "91440300MA5G8Q2L7B": ["sz-amazon-de", "sz-aliexpress", "sz-walmart"],
    "91350200MA8RJ1T07C": ["xm-etsy", "xm-shopify", "xm-amazon-jp", "xm-mercadolibre"],
}
CARRIER_MIX = [
    ("CAINIAO", 30),
    ("YANWEN", 14),
    ("4PX", 14),
    ("CHINAPOST", 10),
    ("UPS", 10),
    ("FEDEX", 8),
    ("DHL", 8),
    ("USPS", 6),
]
CARRIER_SPELLINGS = {
    "CHINAPOST": ["China Post", "chinapost", "CHINA_POST"],
    "4PX": ["4px", "4PX"],
    "FEDEX": ["FedEx", "FDX"],
    "CAINIAO": ["cainiao", "CAINIAO"],
}
S10_PREFIX = {"CAINIAO": "LP", "YANWEN": "UG", "4PX": "RB", "CHINAPOST": "RR", "USPS": "EZ"}


@dataclass(frozen=True)
class SampleEvent:
    ts_ms: int  # Kafka timestamp to send with
    value: bytes  # the submission as published (may be malformed on purpose)
    by_store: bool  # True: keyed by store id (forces the re-keying hop)
    store_id: str
    cause: str  # what the sample meant to exercise; the verdicts say what happened


class NumberMaker:
    def __init__(self, rng: random.Random, carriers: CarrierBook) -> None:
        self.rng, self.carriers = rng, carriers

    def _with_check(self, carrier: str, body: str) -> str:
        for d in "0123456789":
            if self.carriers.validate(carrier, body + d) is None:
                return body + d
        raise ValueError(f"no check digit fits {carrier} {body}")

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    def make(self, carrier: str) -> str:
        r = self.rng
        if carrier in S10_PREFIX and (carrier in ("CHINAPOST", "USPS") or r.random() < 0.5):
            return s10_number(int(self.digits(8)), S10_PREFIX[carrier], "CN" if carrier != "USPS" else "US")
        if carrier == "CAINIAO":
            return "LP00" + self.digits(12)
        if carrier == "YANWEN":
            return f"UG{self.digits(9)}YP"
        if carrier == "4PX":
            return f"4PX{self.digits(14)}CN"
        if carrier == "UPS":
            return self._with_check(
                "UPS",
                "1Z" + "".join(r.choice("0123456789ABCDEFGHJKLMNPRSTVWXY") for _ in range(6)) + "03" + self.digits(7),
            )
        if carrier == "FEDEX":
            return self._with_check("FEDEX", self.digits(11))
        if carrier == "DHL":
            body = str(r.randint(10**8, 10**9 - 1))
            return body + str(int(body) % 7)
        if carrier == "USPS":
            return self._with_check("USPS", "9400" + self.digits(17))
        raise ValueError(carrier)


def _retype(number: str, rng: random.Random) -> str:
    """How people re-type a number: full-width digits from a Chinese IME, spaces, dashes, lower case."""
    style = rng.choice(["fullwidth", "spaces", "dashes", "lower"])
    if style == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in number)
    if style == "spaces":
        return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    if style == "dashes":
        return "-".join(number[i : i + 5] for i in range(0, len(number), 5))
    return number.lower()


def _mistype_s10(number: str, rng: random.Random) -> str:
    i = rng.randrange(2, 10)
    wrong = str((int(number[i]) + rng.randint(1, 9)) % 10)
    return number[:i] + wrong + number[i + 1 :]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=CST).isoformat(timespec="seconds")


def generate(
    shipments: int,
    carriers: CarrierBook,
    *,
    seed: int = 7,
    end_ms: int,
    span_hours: int = 96,
    by_store_share: float = 0.2,
) -> list[SampleEvent]:
    """`shipments` first pushes plus the re-pushes, re-typings and mistakes real sellers make."""
    rng = random.Random(seed)
    maker = NumberMaker(rng, carriers)
    start_ms = end_ms - span_hours * HOUR_MS
    out: list[SampleEvent] = []
    seq = 0

    def emit(ts: int, fields: dict | bytes, store: str, cause: str, by_store: bool | None = None) -> None:
        value = fields if isinstance(fields, bytes) else orjson.dumps(fields)
        keyed_by_store = rng.random() < by_store_share if by_store is None else by_store
        out.append(SampleEvent(min(ts, end_ms), value, keyed_by_store, store, cause))

    def event(lic: str, store: str, order: str, carrier: str, number: str, shipped_ms: int, source: str) -> dict:
        nonlocal seq
        seq += 1
        spelled = rng.choice(CARRIER_SPELLINGS.get(carrier, [carrier]))
        return {
            "event_id": f"{store}-{seq:07d}",
            "license_id": lic,
            "store_id": store,
            "order_id": order,
            "carrier_code": spelled,
            "tracking_no": number,
            "shipped_at": _iso(shipped_ms),
            "source": source,
        }

    licences = list(LICENSES)
    carrier_names = [c for c, _ in CARRIER_MIX]
    weights = [w for _, w in CARRIER_MIX]
    for i in range(shipments):
        lic = rng.choice(licences)
        store = rng.choice(LICENSES[lic])
        order = f"{store.split('-', 1)[1].upper()}-{100000 + i}"
        carrier = rng.choices(carrier_names, weights)[0]
        number = maker.make(carrier)
        ts = start_ms + int((end_ms - start_ms) * i / max(shipments, 1))
        shipped = ts - rng.randint(1, 6) * HOUR_MS
        first = event(lic, store, order, carrier, number, shipped, rng.choice(["erp", "erp", "api"]))
        emit(ts, first, store, "first push")

        roll = rng.random()
        later = ts + rng.randint(1, 90) * 60_000
        if roll < 0.04:  # ERP re-pushes the very same event after a sync error
            emit(later, first, store, "ERP re-push, same event id")
        elif roll < 0.07:  # ERP re-pushes the same shipment under a new event id
            emit(later, event(lic, store, order, carrier, number, shipped, "erp"), store, "ERP re-push, new event id")
        elif roll < 0.085:  # a person re-types the number for another order of the licence
            other_store = rng.choice(LICENSES[lic])
            emit(
                later,
                event(lic, other_store, f"M-{i}", carrier, _retype(number, rng), shipped + HOUR_MS, "manual"),
                other_store,
                "re-typed number, other order",
            )
            if rng.random() < 0.5:  # ...and tries again a day later (frozen) or four days later (blacklisted)
                again = later + rng.choice([24, 100]) * HOUR_MS
                emit(
                    again,
                    event(lic, other_store, f"M-{i}b", carrier, number, shipped + 2 * HOUR_MS, "manual"),
                    other_store,
                    "retry on a frozen/blacklisted number",
                )
        elif roll < 0.095:  # the same order re-typed with full-width digits: still the same number
            emit(
                later,
                event(lic, store, order, carrier, _retype(number, rng), shipped, "manual"),
                store,
                "re-typed number, same order",
            )
        elif roll < 0.11:  # a forwarder hands the same number to a customer of another licence
            other = rng.choice([x for x in licences if x != lic])
            other_store = rng.choice(LICENSES[other])
            emit(
                later,
                event(other, other_store, f"FW-{i}", carrier, number, shipped + HOUR_MS, "api"),
                other_store,
                "forwarder reused number",
            )
        elif roll < 0.117:  # the right number under the wrong carrier
            # S10 numbers fit every postal carrier's format, so the mismatch reaches rule 8; other
            # numbers usually fit no format of the wrong carrier and are `invalid` (rule 1) first.
            s10_carriers = [c for c in S10_PREFIX if c != carrier and c != "USPS"]
            wrong = rng.choice(
                s10_carriers
                if carrier in S10_PREFIX and number[:2].isalpha() and number[-2:].isalpha()
                else [c for c in carrier_names if c != carrier]
            )
            emit(later, event(lic, store, order, wrong, number, shipped, "erp"), store, "carrier mismatch")
        elif roll < 0.124:  # a correction with a ship time earlier than the first push
            emit(
                later,
                event(lic, store, order, carrier, number, shipped - 3 * HOUR_MS, "erp"),
                store,
                "ship time goes backwards",
            )
        elif roll < 0.134 and carrier in ("CHINAPOST", "USPS"):  # a mistyped S10 digit
            emit(
                later,
                event(lic, store, f"{order}-2", carrier, _mistype_s10(number, rng), shipped, "manual"),
                store,
                "mistyped S10 number",
            )
        elif roll < 0.139:  # broken plug-ins
            broken = rng.choice(
                [
                    orjson.dumps(first)[:-7],
                    orjson.dumps({k: v for k, v in first.items() if k != "carrier_code"}),
                    orjson.dumps({**first, "shipped_at": "25/11/2026 10:00"}),
                ]
            )
            emit(later, broken, store, "malformed event")
    out.sort(key=lambda e: e.ts_ms)
    return out
