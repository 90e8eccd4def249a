"""The console's views without a broker: which files are served, whoami, and the live counts."""

from __future__ import annotations

import re
from collections import Counter

import orjson

from streams import api, console, i18n
from streams.api import Caller


def test_only_the_console_files_and_catalogues_are_served():
    html, kind = console.asset("index.html")
    assert kind.startswith("text/html") and b"/console/console.js" in html
    # every script and stylesheet the page loads is served, from this package (no CDN)
    for src in re.findall(rb'(?:src|href)="(/[^"]+)"', html):
        assert console.asset(src.decode().removeprefix("/console/")) is not None, src
    assert not re.search(rb'(?:src|href)="(https?:)?//', html)
    body, kind = console.asset("reasons.json")
    assert kind.startswith("application/json") and orjson.loads(body) == orjson.loads(i18n.raw("reasons"))
    for name in ("../settings.py", "__init__.py", "missing.js", "settings.json", "reasons", ""):
        assert console.asset(name) is None, name


def test_every_label_the_page_uses_is_in_the_catalogue():
    html = console.asset("index.html")[0].decode()
    script = console.asset("console.js")[0].decode()
    keys = set(re.findall(r'data-i18n="([^"]+)"', html))
    keys |= set(re.findall(r'\bt\("([a-z_]+\.[a-z_.]+|[a-z_]+)"', script))
    words = i18n.catalogue("console")
    assert keys and sorted(k for k in keys if k not in words) == []


def test_whoami():
    assert api.whoami(Caller("L1")).body == {"license_id": "L1", "admin": False}
    assert api.whoami(Caller(None)).body == {"license_id": None, "admin": True}


def test_live_counts_sum_over_carriers_and_workers():
    mine = api.live_counts(
        Counter(
            {
                ("accepted", "FIRST_USE", "CHINAPOST"): 5,
                ("accepted", "FIRST_USE", "UPS"): 2,
                ("duplicate", "USED_BY_LICENSE", "UPS"): 1,
            }
        )
    )
    assert mine == {"verdicts": {"accepted": 7, "duplicate": 1}, "reasons": {"FIRST_USE": 7, "USED_BY_LICENSE": 1}}
    theirs = api.live_counts(Counter({("invalid", "BAD_CHECK_DIGIT", ""): 3, ("accepted", "FIRST_USE", "UPS"): 1}))
    reply = api.live_reply([mine, theirs], asked=3, at_ms=42)
    assert reply.body == {
        "at_ms": 42,
        "workers": 2,
        "workers_asked": 3,
        "verdicts": {"accepted": 8, "duplicate": 1, "invalid": 3},
        "reasons": {"BAD_CHECK_DIGIT": 3, "FIRST_USE": 8, "USED_BY_LICENSE": 1},
    }
