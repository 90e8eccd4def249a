"""The HTTP API with two workers: any worker answers any question, tokens keep licences apart."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import datetime

import pytest

from .conftest import Guard, fresh_s10

pytestmark = pytest.mark.broker
TOKENS = {"L1": "token-one", "L2": "token-two"}
ADMIN = "token-admin"
ENV = {"TRACKGUARD_TOKENS": ",".join(f"{k}={v}" for k, v in TOKENS.items()), "TRACKGUARD_ADMIN_TOKEN": ADMIN}
SHA = "1a" * 32


def call(port: int, method: str, path: str, token: str | None = TOKENS["L1"], body=None, raw: bytes | None = None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
    except urllib.error.URLError:  # the worker's web server is not up yet
        return 0, {}, b""


@pytest.fixture(scope="module")
def cluster(broker, tmp_path_factory):
    work = tmp_path_factory.mktemp("api")
    guard = Guard(broker, work)
    workers = [guard.new_worker(work / f"d{i}", env=ENV, name=f"w{i}") for i in range(2)]
    ports = [w.web_port for w in workers]
    # Ready when both workers own partitions: probe numbers until answers come from both.
    deadline = time.time() + 90
    served = set()
    while time.time() < deadline and len(served) < 2:
        for _ in range(8):
            status, headers, _ = call(ports[0], "GET", f"/tracking/{fresh_s10()}")
            if status == 200:
                served.add(headers["X-Trackguard-Served-By"])
        time.sleep(0.5)
    assert len(served) == 2, "the two workers never split the partitions"
    yield guard, ports
    guard.close()


def number_owned_by_the_other(ports: list[int]) -> tuple[str, int]:
    """A number whose owner is not the worker we will ask (ports[1] asks, another serves)."""
    for _ in range(200):
        number = fresh_s10()
        status, headers, _ = call(ports[1], "GET", f"/tracking/{number}")
        if status == 200 and not headers["X-Trackguard-Served-By"].endswith(f":{ports[1]}"):
            return number, ports[1]
    raise AssertionError("no number owned by the other worker")


def test_diagnosis_from_the_worker_that_does_not_own_the_number(cluster):
    guard, ports = cluster
    number, asking = number_owned_by_the_other(ports)
    guard.verdict(guard.submit(tracking_no=number))
    guard.verdict(guard.submit(tracking_no=number, license_id="L2", store_id="S8", order_id="O8"))
    status, headers, body = call(asking, "GET", f"/tracking/{number.lower()}")
    d = json.loads(body)
    assert status == 200 and not headers["X-Trackguard-Served-By"].endswith(f":{asking}")
    assert d["binding"]["order_id"] == "O1" and [u["order_id"] for u in d["uses"]] == ["O1"]
    # L2 sees that the number is used elsewhere, and its own failed use, nothing of L1.
    status, _, body = call(asking, "GET", f"/tracking/{number}", TOKENS["L2"])
    d2 = json.loads(body)
    assert d2["binding"] == "other-license" and d2["status"] == "frozen"
    assert "O1" not in body.decode() and "S1" not in body.decode()
    # The admin sees both.
    d3 = json.loads(call(asking, "GET", f"/tracking/{number}", ADMIN)[2])
    assert {u["license_id"] for u in d3["uses"]} == {"L1", "L2"}


def test_check_before_push_across_workers(cluster):
    guard, ports = cluster
    bound, _ = number_owned_by_the_other(ports)
    guard.verdict(guard.submit(tracking_no=bound))
    free = [fresh_s10() for _ in range(40)]  # spread over both workers' partitions
    status, _, body = call(ports[0], "POST", "/tracking/check", body={"tracking_numbers": [bound, *free]})
    results = json.loads(body)["results"]
    assert status == 200 and results[0] == {"tracking_no": bound, "status": "bound"}
    assert [r["status"] for r in results[1:]] == ["available"] * 40
    status, _, body = call(ports[0], "POST", "/tracking/check", body={"tracking_numbers": ["RR1"] * 1001})
    assert status == 413 and b"at most 1000" in body


def test_commands_over_http_reservation_expiry_and_appeal(cluster):
    guard, ports = cluster
    number, asking = number_owned_by_the_other(ports)
    reserve = {"tracking_no": number, "store_id": "S1", "order_id": "O1", "carrier_code": "CHINAPOST", "ttl_s": 60}
    status, _, body = call(asking, "POST", "/commands/reserve", body=reserve)
    assert status == 200 and json.loads(body)["ok"], body
    status, _, body = call(asking, "POST", "/commands/reserve", TOKENS["L2"], body={**reserve, "order_id": "O2"})
    assert status == 409 and json.loads(body)["error"] == "ALREADY_RESERVED"
    # Five minutes later by event time (the submission's Kafka timestamp), the reservation has
    # expired: no sleeping. (Kafka 4 refuses timestamps over an hour ahead of its clock by default:
    # log.message.timestamp.after.max.ms.)
    later = int(time.time() * 1000) + 5 * 60_000
    v = guard.verdict(guard.submit(tracking_no=number, license_id="L2", store_id="S2", order_id="O2", ts_ms=later))
    assert (v["verdict"], v["reason"]) == ("accepted", "FIRST_USE")

    assert guard.verdict(guard.submit(tracking_no=number))["reason"] == "USED_BY_OTHER_LICENSE"
    appeal = {
        "tracking_no": number,
        "evidence_sha256": SHA,
        "evidence_ref": "t-1",
        "decided_by": "ops",
        "decision": "approved",
    }
    status, _, body = call(asking, "POST", "/commands/appeal", ADMIN, body={**appeal, "license_id": "L1"})
    assert status == 200 and json.loads(body)["ok"], body
    d = json.loads(call(asking, "GET", f"/tracking/{number}")[2])
    assert d["status"] == "bound" and d["binding"] == "other-license" and d["blacklisted_for"] == []


def test_used_list_is_paged_per_licence_as_json_and_csv(cluster):
    guard, ports = cluster
    mine = sorted(fresh_s10("UA") for _ in range(6))
    for n in mine:
        guard.verdict(guard.submit(tracking_no=n, license_id="L9", store_id="S9", order_id=f"O-{n}"))
    token = ADMIN
    status, _, body = call(ports[0], "GET", "/licenses/L9/used?limit=4", token)
    page = json.loads(body)
    assert status == 200 and [i["tracking_no"] for i in page["items"]] == mine[:4]
    status, _, body = call(ports[1], "GET", f"/licenses/L9/used?limit=4&after={page['next_after']}", token)
    assert [i["tracking_no"] for i in json.loads(body)["items"]] == mine[4:]
    status, headers, body = call(ports[1], "GET", "/licenses/L9/used?format=csv", token)
    lines = body.decode().strip().splitlines()
    assert lines[0].startswith("tracking_no,") and len(lines) == 7 and headers["Content-Type"].startswith("text/csv")
    assert call(ports[0], "GET", "/licenses/L9/used", TOKENS["L1"])[0] == 403


def test_reconciliation_of_an_erp_csv_across_workers(cluster, capsys, tmp_path):
    """A Chinese ERP export (GB18030, local ship times) against the licence's numbers on both
    workers: each finding kind once, through either worker; the CLI sends a file the same way."""
    guard, ports = cluster
    lic = "L7"
    matched = [fresh_s10() for _ in range(6)]
    other_carrier, not_in_erp, lost = fresh_s10(), number_owned_by_the_other(ports)[0], fresh_s10()
    never = fresh_s10()
    for n in [*matched, other_carrier, not_in_erp]:
        v = guard.verdict(guard.submit(tracking_no=n, license_id=lic, store_id="S7", order_id=f"O-{n}"))
        assert v["verdict"] == "accepted"
    guard.verdict(guard.submit(tracking_no=lost, license_id="L8", order_id="X"))  # another licence's first
    assert guard.verdict(guard.submit(tracking_no=lost, license_id=lic, order_id="O-lost"))["verdict"] == "duplicate"
    # The submissions shipped at 2026-11-20T08:00:00+08:00: the ERP writes Beijing time without an offset.
    rows = [f"{n},中国邮政,2026/11/20 8:00,S7,O-{n}" for n in matched]
    rows += [f"{other_carrier},燕文,2026/11/20 8:00,S7,O-x", f"{lost},CHINAPOST,2026-11-20 08:00,S7,O-lost"]
    rows += [f"{never},EMS,2026-11-21 09:00,S7,O-never", ",EMS,2026-11-21 09:00,S7,O-empty"]
    csv_text = "运单号,承运商,发货时间,店铺,订单号\n" + "\n".join(rows) + "\n"
    expected = {
        ("differs", other_carrier),
        ("erp_not_accepted", lost),
        ("erp_not_accepted", never),
        ("accepted_not_in_erp", not_in_erp),
        ("erp_invalid", ""),
    }
    for port in ports:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/licenses/{lic}/reconcile?month=2026-11",
            method="POST",
            data=csv_text.encode("gb18030"),
            headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "text/csv"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            report = json.loads(r.read())
        assert {(f["kind"], f["tracking_no"]) for f in report["findings"]} == expected
        assert report["counts"]["matched"] == 6
        by = {f["tracking_no"]: f for f in report["findings"]}
        assert (by[lost]["verdict"], by[lost]["reason"], by[lost]["line"]) == ("duplicate", "USED_BY_OTHER_LICENSE", 9)
        assert by[other_carrier]["differs_in"] == "carrier_code"
        assert by[never]["reason"] == "NOT_SUBMITTED"
    # The CLI reads the file as `import` does (here UTF-8) and prints the same findings as CSV.
    from streams.cli import main

    erp = tmp_path / "店小秘导出.csv"
    erp.write_text(csv_text, encoding="utf-8-sig")
    capsys.readouterr()
    url = ["--url", f"http://127.0.0.1:{ports[1]}", "--token", ADMIN]
    assert main(["reconcile", str(erp), "--license", lic, "--month", "2026-11", "--format", "csv", *url]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0].startswith("kind,tracking_no,line,") and len(lines) == 1 + len(expected)
    assert {tuple(line.split(",")[:2]) for line in lines[1:]} == expected
    assert f"{erp}:11:" in err  # the row without a number, named as import names it
    # Another month: none of November's numbers.
    status, _, body = call(ports[0], "POST", f"/licenses/{lic}/reconcile?month=2026-10", ADMIN, body={"rows": []})
    assert status == 200 and json.loads(body)["findings"] == []
    assert call(ports[0], "POST", f"/licenses/{lic}/reconcile", TOKENS["L1"], body={"rows": []})[0] == 403
    assert call(ports[0], "POST", f"/licenses/{lic}/reconcile?month=11-2026", ADMIN, body={"rows": []})[0] == 400


def test_tokens_and_bad_requests(cluster):
    _, ports = cluster
    assert call(ports[0], "GET", "/tracking/RR123456785CN", token=None)[0] == 401
    assert call(ports[0], "GET", "/tracking/RR123456785CN", token="wrong")[0] == 401
    assert call(ports[0], "POST", "/tracking/check", raw=b"{not json")[0] == 400
    assert call(ports[0], "POST", "/tracking/check", body={"tracking_numbers": "RR1"})[0] == 400
    assert call(ports[0], "POST", "/commands/reserve", raw=b"x" * 300_000)[0] == 413
    assert call(ports[0], "POST", "/commands/reserve", body={"tracking_no": 5})[0] == 400
    assert call(ports[0], "POST", "/commands/steal", body={})[0] == 404
    status, _, body = call(
        ports[0],
        "POST",
        "/commands/release",
        TOKENS["L2"],
        body={"tracking_no": "RR123456785CN", "order_id": "O1", "license_id": "L1"},
    )
    assert status == 403


def test_store_performance_is_answered_by_the_stores_owner_through_any_worker(cluster):
    _, ports = cluster
    served = set()
    for i in range(16):  # stores spread over both workers' partitions
        status, headers, body = call(ports[1], "GET", f"/stores/store-{i}/performance")
        assert status == 200 and json.loads(body)["store_id"] == f"store-{i}"
        served.add(headers["X-Trackguard-Served-By"])
    assert len(served) == 2


def test_cross_licence_reuse_report_for_the_admin_across_workers(cluster, capsys):
    """A forwarder's pool: the same Yanwen numbers pushed by two and three licences, one on each
    worker's partitions; one number a licence re-used on its own (not a reuse). Any worker
    answers with every worker's part; a licence token is refused; the CLI prints CSV."""
    from streams.cli import main
    from streams.core.performance import month_of

    guard, ports = cluster
    reused = [number_owned_by_the_other(ports)[0], fresh_s10(), fresh_s10()]
    own = fresh_s10()
    yanwen = {"carrier_code": "燕文", "store_id": "S5"}
    for n in [*reused, own]:
        assert (
            guard.verdict(guard.submit(tracking_no=n, license_id="L5", order_id="A", **yanwen))["verdict"] == "accepted"
        )
    second = guard.verdict(guard.submit(tracking_no=own, license_id="L5", order_id="B", **yanwen))
    assert second["verdict"] == "duplicate"
    for n in reused:
        second = guard.verdict(guard.submit(tracking_no=n, license_id="L6", order_id="C", **yanwen))
        assert (second["verdict"], second["reason"]) == ("duplicate", "USED_BY_OTHER_LICENSE")
    guard.verdict(guard.submit(tracking_no=reused[2], license_id="L4", order_id="D", **yanwen))
    month = month_of(second["decided_at"], "Asia/Shanghai")
    for port in ports:
        status, _, body = call(port, "GET", f"/reuse?carrier=YANWEN&month={month}", ADMIN)
        assert status == 200, body
        report = json.loads(body)
        assert {i["tracking_no"]: i["licenses"] for i in report["items"]} == {
            reused[0]: ["L5", "L6"],
            reused[1]: ["L5", "L6"],
            reused[2]: ["L5", "L6", "L4"],
        }
        assert report["groups"] == [{"carrier_code": "YANWEN", "month": month, "numbers": 3, "licenses": 3}]
        assert all(i["bound_license"] == "L5" and i["failed"] == i["uses"] - 1 for i in report["items"])
    assert call(ports[0], "GET", "/reuse", TOKENS["L1"])[0] == 403
    assert call(ports[0], "GET", "/reuse?month=2026-13", ADMIN)[0] == 400
    capsys.readouterr()
    url = ["--url", f"http://127.0.0.1:{ports[1]}", "--token", ADMIN]
    assert main(["reuse", "--carrier", "yanwen", "--month", month, "--format", "csv", *url]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "tracking_no,carrier_code,month,reused_at,licenses,bound_license,uses,failed"
    assert sorted(line.split(",")[0] for line in lines[1:]) == sorted(reused)


def test_synchronous_submit_answers_with_verdicts_and_is_idempotent(cluster):
    """POST /shipments to one worker: submissions whose numbers the other worker owns are published
    and awaited there. Each gets its verdict (accepted, the platform's TRACKING_DUPLICATE, a dead
    letter); the same request again gets the same verdicts as replays; wait=0 is a 202."""
    guard, ports = cluster
    theirs, mine, taken = number_owned_by_the_other(ports)[0], fresh_s10(), fresh_s10()
    assert guard.verdict(guard.submit(tracking_no=taken, license_id="L2", order_id="Z"))["verdict"] == "accepted"
    ship = {"store_id": "S3", "carrier_code": "CHINAPOST", "shipped_at": "2026-11-20T08:00:00+08:00"}
    batch = [
        {**ship, "event_id": f"sync-{theirs}", "order_id": "A", "tracking_no": theirs},
        {**ship, "order_id": "B", "tracking_no": mine.lower()},  # no event id: derived from the content
        {**ship, "event_id": f"sync-{taken}", "order_id": "C", "tracking_no": taken},
        {**ship, "event_id": f"sync-bad-{mine}", "order_id": "D", "tracking_no": mine, "shipped_at": "yesterday"},
    ]
    status, _, body = call(ports[1], "POST", "/shipments", TOKENS["L1"], body={"shipments": batch})
    assert status == 200, body
    answer = json.loads(body)
    got = [(r["tracking_no"], r["verdict"], r["code"], r["reason"]) for r in answer["results"]]
    assert got[:3] == [
        (theirs, "accepted", "ACCEPTED", "FIRST_USE"),
        (mine, "accepted", "ACCEPTED", "FIRST_USE"),
        (taken, "duplicate", "TRACKING_DUPLICATE", "USED_BY_OTHER_LICENSE"),
    ]
    assert got[3][1:3] == ("invalid", "INVALID_EVENT") and answer["pending"] == []
    assert answer["results"][1]["event_id"].startswith("api-") and answer["results"][2]["bound_to"] == "other-license"
    # The same request again (an ERP retrying after a timeout): the same verdicts, marked as replays.
    status, _, body = call(ports[0], "POST", "/shipments", TOKENS["L1"], body={"shipments": batch})
    again = json.loads(body)["results"]
    assert status == 200 and [(r["verdict"], r["reason"]) for r in again] == [(r[1], r[3]) for r in got]
    assert [r["replay"] for r in again[:3]] == [True, True, True]
    # Nothing waited for: 202 with the event ids to ask about (or resubmit) later.
    one = {**ship, "event_id": f"sync-{fresh_s10()}", "order_id": "E", "tracking_no": fresh_s10()}
    status, _, body = call(ports[0], "POST", "/shipments?wait=0", TOKENS["L1"], body=one)
    assert status == 202 and json.loads(body) == {"results": [None], "pending": [one["event_id"]]}
    assert guard.verdict(one["event_id"])["verdict"] == "accepted"  # decided all the same
    status, _, body = call(ports[0], "POST", "/shipments", TOKENS["L1"], body={**one, "license_id": "L2"})
    assert status == 403


def scrape_metrics(port: int) -> dict:
    """GET /metrics (no token, as Prometheus scrapes), parsed: (sample name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    status, headers, body = call(port, "GET", "/metrics", token=None)
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(body.decode())
        for s in f.samples
    }


def test_metrics_parse_and_move_with_the_verdicts(cluster):
    """GET /metrics on a real worker: the exposition parses, its counters and batch histograms
    follow a submission decided by that worker and the requests it answered, it reports the
    consumer lag of each partition it owns, and the other worker's standby restores the decision."""
    guard, ports = cluster
    number = fresh_s10()
    status, headers, _ = call(ports[0], "GET", f"/tracking/{number}")
    owner = next(p for p in ports if headers["X-Trackguard-Served-By"].endswith(f":{p}"))
    (follower,) = set(ports) - {owner}
    standby = ("trackguard_restored_records_total", (("role", "standby"),))
    followed = scrape_metrics(follower).get(standby, 0)
    before = scrape_metrics(owner)
    accepted = ("trackguard_decisions_total", (("kind", "accepted"),))
    assert before[("trackguard_partitions_owned", ())] >= 1 and before[("trackguard_data_dir_bytes", ())] > 0
    assert guard.verdict(guard.submit(tracking_no=number))["verdict"] == "accepted"
    after = scrape_metrics(owner)
    assert after[accepted] >= before.get(accepted, 0) + 1  # decided by the number's owner
    first_use = (
        "trackguard_verdicts_total",
        (("carrier", "CHINAPOST"), ("reason", "FIRST_USE"), ("verdict", "accepted")),
    )
    assert after[first_use] >= before.get(first_use, 0) + 1
    for histogram in ("trackguard_batch_records", "trackguard_batch_decide_seconds", "trackguard_batch_ack_seconds"):
        count = (f"{histogram}_count", ())
        assert after[count] > before[count], histogram
        assert after[(f"{histogram}_bucket", (("le", "+Inf"),))] == after[count]
    assert after[("trackguard_batch_records_sum", ())] >= before[("trackguard_batch_records_sum", ())] + 1
    answered = ("trackguard_http_requests_total", (("route", "Tracking"), ("status", "200")))
    assert after[answered] >= 1
    # Lag per partition this worker consumes: one per submitted partition it owns, all caught up.
    lags = {
        dict(labels)["partition"]: value
        for (name, labels), value in after.items()
        if name == "trackguard_consumer_lag_records" and dict(labels)["topic"] == guard.settings.topics.submitted
    }
    assert len(lags) == after[("trackguard_partitions_owned", ())] and set(lags.values()) == {0}, lags
    assert after[("trackguard_recovering", ())] == 0
    # The other worker keeps a standby of the owner's partitions: it restores the new state too.
    deadline = time.monotonic() + 30
    while scrape_metrics(follower).get(standby, 0) <= followed:
        assert time.monotonic() < deadline, "the standby restored nothing"
        time.sleep(0.5)


def test_metrics_count_the_store_alerts_published(cluster):
    """Three failed verdicts of one store in a month: an LFR_PENALTY alert, counted by the worker
    that owns the store's partition (either one: summed over both)."""
    guard, ports = cluster
    penalty = ("trackguard_alerts_published_total", (("kind", "LFR_PENALTY"),))
    before = sum(scrape_metrics(port).get(penalty, 0) for port in ports)
    when = int(datetime.fromisoformat("2025-10-10T10:00:00+08:00").timestamp() * 1000)  # a fixed month
    for _ in range(3):
        number = fresh_s10()
        bound = guard.submit(tracking_no=number, order_id=f"B-{number}", ts_ms=when)
        assert guard.verdict(bound)["verdict"] == "accepted"
        failed = guard.submit(tracking_no=number, store_id="S-metrics", order_id=f"X-{number}", ts_ms=when)
        assert guard.verdict(failed)["reason"] == "USED_BY_LICENSE"
    deadline = time.monotonic() + 60  # at least one: earlier tests' failures may call for alerts too
    while sum(scrape_metrics(port).get(penalty, 0) for port in ports) < before + 1:
        assert time.monotonic() < deadline, "no LFR_PENALTY alert counted"
        time.sleep(0.5)


def test_openapi_document_lists_the_routes_served(cluster):
    _, ports = cluster
    status, _, body = call(ports[0], "GET", "/openapi.json", token=None)
    paths = json.loads(body)["paths"]
    assert status == 200
    assert set(paths) == {
        "/tracking/{no}",
        "/tracking/check",
        "/licenses/{license_id}/used",
        "/licenses/{license_id}/reconcile",
        "/stores/{store_id}/performance",
        "/reuse",
        "/shipments",
        "/metrics",
        "/whoami",
        "/live",
        "/",
        "/console/{name}",
        "/commands/reserve",
        "/commands/release",
        "/commands/appeal",
        "/openapi.json",
    }


def test_cli_talks_to_the_api(cluster, capsys, tmp_path):
    from streams.cli import main

    guard, ports = cluster
    number = fresh_s10()
    url = ["--url", f"http://127.0.0.1:{ports[0]}", "--token", TOKENS["L1"]]
    assert (
        main(
            [
                "reserve",
                *url,
                "--tracking-no",
                number,
                "--store-id",
                "S1",
                "--order-id",
                "O1",
                "--carrier-code",
                "china post",
                "--ttl-s",
                "600",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["diagnose", *url, number, "--json"]) == 0
    diagnosis = json.loads(capsys.readouterr().out)
    assert diagnosis["status"] == "reserved" and diagnosis["reservation"]["order_id"] == "O1"
    listing = tmp_path / "numbers.txt"
    listing.write_text(f"{number}\n{fresh_s10()}\n")
    capsys.readouterr()
    assert main(["check", *url, str(listing), "--json"]) == 0
    statuses = [r["status"] for r in json.loads(capsys.readouterr().out)["results"]]
    assert statuses == ["reserved", "available"]
    assert main(["release", *url, "--tracking-no", number, "--order-id", "O2"]) == 1  # not the holder
    assert "NOT_HOLDER" in capsys.readouterr().out


# --- issue 29: as an attacker with one licence's token, or none, would try -------------------


def raw_get(port: int, path: str, host: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host)
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    conn.endheaders()
    resp = conn.getresponse()
    out = resp.status, dict(resp.getheaders()), resp.read()
    conn.close()
    return out


def test_faust_pages_and_unexpected_hosts_are_not_served(cluster):
    guard, ports = cluster
    number = fresh_s10()
    guard.verdict(guard.submit(tracking_no=number))
    for path in (
        f"/table/numbers/{number}/",
        "/table/numbers/",
        "/table/stores/",
        "/router/",
        "/router/numbers/",
        "/graph/",
        "/stats/",
    ):
        status, headers, body = call(ports[0], "GET", path, token=None)
        assert status == 404 and b"L1" not in body and b"O1" not in body, (path, status, body[:200])
        assert headers["X-Content-Type-Options"] == "nosniff"
    # DNS rebinding: a page of evil.example, whose name now resolves to 127.0.0.1, asks the worker.
    status, _, body = raw_get(
        ports[0], f"/tracking/{number}", "evil.example:6066", {"Authorization": f"Bearer {TOKENS['L1']}"}
    )
    assert status == 421 and b"O1" not in body
    status, headers, _ = raw_get(
        ports[0], "/whoami", f"127.0.0.1:{ports[0]}", {"Authorization": f"Bearer {TOKENS['L1']}"}
    )
    assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"


def test_a_client_cannot_pose_as_a_worker(cluster):
    guard, ports = cluster
    number, asking = number_owned_by_the_other(ports)
    guard.verdict(guard.submit(tracking_no=number))
    # The old routing header from a client changes nothing: the request is still forwarded to the
    # owner and answered in full.
    status, headers, body = raw_get(
        asking,
        f"/tracking/{number}",
        "127.0.0.1",
        {"Authorization": f"Bearer {TOKENS['L1']}", "X-Trackguard-Routed": "1"},
    )
    assert status == 200 and not headers["X-Trackguard-Served-By"].endswith(f":{asking}")
    assert json.loads(body)["binding"]["order_id"] == "O1"
    # A forged peer credential (no worker key) is refused, with or without a token.
    forged = {
        "X-Trackguard-Peer-Caller": "",
        "X-Trackguard-Peer-Time": str(int(time.time())),
        "X-Trackguard-Peer": "00" * 32,
    }
    assert raw_get(asking, "/reuse", "127.0.0.1", forged)[0] == 401
    assert raw_get(asking, "/reuse", "127.0.0.1", {**forged, "Authorization": f"Bearer {TOKENS['L2']}"})[0] == 401


def test_another_licences_event_id_is_its_own_submission(cluster):
    guard, ports = cluster
    number = fresh_s10()
    shared = f"shared-{number}"
    mine = {
        "event_id": shared,
        "store_id": "S1",
        "order_id": "O1",
        "carrier_code": "CHINAPOST",
        "tracking_no": number,
        "shipped_at": "2026-11-20T08:00:00+08:00",
    }
    status, _, body = call(ports[0], "POST", "/shipments", body=mine)
    assert status == 200 and json.loads(body)["results"][0]["reason"] == "FIRST_USE"
    # Licence L2 re-sends L1's event id on L1's number: a new submission of L2's, never L1's
    # verdict (with L1's store and order in it) replayed to L2.
    theirs = {**mine, "store_id": "S2", "order_id": "O2"}
    status, _, body = call(ports[1], "POST", "/shipments", TOKENS["L2"], body=theirs)
    (verdict,) = json.loads(body)["results"]
    assert status == 200 and (verdict["verdict"], verdict["reason"], verdict["replay"]) == (
        "duplicate",
        "USED_BY_OTHER_LICENSE",
        False,
    )
    assert verdict["license_id"] == "L2" and verdict["bound_to"] == "other-license" and b"O1" not in body
    # L1's own event id is still a replay for L1.
    again = json.loads(call(ports[1], "POST", "/shipments", body=mine)[2])["results"][0]
    assert again["replay"] and again["reason"] == "FIRST_USE" and again["license_id"] == "L1"


def test_a_licence_files_an_appeal_and_cannot_decide_it(cluster):
    guard, ports = cluster
    number = fresh_s10()
    guard.verdict(guard.submit(tracking_no=number))
    guard.verdict(guard.submit(tracking_no=number, order_id="O2"))
    appeal = {"tracking_no": number, "evidence_sha256": SHA, "evidence_ref": "t-1"}
    status, _, body = call(
        ports[0], "POST", "/commands/appeal", body={**appeal, "decided_by": "me", "decision": "approved"}
    )
    assert status == 403 and b"admin" in body
    status, _, body = call(ports[0], "POST", "/commands/appeal", body=appeal)
    assert status == 200 and json.loads(body)["decision"] == "pending"
    assert json.loads(call(ports[1], "GET", f"/tracking/{number}")[2])["status"] == "frozen"
    decided = {**appeal, "license_id": "L1", "decided_by": "ops", "decision": "approved"}
    assert call(ports[1], "POST", "/commands/appeal", ADMIN, body=decided)[0] == 200
    assert json.loads(call(ports[0], "GET", f"/tracking/{number}")[2])["status"] == "bound"


def test_a_huge_reconcile_upload_is_bounded_and_leaves_other_requests_answered(cluster):
    """250,000 junk rows: read off the event loop (another licence's requests are answered while
    it runs), findings listed up to the bound and counted in full."""
    import threading

    _, ports = cluster
    junk = ("tracking_no,carrier_code,shipped_at,store_id,order_id\n" + "x,y,not-a-time,s,o\n" * 250_000).encode()
    answer: list = []

    def upload() -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{ports[0]}/licenses/L1/reconcile",
            data=junk,
            method="POST",
            headers={"Authorization": f"Bearer {TOKENS['L1']}", "Content-Type": "text/csv"},
        )
        with urllib.request.urlopen(request, timeout=300) as r:
            answer.append((r.status, json.loads(r.read())))

    thread = threading.Thread(target=upload)
    thread.start()
    answered_meanwhile = 0
    while thread.is_alive():
        if call(ports[0], "GET", "/whoami", TOKENS["L2"])[0] == 200 and thread.is_alive():
            answered_meanwhile += 1
        time.sleep(0.05)
    thread.join()
    ((status, report),) = answer
    # Every junk row is a finding; L1's numbers other tests bound, absent from this "ERP", are too.
    listed_kinds = ("erp_not_accepted", "accepted_not_in_erp", "differs", "erp_invalid")
    assert status == 200 and report["findings_truncated"]
    assert report["findings_total"] == sum(report["counts"][k] for k in listed_kinds) >= 250_000
    assert len(report["findings"]) == 10_000 and report["counts"]["erp_invalid"] == 250_000
    assert answered_meanwhile >= 1, "no other request was answered while the upload was read"
