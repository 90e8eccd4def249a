"""The HTTP API's handlers without a broker or a web server: a backend of plain dicts.

The wiring (streams/web.py: forwarding, fan-out, publishing commands) is tested with real
workers in tests/integration/test_api_e2e.py.
"""

from __future__ import annotations

import csv
import io

import orjson
import pytest

from streams import api
from streams import settings as settings_mod
from streams.api import Access, Caller, CheckPlan, CommandRequest, Forward, Reply
from streams.core.events import Submission
from streams.core.rules import Policy, decide

LIMITS = settings_mod.load().limits
NOW = 1_790_000_000_000
OTHER = "http://127.0.0.1:9/"  # a worker that owns some numbers


class DictBackend:
    def __init__(self, states: dict[str, dict] | None = None, elsewhere: set[str] = frozenset()) -> None:
        self.limits = LIMITS
        self.states = states or {}
        self.elsewhere = elsewhere

    def read(self, key: bytes):
        return self.states.get(key.decode())

    def owner(self, key: bytes):
        return OTHER if key.decode() in self.elsewhere else None

    def now_ms(self) -> int:
        return NOW


def bound(number: str, license_id: str = "L1", order: str = "O1") -> dict:
    sub = Submission(f"e-{number}", license_id, "S1", order, "CHINAPOST", number, NOW, "api", NOW)
    return decide(None, sub, Policy())[1]


L1, L2, ADMIN = Caller("L1"), Caller("L2"), Caller(None)


def test_tracking_answers_here_forwards_to_the_owner_and_refuses_garbage():
    backend = DictBackend({"RR123456785CN": bound("RR123456785CN")}, elsewhere={"RR999999995CN"})
    here = api.tracking(backend, L1, "rr 1234-5678 5cn", routed=False)
    assert isinstance(here, Reply) and here.status == 200
    assert here.body["binding"]["order_id"] == "O1"
    assert api.tracking(backend, L2, "RR123456785CN", routed=False).body["binding"] == "other-license"
    assert api.tracking(backend, L1, "RR999999995CN", routed=False) == Forward(OTHER)
    assert api.tracking(backend, L1, "RR999999995CN", routed=True).status == 200  # forwarded once, never twice
    assert api.tracking(backend, L1, "RR 12/34", routed=False).status == 400


def test_check_splits_by_owner_and_merges_the_answers():
    backend = DictBackend({"RR123456785CN": bound("RR123456785CN")}, elsewhere={"RR999999995CN"})
    plan = api.check(
        backend, L1, {"tracking_numbers": ["RR123456785CN", "RR999999995CN", "no way!", "RR111111115CN"]}, routed=False
    )
    assert isinstance(plan, CheckPlan) and plan.remote == {OTHER: [1]}
    assert orjson.loads(plan.forward_body([1])) == {"tracking_numbers": ["RR999999995CN"], "license_id": "L1"}
    plan.merge([1], {"results": [{"tracking_no": "RR999999995CN", "status": "available"}]})
    statuses = [r["status"] for r in plan.reply().body["results"]]
    assert statuses == ["bound", "available", "invalid", "available"]
    assert api.check(backend, ADMIN, {"tracking_numbers": [], "license_id": "L9"}, False).license_id == "L9"
    assert api.check(backend, L1, {"tracking_numbers": ["X"] * 1001}, False).status == 413
    assert api.check(backend, L1, ["RR123456785CN"], False).status == 400


def test_used_list_access_paging_and_csv():
    assert api.used_query(L2, "L1", {}).status == 403
    assert api.used_query(L1, "L1", {"limit": "ten"}).status == 400
    q = api.used_query(ADMIN, "L1", {"limit": "2", "format": "csv", "after": "A"})
    assert q == api.UsedQuery("L1", "A", 2, True)
    rows = [
        {"tracking_no": n, "carrier_code": "C", "store_id": "S", "order_id": "O", "shipped_at": "t", "fingerprint": "f"}
        for n in ("C3", "A1", "B2")
    ]
    page = api.used_page(q, rows)
    assert page.content_type == "text/csv" and page.headers == {"X-Next-After": "B2"}
    assert [r["tracking_no"] for r in csv.DictReader(io.StringIO(page.body))] == ["A1", "B2"]
    last = api.used_page(api.UsedQuery("L1", "", 5, False), rows)
    assert last.body["next_after"] is None and len(last.body["items"]) == 3


def test_commands_act_only_for_the_callers_licence_and_go_to_the_owner():
    backend = DictBackend(elsewhere={"RR999999995CN"})
    assert api.command(backend, L1, "destroy", {}, False).status == 404
    assert api.command(backend, L1, "release", [], False).status == 400
    assert (
        api.command(backend, L1, "release", {"license_id": "L2", "tracking_no": "RR123456785CN"}, False).status == 403
    )
    assert api.command(backend, L1, "release", {"tracking_no": "??"}, False).status == 400
    request = api.command(backend, L1, "release", {"tracking_no": "rr123456785cn", "order_id": "O1"}, False)
    assert isinstance(request, CommandRequest) and request.key == b"RR123456785CN"
    assert request.body["license_id"] == "L1" and request.body["command_id"].startswith("http-")
    admin = api.command(backend, ADMIN, "release", {"license_id": "L7", "tracking_no": "RR123456785CN"}, False)
    assert admin.body["license_id"] == "L7"
    away = api.command(backend, L1, "reserve", {"tracking_no": "RR999999995CN", "command_id": "c1"}, False)
    assert isinstance(away, Forward) and orjson.loads(away.body)["command_id"] == "c1"


def test_bodies_and_tokens():
    assert api.parse_body(b'{"a": 1}') == ({"a": 1}, None)
    assert api.parse_body(b"{nope")[1].status == 400
    assert api.parse_body(b" " * (api.MAX_BODY + 1))[1].status == 413
    access = Access({"L1": "one", "L2": "two"}, "root")
    assert access.caller("Bearer one") == L1 and access.caller("Bearer root") == ADMIN
    assert access.caller("Bearer nope") is None and access.caller("one") is None and access.caller(None) is None


def test_the_openapi_document_is_the_routes_and_the_worker_serves_exactly_those():
    from streams.app import create_app

    doc = api.openapi()
    assert {(r.path, r.method) for r in api.ROUTES} == {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert doc["paths"]["/licenses/{license_id}/used"]["get"]["parameters"][0]["name"] == "license_id"
    # No broker needed to build the app: markers forced, so nothing probes one.
    app = create_app(settings_mod.load().with_(changelog_markers="always", broker="127.0.0.1:9"))
    served = {r.canonical for r in app.web.web_app.router.resources()}
    declared = {"/commands/{kind}" if r.path.startswith("/commands/") else r.path for r in api.ROUTES}
    assert served == declared


@pytest.mark.parametrize("number", ["RR123456785CN", "ＲＲ１２３４５６７８５ＣＮ"])
def test_numbers_are_normalized_as_the_rules_normalize_them(number):
    assert api.number_of(number, LIMITS) == "RR123456785CN"
