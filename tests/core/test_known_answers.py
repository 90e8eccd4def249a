"""Known answers computed outside the code under test, so that a wrong formula cannot agree with itself.

The fingerprints below were computed once with `md5sum`-equivalent hashlib on the spec's string
(`carrier|number|epoch ms`, epoch ms from `datetime.fromisoformat`) and written down here as
literals; the check-digit answers come from the jkeen data set (tests/core/test_carriers.py).
"""

from __future__ import annotations

import orjson
import pytest

from streams import settings as settings_mod
from streams.core.events import Submission, parse_submission
from streams.core.rules import Policy, decide

SETTINGS = settings_mod.load()


@pytest.mark.parametrize(
    ("carrier", "number", "shipped_at", "fingerprint"),
    [
        # 2026-11-30T08:00:00+08:00 = 1795996800000 ms; md5("CHINAPOST|RR123456785CN|1795996800000")
        ("china post", "rr 1234-5678 5cn", "2026-11-30T08:00:00+08:00", "32cd784ef845c2561114174d13357a74"),
        # the same instant written in UTC must give the same fingerprint
        ("CHINAPOST", "RR123456785CN", "2026-11-30T00:00:00Z", "32cd784ef845c2561114174d13357a74"),
        # 2026-12-01T08:00:00+08:00 = 1796083200000 ms; md5("UPS|1Z999AA10123456784|1796083200000")
        ("ups", "1Z 999 AA1 01 2345 6784", "2026-12-01T08:00:00+08:00", "d02337ceb9ac169f75075c92bd8d3dc7"),
    ],
)
def test_fingerprint_known_answers(carrier, number, shipped_at, fingerprint):
    raw = orjson.dumps(
        {
            "event_id": "e",
            "license_id": "L",
            "store_id": "S",
            "order_id": "O",
            "carrier_code": carrier,
            "tracking_no": number,
            "shipped_at": shipped_at,
        }
    )
    sub = parse_submission(raw, 1_796_000_000_000, SETTINGS.carriers, SETTINGS.limits)
    assert isinstance(sub, Submission), sub
    verdict, _ = decide(None, sub, Policy())
    assert verdict["fingerprint"] == fingerprint
