"""The web console in a real headless Chromium (Debian's, driven by Selenium through Debian's
chromedriver: no browser download) against two workers on the embedded broker.

The browser always talks to the first worker; numbers owned by the second are answered through
it (the console works against any worker). Screenshots of each page, in both languages, go to
$TRACKGUARD_SCREENSHOTS (default: the test's temporary directory); docs/console/ keeps the best.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .browser import Browser, chromium_or_skip
from .conftest import Guard, fresh_s10

pytestmark = [pytest.mark.broker, pytest.mark.parametrize("broker", ["tansu"], indirect=True)]
TOKENS = {"L1": "console-one", "L2": "console-two"}
ADMIN = "console-admin"
ENV = {"TRACKGUARD_TOKENS": ",".join(f"{k}={v}" for k, v in TOKENS.items()), "TRACKGUARD_ADMIN_TOKEN": ADMIN}
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def chromium():
    return chromium_or_skip()


@pytest.fixture(scope="module")
def site(broker, tmp_path_factory, chromium):
    work = tmp_path_factory.mktemp("console")
    guard = Guard(broker, work)
    workers = [guard.new_worker(work / f"d{i}", env=ENV, name=f"w{i}") for i in range(2)]
    guard.worker = workers[0]
    assert guard.verdict(guard.submit(tracking_no=fresh_s10()), timeout=90)["verdict"] == "accepted"
    shots = Path(os.environ.get("TRACKGUARD_SCREENSHOTS") or work / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    yield guard, f"http://127.0.0.1:{workers[0].web_port}", shots
    guard.close()


@pytest.fixture
def browser(site, chromium):
    _, url, shots = site
    with Browser(chromium, url, shots, lang="en-GB") as b:
        yield b
        assert b.page_errors() == []  # no script error, nothing the content security policy blocked


def now_ms() -> int:
    return int(time.time() * 1000)


def test_sign_in_refuses_an_unknown_token_and_names_the_licence(browser):
    browser.open()
    browser.sign_in("not-a-token", expect_ok=False)
    assert "not known" in browser.text("signin-error")
    browser.sign_in(TOKENS["L1"])
    assert browser.text("whoami") == "Licence L1"
    browser.shot("signin-en")


def test_look_up_a_number_in_each_state(site, browser):
    guard, _, _ = site
    available = fresh_s10()
    bound = fresh_s10()
    guard.verdict(guard.submit(tracking_no=bound, store_id="S7", order_id="O7"))
    frozen = fresh_s10()
    guard.verdict(guard.submit(tracking_no=frozen))
    assert guard.verdict(guard.submit(tracking_no=frozen, order_id="O2"))["verdict"] == "duplicate"
    # A duplicate four days ago: its 72-hour freeze is over, the blacklist stays.
    blacklisted = fresh_s10()
    guard.verdict(guard.submit(tracking_no=blacklisted, license_id="L2", ts_ms=now_ms() - 100 * HOUR_MS))
    assert guard.verdict(guard.submit(tracking_no=blacklisted, ts_ms=now_ms() - 96 * HOUR_MS))["verdict"] == "duplicate"
    reserved = fresh_s10()
    cid = guard.command(
        "reserve",
        license_id="L2",
        tracking_no=reserved,
        store_id="T1",
        order_id="P1",
        carrier_code="CHINAPOST",
        ttl_s=3600,
    )
    assert guard.verdict(cid)["ok"]

    browser.open()
    browser.sign_in(TOKENS["L1"])
    assert browser.look_up(available) == "AVAILABLE"
    assert browser.text("lookup-binding") == "Not bound"

    assert browser.look_up(bound.lower()) == "BOUND"  # typed in lower case: normalized
    assert "S7 · O7 · CHINAPOST" in browser.text("lookup-binding")

    assert browser.look_up(frozen) == "FROZEN"
    assert "Frozen until" in browser.text("lookup-freeze")
    first = browser.text_of(".countdown")
    assert first.endswith("left") and first.startswith(("2 d 23:", "3 d 00:")), first  # 72 hours from now
    browser.wait(lambda: browser.text_of(".countdown") != first, "the freeze countdown does not move")
    uses = browser.text("lookup-result")
    assert "USED_BY_LICENSE" in uses and "Your licence already used this number for another order." in uses
    browser.shot("lookup-frozen-en")

    assert browser.look_up(blacklisted) == "BLACKLISTED"
    assert browser.text("lookup-blacklist") == "Blacklisted for L1"
    assert "Freeze ended" in browser.text("lookup-freeze")
    assert "Bound to another licence" in browser.text("lookup-binding")
    assert "T1" not in browser.text("lookup-result")

    assert browser.look_up(reserved) == "RESERVED"
    assert browser.text("lookup-reservation") == "Reserved by another licence"
    assert "P1" not in browser.text("lookup-result")  # another licence's order is not shown


def test_a_number_the_other_worker_owns_is_answered_through_this_one(site, browser):
    guard, url, _ = site
    for _ in range(200):  # a number whose partition the second worker owns
        number = fresh_s10()
        request = urllib.request.Request(f"{url}/tracking/{number}", headers={"Authorization": f"Bearer {ADMIN}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            served_by = resp.headers["X-Trackguard-Served-By"]
        if not served_by.rstrip("/").endswith(url.rsplit(":", 1)[1]):
            break
    else:
        raise AssertionError("the second worker owns no partition")
    guard.verdict(guard.submit(tracking_no=number, store_id="S5", order_id="O5"))
    browser.open()
    browser.sign_in(TOKENS["L1"])
    assert browser.look_up(number) == "BOUND"
    assert "S5 · O5" in browser.text("lookup-binding")
    assert f"answered by {served_by}" in browser.text("lookup-result")


def test_switching_language_and_the_browser_language_by_default(site, chromium, browser):
    guard, url, shots = site
    number = fresh_s10()
    guard.verdict(guard.submit(tracking_no=number))
    guard.verdict(guard.submit(tracking_no=number, order_id="O2"))
    browser.open()
    browser.sign_in(TOKENS["L1"])
    browser.look_up(number)
    browser.click("lang-zh")
    assert browser.text_of("nav button[data-tab=lookup]") == "查询运单号"
    assert browser.text("whoami") == "执照 L1"
    result = browser.text("lookup-result")  # the diagnosis drawn again, in Chinese
    assert "本执照已将该运单号用于另一个订单。" in result and "剩余" in result
    browser.shot("lookup-frozen-zh")
    browser.click("lang-en")
    assert browser.text_of("nav button[data-tab=lookup]") == "Look up"
    with Browser(chromium, url, shots, lang="zh-CN") as chinese:  # a new visitor with a Chinese browser
        chinese.open()
        assert chinese.text("signin-btn") == "登录"


def test_check_before_pushing(site, browser):
    guard, _, _ = site
    bound, free = fresh_s10(), fresh_s10()
    guard.verdict(guard.submit(tracking_no=bound))
    browser.open()
    browser.sign_in(TOKENS["L1"])
    browser.tab("check")
    browser.type("check-input", f"{bound}\n{free}\nnot a number!\n")
    browser.click("check-btn")
    browser.wait(lambda: browser.present("#check-summary"), "no check result")
    assert browser.text("check-summary") == "1 of 3 available"
    rows = browser.rows("#check-result tbody tr")
    assert [r[:2] for r in rows] == [[bound, "bound"], [free, "available"], ["not a number!", "invalid"]]
    assert "Push it." in rows[1][2]
    browser.shot_both("check")


def test_reserve_release_and_appeal_from_the_forms(site, browser, tmp_path):
    guard, _, _ = site
    number = fresh_s10()
    browser.open()
    browser.sign_in(TOKENS["L1"])
    browser.tab("commands")
    browser.select("cmd-kind", "reserve")
    assert browser.displayed("cmd-store") and not browser.displayed("cmd-evidence")  # the form of that command
    for field, value in (("cmd-no", number), ("cmd-store", "S1"), ("cmd-order", "O9"), ("cmd-carrier", "CHINAPOST")):
        browser.type(field, value)
    browser.click("cmd-btn")
    browser.wait(lambda: browser.present("#cmd-outcome"), "no command result")
    assert browser.text("cmd-outcome") == f"Done: Reserve of {number}."
    browser.clear("cmd-order")
    browser.type("cmd-order", "O10")
    browser.click("cmd-btn")  # the same number for another order: refused, with the reason explained
    browser.wait(lambda: "Refused" in browser.text("cmd-result"), "a second reservation was not refused")
    assert "ALREADY_RESERVED" in browser.text("cmd-result") and "live reservation" in browser.text("cmd-result")
    browser.shot_both("commands")
    assert browser.look_up(number) == "RESERVED"  # by our own order: its details are ours to see
    assert "O9" in browser.text("lookup-reservation") and "O10" not in browser.text("lookup-reservation")

    # Appeal: the evidence file is hashed in the browser; the worker only ever sees its SHA-256.
    frozen = fresh_s10()
    guard.verdict(guard.submit(tracking_no=frozen))
    guard.verdict(guard.submit(tracking_no=frozen, order_id="O2"))
    evidence = tmp_path / "carrier-letter.pdf"
    evidence.write_bytes(b"%PDF-1.4 the carrier confirms the number is ours\n" * 50)
    browser.tab("commands")
    browser.select("cmd-kind", "appeal")
    browser.clear("cmd-no")
    browser.type("cmd-no", frozen)
    browser.upload("cmd-evidence", evidence)
    want = hashlib.sha256(evidence.read_bytes()).hexdigest()
    browser.wait(lambda: browser.value("cmd-evidence-sha") == want, "the evidence was not hashed in the browser")
    assert browser.value("cmd-evidence-ref") == "carrier-letter.pdf"
    # A licence files the appeal; only the platform decides it (no decision fields for a licence).
    assert not browser.displayed("cmd-decided-by") and not browser.displayed("cmd-decision")
    browser.click("cmd-btn")
    browser.wait(lambda: f"Done: Appeal of {frozen}." in browser.text("cmd-result"), "the appeal was not filed")
    assert "the platform reviews the evidence" in browser.text("cmd-result")
    assert browser.look_up(frozen) == "FROZEN"  # pending: nothing lifted yet
    # The platform's reviewer approves it with the admin token.
    body = {
        "tracking_no": frozen,
        "license_id": "L1",
        "evidence_sha256": want,
        "evidence_ref": "carrier-letter.pdf",
        "decided_by": "ops-lead",
        "decision": "approved",
    }
    request = urllib.request.Request(
        f"{site[1]}/commands/appeal",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=20) as answer:
        assert json.loads(answer.read())["ok"]
    assert browser.look_up(frozen) == "BOUND"  # freeze and blacklist lifted; still bound to O1


def test_used_list_performance_and_reconciliation(site, browser, tmp_path):
    guard, _, _ = site
    store = f"S-{fresh_s10()}"
    numbers = [fresh_s10() for _ in range(4)]
    for i, n in enumerate(numbers[:3]):
        guard.verdict(guard.submit(tracking_no=n, store_id=store, order_id=f"R{i}"))
    for i, n in enumerate(numbers[:3]):  # three failed shipments in one month: an LFR penalty
        guard.verdict(guard.submit(tracking_no=n, store_id=store, order_id=f"X{i}"))
    browser.open()
    browser.sign_in(TOKENS["L1"])
    browser.tab("used")
    browser.click("used-btn")
    browser.wait(lambda: browser.present("#used-result tbody tr"), "no used list")
    browser.shot_both("used")

    browser.tab("performance")
    browser.type("perf-store", store)

    def penalised() -> bool:  # failures reach the store's table through a topic of their own: ask again
        browser.click("perf-btn")
        time.sleep(0.5)
        return browser.present("#perf-total") and browser.rows("#perf-result tbody tr")[0][1] == "3"

    browser.wait(penalised, "the store's three failures were not shown", timeout=30)
    month = browser.rows("#perf-result tbody tr")[0]
    assert month[2].startswith("0.5") and "penalty of 0.5" in month[2], month
    browser.shot_both("performance")

    # The ERP export: one number accepted (matched), one never pushed (erp_not_accepted). GB18030,
    # Chinese headers, local times: as a Chinese ERP writes it.
    export = tmp_path / "erp.csv"
    header = "店铺,订单号,物流公司,运单号,发货时间\n"
    rows = (
        f"{store},R0,中国邮政,{numbers[0]},2026-11-20 08:00:00\n{store},R3,中国邮政,{numbers[3]},2026-11-20 09:00:00\n"
    )
    export.write_bytes((header + rows).encode("gb18030"))
    browser.tab("reconcile")
    browser.upload("rec-file", export)
    browser.click("rec-btn")
    browser.wait(lambda: browser.present("#rec-result table"), "no reconciliation")
    counts = {r[0]: r[1] for r in browser.rows("#rec-result table:first-of-type tbody tr")}
    assert counts["erp_not_accepted"] == "1" and counts["matched"] == "1", counts
    assert numbers[3] in browser.text("rec-result")
    browser.shot_both("reconcile")


def test_the_live_view_moves_as_verdicts_are_decided(site, browser):
    guard, url, _ = site
    browser.open()
    browser.sign_in(TOKENS["L1"])
    browser.tab("live")
    browser.wait(lambda: browser.attribute("live-total", "data-total") is not None, "no live counts")
    before = int(browser.attribute("live-total", "data-total"))
    ids = [guard.submit(tracking_no=fresh_s10()) for _ in range(30)]
    for event_id in ids:
        guard.verdict(event_id)
    browser.wait(
        lambda: int(browser.attribute("live-total", "data-total")) >= before + 30, "the live count did not move"
    )
    assert browser.text("live-workers") == "2 of 2 workers answered"
    # The counts are every worker's: the same as each worker's own /live summed.
    with urllib.request.urlopen(
        urllib.request.Request(f"{url}/live", headers={"Authorization": f"Bearer {ADMIN}"}), timeout=10
    ) as resp:
        live = json.loads(resp.read())
    assert live["workers"] == 2 and sum(live["verdicts"].values()) >= before + 30
    browser.shot_both("live")


def test_the_console_is_served_with_a_content_security_policy(site):
    _, url, _ = site
    for path in ("/", "/console/console.js", "/console/reasons.json"):
        with urllib.request.urlopen(f"{url}{path}", timeout=10) as resp:
            assert resp.headers["Content-Security-Policy"].startswith("default-src 'self';"), path
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
    try:
        urllib.request.urlopen(f"{url}/console/..%2Fsettings.py", timeout=10)
        raise AssertionError("a file outside the console was served")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
