"""The HTTP API's handlers without a broker or a web server: a backend of plain dicts.

The wiring (streams/web.py: forwarding, fan-out, publishing commands) is tested with real
workers in tests/integration/test_api_e2e.py.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from zoneinfo import ZoneInfo

import orjson
import pytest

from streams import api
from streams import settings as settings_mod
from streams.api import Access, Caller, CheckPlan, CommandRequest, Forward, Reply
from streams.core.events import Submission
from streams.core.performance import Failure, PerformancePolicy, fold, store_key
from streams.core.queries import diagnose, status, used_entry
from streams.core.reconcile import Report, merge
from streams.core.rules import Policy, decide
from streams.erp_import import RowContext, load_column_map

LIMITS = settings_mod.load().limits
NOW = 1_790_000_000_000
OTHER = "http://127.0.0.1:9/"  # a worker that owns some numbers


class DictBackend:
    def __init__(self, states: dict[str, dict] | None = None, elsewhere: set[str] = frozenset()) -> None:
        self.limits = LIMITS
        self.states = states or {}
        self.elsewhere = elsewhere
        self.performance = PerformancePolicy()
        self.stores: dict[bytes, dict] = {}
        self.stores_elsewhere: set[bytes] = set()

    def read(self, key: bytes):
        return self.states.get(key.decode())

    def owner(self, key: bytes):
        return OTHER if key.decode() in self.elsewhere else None

    def now_ms(self) -> int:
        return NOW

    def read_store(self, key: bytes):
        return self.stores.get(key)

    def store_failures(self, license_id: str, store_id: str, month: str, limit: int):
        return [("e-listed", "RR1")][:limit]

    def store_owner(self, key: bytes):
        return OTHER if key in self.stores_elsewhere else None


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
    assert page.content_type == "text/csv" and page.headers["X-Next-After"] == "B2"
    assert page.headers["Content-Disposition"].startswith('attachment; filename="used-L1.csv"')
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


def test_store_performance_access_and_routing():
    backend = DictBackend()
    failures = [
        Failure("L1", "S1", f"e{i}", "duplicate", "USED_BY_LICENSE", "RR1", "2026-11-02T00:00:00Z") for i in range(3)
    ]
    _, states = fold(failures, backend.performance)
    backend.stores.update(states)
    shown = api.performance(backend, Caller("L1"), "S1", {}, routed=False)
    assert shown.status == 200 and [(m["month"], m["failed"], m["lfr_penalty"]) for m in shown.body["months"]] == [
        ("2026-11", 3, 0.5)
    ]
    assert api.performance(backend, Caller("L2"), "S1", {}, False).body["months"] == []  # L2's own S1
    assert api.performance(backend, Caller("L2"), "S1", {"license": "L1"}, False).status == 403
    assert api.performance(backend, Caller(None), "S1", {}, False).status == 400
    assert api.performance(backend, Caller(None), "S1", {"license": "L1"}, False).body == shown.body
    backend.stores_elsewhere.add(store_key("L1", "S1"))
    assert isinstance(api.performance(backend, Caller("L1"), "S1", {}, routed=False), Forward)
    assert api.performance(backend, Caller("L1"), "S1", {}, routed=True).status == 200  # forwarded: answer here


def test_bodies_and_tokens():
    assert api.parse_body(b'{"a": 1}') == ({"a": 1}, None)
    assert api.parse_body(b"{nope")[1].status == 400
    assert api.parse_body(b" " * (api.MAX_BODY + 1))[1].status == 413
    access = Access({"L1": "one", "L2": "two"}, "root")
    assert access.caller("Bearer one") == L1 and access.caller("Bearer root") == ADMIN
    assert access.caller("Bearer nope") is None and access.caller("one") is None and access.caller(None) is None


@pytest.mark.parametrize("number", ["RR123456785CN", "ＲＲ１２３４５６７８５ＣＮ"])
def test_numbers_are_normalized_as_the_rules_normalize_them(number):
    assert api.number_of(number, LIMITS) == "RR123456785CN"


# --- streams/core/queries.py: what a caller may see of a number's state ------------------------
# States are written by hand in the stored shape (streams/core/rules.py State), times as literal
# epoch ms with their RFC 3339 form computed by `date -u -d @<seconds>`, and the fingerprint is
# the known answer of tests/core/test_known_answers.py: md5("CHINAPOST|RR123456785CN|1795996800000").

SHIPPED_MS, SHIPPED_AT = 1_795_996_800_000, "2026-11-30T00:00:00.000Z"
FINGERPRINT = "32cd784ef845c2561114174d13357a74"
BINDING = {"license": "L1", "store": "S1", "order": "O1", "carrier": "CHINAPOST", "shipped_ms": SHIPPED_MS}


def test_status_follows_freeze_blacklist_binding_reservation_in_that_order():
    frozen_and_bound = {"binding": BINDING, "frozen": {"L2": NOW + 1}, "blacklist": ["L2"]}
    assert status(None, "L1", NOW) == status({}, "L1", NOW) == "available"
    assert status(frozen_and_bound, "L2", NOW) == "frozen"
    # The freeze ends at its "until" (rule 4: frozen while until > now); the blacklist stays.
    assert status(frozen_and_bound, "L2", NOW + 1) == "blacklisted"
    assert status(frozen_and_bound, "L1", NOW) == "bound"
    assert status(frozen_and_bound, None, NOW) == "bound"  # the admin has no freeze of its own
    assert status({"binding": BINDING}, "L9", 0) == "bound"  # no freeze for L9, whatever the time
    assert status({"blacklist": ["L2"]}, "L2", NOW) == "blacklisted"
    reserved = {"reservation": {"license": "L2", "store": "S2", "order": "O2", "carrier": "UPS", "expires_ms": NOW + 1}}
    assert status(reserved, "L1", NOW) == "reserved"
    assert status(reserved, "L1", NOW + 1) == "available"  # live while expires_ms > now
    assert status({"frozen": {"L2": NOW + 5}}, "L1", NOW) == "available"  # another licence's freeze


def test_diagnosis_for_the_admin_shows_everything():
    state = {
        "binding": BINDING,
        "frozen": {"L3": NOW + 3_600_000, "L2": NOW},
        "blacklist": ["L2", "L3", "L4"],
        "uses": [
            ["L1", "S1", "O1", 1_789_990_000_000, "accepted", "FIRST_USE"],
            ["L2", "S2", "O2", 1_790_000_000_000, "duplicate", "USED_BY_OTHER_LICENSE"],
        ],
    }
    assert diagnose("RR123456785CN", state, None, NOW) == {
        "tracking_no": "RR123456785CN",
        "status": "bound",
        "binding": {
            "license_id": "L1",
            "store_id": "S1",
            "order_id": "O1",
            "carrier_code": "CHINAPOST",
            "shipped_at": SHIPPED_AT,
            "fingerprint": FINGERPRINT,
        },
        "reservation": None,
        "freezes": [
            {"license_id": "L2", "frozen_until": "2026-09-21T14:13:20.000Z", "active": False},
            {"license_id": "L3", "frozen_until": "2026-09-21T15:13:20.000Z", "active": True},
        ],
        "blacklisted_for": ["L2", "L3", "L4"],
        "uses": [
            {
                "license_id": "L1",
                "store_id": "S1",
                "order_id": "O1",
                "at": "2026-09-21T11:26:40.000Z",
                "verdict": "accepted",
                "reason": "FIRST_USE",
            },
            {
                "license_id": "L2",
                "store_id": "S2",
                "order_id": "O2",
                "at": "2026-09-21T14:13:20.000Z",
                "verdict": "duplicate",
                "reason": "USED_BY_OTHER_LICENSE",
            },
        ],
    }


def test_diagnosis_for_a_licence_reveals_nothing_of_another_licence():
    state = {
        "binding": BINDING,
        "frozen": {"L2": NOW + 3_600_000, "L3": NOW + 7_200_000},
        "blacklist": ["L2", "L3"],
        "uses": [
            ["L1", "S1", "O1", 1_789_990_000_000, "accepted", "FIRST_USE"],
            ["L2", "S2", "O2", 1_790_000_000_000, "duplicate", "USED_BY_OTHER_LICENSE"],
            ["L3", "S3", "O3", 1_790_000_000_000, "duplicate", "USED_BY_OTHER_LICENSE"],
        ],
    }
    assert diagnose("RR123456785CN", state, "L2", NOW) == {
        "tracking_no": "RR123456785CN",
        "status": "frozen",
        "binding": "other-license",
        "reservation": None,
        "freezes": [{"license_id": "L2", "frozen_until": "2026-09-21T15:13:20.000Z", "active": True}],
        "blacklisted_for": ["L2"],
        "uses": [
            {
                "license_id": "L2",
                "store_id": "S2",
                "order_id": "O2",
                "at": "2026-09-21T14:13:20.000Z",
                "verdict": "duplicate",
                "reason": "USED_BY_OTHER_LICENSE",
            }
        ],
        "uses_by_other_licenses": 2,
    }
    mine = diagnose("RR123456785CN", state, "L1", NOW)
    assert mine["binding"]["fingerprint"] == FINGERPRINT and mine["binding"]["license_id"] == "L1"
    assert (mine["status"], mine["freezes"], mine["blacklisted_for"]) == ("bound", [], [])
    assert [u["license_id"] for u in mine["uses"]] == ["L1"] and mine["uses_by_other_licenses"] == 2


def test_diagnosis_of_a_reservation_shows_the_holder_only_to_the_holder_while_it_lives():
    state = {"reservation": {"license": "L1", "store": "S1", "order": "O1", "carrier": "UPS", "expires_ms": NOW + 1}}
    holder_view = {"license_id": "L1", "store_id": "S1", "order_id": "O1", "expires_at": "2026-09-21T14:13:20.001Z"}
    assert diagnose("RR123456785CN", state, "L1", NOW)["reservation"] == holder_view
    assert diagnose("RR123456785CN", state, None, NOW)["reservation"] == holder_view
    assert diagnose("RR123456785CN", state, "L2", NOW)["reservation"] == "other-license"
    assert diagnose("RR123456785CN", state, None, NOW + 1)["reservation"] is None  # expired at expires_ms
    empty = diagnose("RR123456785CN", None, "L1", NOW)
    assert empty == {
        "tracking_no": "RR123456785CN",
        "status": "available",
        "binding": None,
        "reservation": None,
        "freezes": [],
        "blacklisted_for": [],
        "uses": [],
        "uses_by_other_licenses": 0,
    }


def test_the_used_list_names_only_the_binders_numbers_with_their_fingerprint():
    assert used_entry("RR123456785CN", {"binding": BINDING}, "L1") == {
        "tracking_no": "RR123456785CN",
        "carrier_code": "CHINAPOST",
        "store_id": "S1",
        "order_id": "O1",
        "shipped_at": SHIPPED_AT,
        "fingerprint": FINGERPRINT,
    }
    assert used_entry("RR123456785CN", {"binding": BINDING}, "L2") is None
    assert used_entry("RR123456785CN", {"blacklist": ["L1"]}, "L1") is None


def test_reconcile_query_is_the_licences_own_and_a_month_is_yyyy_mm():
    lic, admin = Caller("L1"), Caller(None)
    assert api.reconcile_query(lic, "L2", {}).status == 403  # type: ignore[union-attr]
    assert api.reconcile_query(admin, "L2", {"month": "2026-13"}).status == 400  # type: ignore[union-attr]
    assert api.reconcile_query(admin, "L2", {"month": "2026-1"}).status == 400  # type: ignore[union-attr]
    q = api.reconcile_query(lic, "L1", {"month": "2026-11", "format": "csv"})
    assert q == api.ReconcileQuery("L1", "2026-11", True)


def reconcile_rows(raw: bytes, content_type: str = "text/csv"):
    from zoneinfo import ZoneInfo

    from streams.erp_import import RowContext, load_column_map

    s = settings_mod.load()
    events = api.reconcile_body(
        raw, content_type, "L1", load_column_map(s.import_columns), RowContext(ZoneInfo("Asia/Shanghai"))
    )
    assert not isinstance(events, Reply), events
    return api.erp_rows(events, "L1", s.carriers, s.limits, NOW)


def test_an_erp_csv_is_read_as_import_reads_it_and_normalized_as_the_guard_does():
    text = "运单号,承运商,发货时间,店铺,订单号,营业执照\n rr 123456785 cn ,中国邮政,2026/11/20 8:00,S1,O1,\n"
    text += "RR123456785CN,EMS,2026/11/20 8:00,S1,O2,L2\nRR1,CHINAPOST,2026/11/20 8:00,S1,O3,\n,EMS,2026/11/20,S1,O4,\n"
    rows, invalid = reconcile_rows(text.encode("gb18030"))
    # Normalized number, carrier alias, Beijing time without an offset.
    assert rows == [api.ErpRow(2, "RR123456785CN", "CHINAPOST", 1_795_132_800_000, "S1", "O1")]
    assert sorted((f["line"], f["reason"]) for f in invalid) == [
        (3, "BAD_ROW"),  # the import's own check: a row of another licence
        (4, "UNKNOWN_FORMAT:tracking_no"),  # the guard's: it would be invalid
        (5, "BAD_ROW"),  # no tracking number
    ]


def test_erp_rows_as_json_and_bad_bodies():
    body = orjson.dumps(
        {
            "rows": [
                {
                    "line": 7,
                    "tracking_no": "RR123456785CN",
                    "carrier_code": "CHINAPOST",
                    "shipped_at": "2026-11-20T00:00:00Z",
                    "store_id": "S1",
                    "order_id": "O1",
                }
            ]
        }
    )
    rows, invalid = reconcile_rows(body, "application/json")
    assert [r.line for r in rows] == [7] and invalid == []
    other = orjson.dumps({"rows": [{"line": 2, "license_id": "L2", "tracking_no": "RR123456785CN"}]})
    assert [f["reason"] for f in reconcile_rows(other, "application/json")[1]] == ["OTHER_LICENSE"]
    from zoneinfo import ZoneInfo

    from streams.erp_import import ColumnMap, RowContext

    ctx = RowContext(ZoneInfo("UTC"))
    assert api.reconcile_body(b'{"rows": 5}', "application/json", "L1", ColumnMap({}), ctx).status == 400  # type: ignore[union-attr]
    assert api.reconcile_body(b"a,b\n1,2\n", "text/csv", "L1", ColumnMap({}), ctx).status == 400  # type: ignore[union-attr]


def test_a_reconciliation_with_partitions_unanswered_is_refused_not_partial():
    from streams.core.reconcile import Report

    q = api.ReconcileQuery("L1", None, False)
    assert api.reconcile_reply(q, Report(), [3, 5]).status == 503
    csv_reply = api.reconcile_reply(api.ReconcileQuery("L1", None, True), Report(), [])
    assert csv_reply.body.splitlines()[0].startswith("kind,tracking_no,line,")
    assert orjson.loads(csv_reply.headers["X-Trackguard-Counts"])["matched"] == 0


def test_the_reuse_report_is_the_admins_by_carrier_and_month_and_never_partial():
    from streams.core.reuse import reuse_entry

    carriers = settings_mod.load().carriers
    assert api.reuse_query(L1, {}, carriers).status == 403  # it names every licence
    assert api.reuse_query(ADMIN, {"month": "2026/11"}, carriers).status == 400
    q = api.reuse_query(ADMIN, {"month": "2026-11", "carrier": "燕文", "format": "csv"}, carriers)
    assert q == api.ReuseQuery("2026-11", "YANWEN", True)  # the carrier as sellers type it
    state = bound("UA123456789CN")
    sub = Submission("e2", "L2", "S9", "O9", "YANWEN", "UA123456789CN", NOW + 1000, "api", NOW + 1000)
    state = decide(state, sub, Policy())[1]
    row = reuse_entry("UA123456789CN", state, "Asia/Shanghai")
    assert row is not None and row["licenses"] == ["L1", "L2"] and row["carrier_code"] == "CHINAPOST"
    assert api.reuse_reply(api.ReuseQuery(None, None, False), [row], [7]).status == 503
    shown = api.reuse_reply(api.ReuseQuery(None, None, False), [row], [])
    assert shown.body["groups"] == [{"carrier_code": "CHINAPOST", "month": row["month"], "numbers": 1, "licenses": 2}]
    assert api.reuse_reply(api.ReuseQuery(None, "YANWEN", False), [row], []).body["items"] == []
    table = list(csv.DictReader(io.StringIO(api.reuse_reply(api.ReuseQuery(None, None, True), [row], []).body)))
    assert table[0]["licenses"] == "L1 L2" and table[0]["tracking_no"] == "UA123456789CN"


def test_submit_routes_each_submission_to_its_numbers_owner_for_the_callers_licence():
    carriers = settings_mod.load().carriers
    shipment = {
        "event_id": "e1",
        "store_id": "S1",
        "order_id": "O1",
        "carrier_code": "中国邮政",
        "tracking_no": " rr123456785cn ",
        "shipped_at": "2026-11-20T08:00:00+08:00",
    }
    backend = DictBackend(elsewhere={"UA123456789CN"})
    plan = api.submit(backend, L1, shipment, {}, carriers, routed=False)
    assert isinstance(plan, api.SubmitPlan) and plan.wait_s == api.SUBMIT_WAIT_S
    (out,) = plan.local
    # Keyed by the number as the rules normalize it: decided in place, no re-keying hop.
    assert (out.index, out.event_id, out.key) == (0, "e1", b"RR123456785CN")
    assert orjson.loads(out.value) == {**shipment, "license_id": "L1", "source": "api"}
    # Several: the other worker's number goes there; one the guard will refuse is still published.
    other = {**shipment, "event_id": "e2", "tracking_no": "UA123456789CN"}
    bad = {**shipment, "event_id": "e3", "tracking_no": "!!"}
    plan = api.submit(backend, L1, {"shipments": [shipment, other, bad]}, {"wait": "2.5"}, carriers, routed=False)
    assert [o.index for o in plan.local] == [0, 2] and plan.remote == {OTHER: [1]} and plan.wait_s == 2.5
    assert orjson.loads(plan.forward_body([1])) == {"shipments": [{**other, "license_id": "L1", "source": "api"}]}
    # Forwarded to us: published here whatever the owner map says.
    assert [o.index for o in api.submit(backend, L1, [other], {}, carriers, routed=True).local] == [0]
    # Answers: all decided is 200; an undecided one is 202 with its event id pending.
    plan.results[0] = {"event_id": "e1", "verdict": "accepted"}
    plan.merge([1], {"results": [{"event_id": "e2", "verdict": "duplicate"}], "pending": []})
    assert plan.reply().status == 202 and plan.reply().body["pending"] == ["e3"]
    plan.results[2] = {"event_id": "e3", "verdict": "invalid"}
    assert plan.reply().status == 200 and plan.reply().body["pending"] == []


def test_submit_refuses_another_licence_too_many_and_bad_ids_and_derives_missing_ids():
    carriers = settings_mod.load().carriers
    one = {"store_id": "S1", "order_id": "O1", "carrier_code": "CHINAPOST", "tracking_no": "RR123456785CN"}
    one["shipped_at"] = "2026-11-20T08:00:00+08:00"
    backend = DictBackend()
    assert api.submit(backend, L1, {**one, "license_id": "L2"}, {}, carriers, False).status == 403
    assert api.submit(backend, ADMIN, {**one, "license_id": "L2"}, {}, carriers, False).local[0].event_id
    assert api.submit(backend, L1, [one] * 501, {}, carriers, False).status == 413
    assert api.submit(backend, L1, [], {}, carriers, False).status == 400
    assert api.submit(backend, L1, ["x"], {}, carriers, False).status == 400
    assert api.submit(backend, L1, {**one, "event_id": 7}, {}, carriers, False).status == 400
    assert api.submit(backend, L1, {**one, "event_id": "x" * 129}, {}, carriers, False).status == 400
    assert api.submit(backend, L1, one, {"wait": "soon"}, carriers, False).status == 400
    assert api.submit(backend, L1, one, {"wait": "99"}, carriers, False).wait_s == api.MAX_SUBMIT_WAIT_S
    # No event id: one derived from the content, so the same shipment posted again is a replay.
    first = api.submit(backend, L1, one, {}, carriers, False).local[0].event_id
    assert (
        first.startswith("api-") and first == api.submit(backend, L1, dict(one), {}, carriers, False).local[0].event_id
    )
    assert first != api.submit(backend, L1, {**one, "order_id": "O2"}, {}, carriers, False).local[0].event_id


def test_a_used_list_with_partitions_unanswered_is_refused_not_cut_short():
    rows = [{"tracking_no": f"RR{i:09d}CN"} for i in range(3)]
    reply = api.used_page(api.UsedQuery("L1", "", 5, False), rows, missing=[3, 7])
    assert reply.status == 503 and "[3, 7]" in reply.body["error"]
    assert api.used_page(api.UsedQuery("L1", "", 5, False), rows, missing=[]).status == 200


# --- issue 29: what a licence token, a forged header or a hostile file cannot do ----------------


def test_a_forwarded_request_is_vouched_for_by_the_workers_key_never_a_callers_token():
    access = Access({"L1": "one", "L2": "two"}, "root")
    same_config = Access({"L2": "two", "L1": "one"}, "root")  # another worker of the deployment
    headers = access.peer_headers(L1, "GET", "/tracking/RR1?x=1", 1_000)
    assert "one" not in str(headers) and "Authorization" not in headers
    assert same_config.peer_caller(headers, "GET", "/tracking/RR1?x=1", 1_010) == L1
    assert same_config.peer_caller(access.peer_headers(ADMIN, "GET", "/reuse", 1_000), "GET", "/reuse", 1_000) == ADMIN
    # Signed for one request only, for a minute, by a worker that knows every token.
    assert same_config.peer_caller(headers, "GET", "/tracking/RR2?x=1", 1_010) is None
    assert same_config.peer_caller(headers, "POST", "/tracking/RR1?x=1", 1_010) is None
    assert same_config.peer_caller(headers, "GET", "/tracking/RR1?x=1", 1_000 + api.PEER_WINDOW_S + 1) is None
    assert same_config.peer_caller({**headers, api.PEER_CALLER: "L2"}, "GET", "/tracking/RR1?x=1", 1_010) is None
    holder_of_one = Access({"L1": "one"}, None)  # what licence L1 alone could compute
    forged = holder_of_one.peer_headers(ADMIN, "GET", "/reuse", 1_000)
    assert same_config.peer_caller(forged, "GET", "/reuse", 1_000) is None
    assert holder_of_one.peer_caller(forged, "GET", "/reuse", 1_000) is None  # no admin there to vouch for
    # A client that sets only the old routing header gets nothing from it: no signature, no peer.
    assert access.peer_caller({"X-Trackguard-Routed": "1"}, "GET", "/tracking/RR1", 1_000) is None
    # An explicit peer secret is the key, whatever the tokens.
    a, b = Access({"L1": "one"}, "root", "s3cret"), Access({"L1": "other"}, "root2", "s3cret")
    assert b.peer_caller(a.peer_headers(L1, "GET", "/whoami", 5), "GET", "/whoami", 5) == L1


def test_a_licence_files_an_appeal_and_only_the_admin_decides_it():
    backend = DictBackend()
    body = {"tracking_no": "RR123456785CN", "evidence_sha256": "ab" * 32, "evidence_ref": "T-1"}
    for decision in ("approved", "rejected"):
        refused = api.command(backend, L1, "appeal", {**body, "decided_by": "me", "decision": decision}, False)
        assert refused.status == 403 and "admin" in refused.body["error"]
    filed = api.command(backend, L1, "appeal", {**body, "decided_by": "me"}, False)
    assert isinstance(filed, api.CommandRequest)
    assert filed.body["decision"] == "pending" and "decided_by" not in filed.body
    decided = api.command(
        backend, ADMIN, "appeal", {**body, "license_id": "L1", "decided_by": "ops", "decision": "approved"}, False
    )
    assert isinstance(decided, api.CommandRequest) and decided.body["decision"] == "approved"


@pytest.mark.parametrize("cell", ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_csv_exports_never_hand_a_spreadsheet_a_formula(cell):
    q = api.UsedQuery("L1", "", 10, True)
    row = {
        "tracking_no": "RR1",
        "carrier_code": cell,
        "store_id": cell,
        "order_id": cell,
        "shipped_at": "t",
        "fingerprint": "f",
    }
    page = api.used_page(q, [row])
    (parsed,) = list(csv.DictReader(io.StringIO(page.body)))
    assert parsed["store_id"] == "'" + cell and parsed["order_id"] == "'" + cell and parsed["tracking_no"] == "RR1"
    assert page.headers["Content-Disposition"] == "attachment; filename=\"used-L1.csv\"; filename*=UTF-8''used-L1.csv"
    assert api.csv_cell("plain") == "plain" and api.csv_cell(5) == 5


def test_a_reconcile_body_is_bounded_and_its_rows_checked():
    columns = load_column_map(settings_mod.load().import_columns)
    ctx = RowContext(ZoneInfo("Asia/Shanghai"), "L1", "any")
    bad_line = orjson.dumps({"rows": [{"line": "two", "tracking_no": "RR1"}]})
    assert api.reconcile_body(bad_line, "application/json", "L1", columns, ctx).status == 400
    too_many = orjson.dumps({"rows": [{}] * (api.MAX_RECONCILE_ROWS + 1)})
    assert api.reconcile_body(too_many, "application/json", "L1", columns, ctx).status == 413
    header = "tracking_no,carrier_code,shipped_at,store_id,order_id,license_id\n"
    junk = (header + "x\n" * (api.MAX_RECONCILE_ROWS + 1)).encode()
    assert api.reconcile_body(junk, "text/csv", "L1", columns, ctx).status == 413
    # Another worker's share is read as carefully as a client's body: a 400, never a 500.
    assert api.routed_rows(b'{"rows": [[1, "RR1", "CHINAPOST", 5, "S1", "O1"]]}')[0].tracking_no == "RR1"
    for share in (
        b'{"rows": [["1", "RR1", "CHINAPOST", 5, "S1", "O1"]]}',
        b'{"rows": [[1, "RR1"]]}',
        b'{"rows": 5}',
        b"[]",
        b"{",
    ):
        assert api.routed_rows(share).status == 400, share


def test_a_reconciliation_lists_a_bounded_number_of_findings_and_counts_them_all():
    from streams.core.reconcile import invalid_row

    findings = [invalid_row(n, f"RR{n:06d}", "BAD_ROW", "junk") for n in range(25)]
    mine, theirs = Report(findings[:15], Counter(erp_invalid=15)), Report(findings[15:], Counter(erp_invalid=10))
    shares = [mine.as_dict("L1", None, max_findings=4), theirs.as_dict("L1", None, max_findings=4)]
    assert [s["findings_total"] for s in shares] == [15, 10] and all(s["findings_truncated"] for s in shares)
    merged = merge(
        Report(s["findings"], Counter(s["counts"]), s["findings_total"] - len(s["findings"])) for s in shares
    )
    answer = merged.as_dict("L1", None, max_findings=4)
    assert answer["counts"]["erp_invalid"] == 25 and answer["findings_total"] == 25
    assert [f["line"] for f in answer["findings"]] == [0, 1, 2, 3]  # the same as from one uncut report
