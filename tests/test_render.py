"""What the CLI shows people (streams/render.py), in Chinese and English, without a broker.

The answers rendered are made by the pure core the HTTP API answers with (`diagnose`, `view`,
`reconcile`, the reuse report), not written by hand, so a renamed field shows up here. Each
rendering is printed to a recording Console 120 columns wide; long explanations wrap there, so
texts are compared with the whitespace taken out.
"""

from __future__ import annotations

import io
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console, RenderableType

from streams import render
from streams.core.events import Submission
from streams.core.performance import Failure, PerformancePolicy, fold, store_key, view
from streams.core.queries import diagnose
from streams.core.reconcile import ErpRow, invalid_row, reconcile
from streams.core.reuse import report as reuse_report
from streams.core.reuse import reuse_entry
from streams.core.rules import Policy, decide
from streams.i18n import explain, t

NUMBER = "RR123456785CN"
NOW = 1_790_000_000_000  # 2026-09-21T14:13:20Z


@pytest.fixture(autouse=True)
def shanghai(monkeypatch):
    """Times are shown in the reader's zone: here a seller's in Shanghai (UTC+8, no DST)."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def in_shanghai(iso: str) -> str:
    """An API time as a reader in Shanghai should see it."""
    when = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo("Asia/Shanghai"))
    return when.strftime("%Y-%m-%d %H:%M:%S+08:00")


def shown(renderable: RenderableType) -> str:
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def compact(text: str) -> str:
    return "".join(text.split())


def contains(text: str, *parts: str) -> bool:
    flat = compact(text)
    return all(compact(part) in flat for part in parts)


def submitted(state, license_id, order, at_ms, store="S1", number=NUMBER, carrier="CHINAPOST"):
    return decide(
        state,
        Submission(f"{license_id}-{order}", license_id, store, order, carrier, number, at_ms, "api", at_ms),
        Policy(),
    )


def duplicated_state() -> dict:
    """L1 binds the number; L2 pushes it (a duplicate, which freezes it for L2), then again (frozen)."""
    state = None
    for i, (license_id, order) in enumerate([("L1", "O1"), ("L2", "O9"), ("L2", "O10")]):
        _, state = submitted(state, license_id, order, NOW + i * 1000)
    return state


def test_a_diagnosis_shows_the_freeze_end_and_why_in_chinese():
    answer = diagnose(NUMBER, duplicated_state(), "L2", NOW + 5000)
    until = answer["freezes"][0]["frozen_until"]
    text = shown(render.diagnosis(answer, "zh"))
    assert f"运单号 {NUMBER}" in text
    assert f"执照 L2：冻结至 {in_shanghai(until)}（冻结中）" in text
    facts = text.split("使用记录")[0]  # above the uses and their legend, which name FROZEN_AFTER_DUPLICATE too
    assert contains(
        facts,
        "已冻结：本执照曾重复提交该运单号，在显示的时间之前对本执照冻结。",
        "下一步：请为该订单换一个运单号；冻结结束后该号仍在黑名单中，直到申诉获批。",
        "因此前的重复提交，该运单号已被列入本执照黑名单（所有店铺共用）。",
    )
    assert "状态" in text and "已冻结" in text and contains(text, t("status.frozen", "zh"))
    assert "已被其他执照绑定（不显示对方信息）" in text  # a licence sees nothing of L1's
    assert "其他执照使用过 1 次（不显示明细）" in text and "订单 O1 " not in text
    meaning, next_step = explain("USED_BY_OTHER_LICENSE", "zh")  # a use's reason, explained below the table
    assert contains(text, "USED_BY_OTHER_LICENSE", meaning, next_step)
    assert "Frozen" not in text and "Next" not in text


def test_a_diagnosis_in_english_for_the_admin_shows_the_binding_and_every_use():
    answer = diagnose(NUMBER, duplicated_state(), None, NOW + 5000)
    text = shown(render.diagnosis(answer, "en"))
    binding = answer["binding"]
    assert contains(text, f"CHINAPOST · store S1 · order O1 · shipped {in_shanghai(binding['shipped_at'])}")
    assert binding["fingerprint"] in text
    assert "licence L2: frozen until" in text and "(in force)" in text
    assert contains(
        text, "Frozen: this licence submitted the number as a duplicate", "Next: Use another tracking number"
    )
    for order, verdict, reason in (("O1", "accepted", "FIRST_USE"), ("O9", "duplicate", "USED_BY_OTHER_LICENSE")):
        assert any(order in line and verdict in line and reason in line for line in text.splitlines())
    assert contains(text, "What the codes mean", "First use: the number is now bound to this licence, store and order.")


def test_a_number_nobody_used_is_available():
    text = shown(render.diagnosis(diagnose(NUMBER, None, "L1", NOW), "zh"))
    assert "未绑定" in text and "暂无使用记录" in text and contains(text, "可用：本执照可以推送。")
    assert "冻结至" not in text and "黑名单" not in text


def test_data_is_printed_as_typed_never_as_markup():
    _, state = submitted(None, "L1", "[red]O1[/red]", NOW, store="[bold]S1")
    text = shown(render.diagnosis(diagnose(NUMBER, state, "L1", NOW), "en"))
    assert "[bold]S1" in text and "[red]O1[/red]" in text


def test_check_shows_each_status_and_what_to_do_about_it():
    answer = {
        "license_id": "L1",
        "results": [
            {"tracking_no": NUMBER, "status": "frozen"},
            {"tracking_no": "RR999999995CN", "status": "available"},
            {"tracking_no": "no way!", "status": "invalid"},
        ],
    }
    zh = shown(render.check(answer, "zh"))
    assert "执照 L1 推送前检查：共 3 个运单号" in zh
    rows = [line.strip() for line in zh.splitlines()]
    for number, word in ((NUMBER, "已冻结"), ("RR999999995CN", "可用"), ("no way!", "无效")):
        assert any(row.startswith(number) and row.endswith(word) for row in rows), (number, word)
    for status in ("frozen", "available", "invalid"):
        meaning, next_step = explain(f"status.{status}", "zh")
        assert meaning == t(f"status.{status}", "zh") and contains(zh, meaning, "下一步：" + next_step)
    en = shown(render.check(answer, "en"))
    assert "Check before push for licence L1: 3 numbers" in en and contains(
        en, "Next: Do not push it; use another number."
    )


def test_performance_shows_penalised_months_a_downgrade_and_the_alerts_explained():
    policy = PerformancePolicy()
    days = ["2026-10-02", "2026-10-03", "2026-10-04", "2026-11-02", "2026-11-03", "2026-11-04"]
    failures = [
        Failure("L1", "S1", f"e{i}", "duplicate", "USED_BY_LICENSE", f"RR{i}", f"{day}T00:00:00Z")
        for i, day in enumerate(days)
    ]
    _, states = fold(failures, policy)
    answer = view(states[store_key("L1", "S1")], "L1", "S1", policy)
    assert answer["downgraded"]
    zh = shown(render.performance(answer, "zh"))
    assert "执照 L1 的店铺 S1" in zh and "USED_BY_LICENSE ×3" in zh
    assert "LFR 扣分合计：1.0；服务等级降级：是" in zh
    assert contains(zh, explain("LFR_PENALTY", "zh")[0], explain("SERVICE_DOWNGRADE", "zh")[1])
    assert contains(zh, "一个月内失败发货达到 3 次即扣 LFR 分")
    en = shown(render.performance(view(None, "L1", "S2", policy), "en"))
    assert "No failed shipments kept for this store." in en


def test_a_reconciliation_lists_every_finding_with_its_meaning():
    nov = 1_794_000_000_000  # 2026-11-06
    held_by_l2 = submitted(None, "L2", "O2", nov, number="RR2")[1]
    states = {
        "RR1": submitted(None, "L1", "O1", nov, number="RR1")[1],  # matched
        "RR2": submitted(held_by_l2, "L1", "O2", nov + 1000, number="RR2")[1],  # L1's push was a duplicate
        "RR3": submitted(None, "L1", "O3", nov, number="RR3", carrier="YANWEN")[1],  # the ERP says CHINAPOST
        "RR4": submitted(None, "L1", "O4", nov, number="RR4")[1],  # accepted, on no ERP row
    }
    rows = [ErpRow(2, "RR1", "CHINAPOST", nov, "S1", "O1"), ErpRow(3, "RR2", "CHINAPOST", nov, "S1", "O2")]
    rows.append(ErpRow(4, "RR3", "CHINAPOST", nov, "S1", "O3"))
    rows.append(ErpRow(5, "RR6", "YANWEN", nov, "S1", "O6"))  # never submitted
    used = [(n, s) for n, s in states.items() if s["binding"]["license"] == "L1"]
    report = reconcile("L1", rows, states, used, month="2026-11", timezone="Asia/Shanghai", now_ms=nov)
    report.findings.append(invalid_row(7, "", "BAD_ROW", "no value for 跟踪号 (tracking_no)"))
    answer = report.as_dict("L1", "2026-11")
    zh = shown(render.reconcile(answer, "zh"))
    assert "执照 L1 2026-11 对账" in zh
    for number in ("RR2", "RR3", "RR4", "RR6"):
        assert number in zh
    rr3 = next(line for line in zh.splitlines() if "RR3" in line)
    assert "不一致" in rr3 and "承运商不同" in rr3 and "CHINAPOST" in rr3 and "YANWEN" in rr3
    assert "RR1" not in zh.split("代码说明")[0].split("不在该月")[1]  # matched rows are counted, not listed
    assert "no value" in zh and "跟踪号" in zh  # the row's problem, in the file reader's words
    assert contains(zh, explain("erp_not_accepted", "zh")[0], explain("accepted_not_in_erp", "zh")[1])
    assert contains(zh, "NOT_SUBMITTED", explain("NOT_SUBMITTED", "zh")[1], explain("USED_BY_OTHER_LICENSE", "zh")[0])
    rr2 = next(line for line in zh.splitlines() if "RR2" in line)
    assert "重复" in rr2 and "已冻结" in rr2  # L1's last verdict on it, and its status for L1 now
    assert contains(zh, t("status.frozen", "zh"))
    assert contains(zh, "一致", "两边都有，承运商和发货时间也相同。")
    clean = shown(render.reconcile({"license_id": "L1", "month": None, "counts": {"matched": 4}, "findings": []}, "en"))
    assert "Nothing to follow up" in clean and "matched" in clean


def test_reuse_lists_the_licences_in_the_order_they_claimed_a_number():
    state = None
    for i, license_id in enumerate(["L5", "L6", "L4"]):
        _, state = submitted(state, license_id, f"O{i}", NOW + i * 1000)
    answer = reuse_report([reuse_entry(NUMBER, state, "Asia/Shanghai")])
    zh = shown(render.reuse(answer, "zh"))
    assert "被多个执照使用的运单号" in zh and "CHINAPOST" in zh
    lines = zh.splitlines()
    row = next(i for i, line in enumerate(lines) if NUMBER in line)
    claimed = [lines[row].split()[5], lines[row + 1].strip(), lines[row + 2].strip()]
    assert claimed == ["L5", "L6", "L4"]  # one a line, in the order they claimed the number
    assert "2026-09-21 22:13:21+08:00" in lines[row]  # the reuse, 14:13:21 UTC, in the reader's zone
    assert "承运商 全部，月份 全部" in zh
    assert "No number was claimed by two licences." in shown(render.reuse(reuse_report([]), "en"))


def test_a_refused_command_says_why_and_what_to_do():
    refused = {"command": "release", "tracking_no": NUMBER, "ok": False, "error": "NOT_HOLDER", "replay": False}
    zh = shown(render.command_result(refused, "zh"))
    assert f"释放 {NUMBER}：被拒绝（NOT_HOLDER）" in zh
    assert contains(zh, explain("NOT_HOLDER", "zh")[0], "下一步：" + explain("NOT_HOLDER", "zh")[1])
    done = {"command": "reserve", "tracking_no": NUMBER, "ok": True, "expires_at": "2026-11-25T01:00:00.000Z"}
    en = shown(render.command_result({**done, "replay": True, "command_id": "c-7"}, "en"))
    assert f"reserve {NUMBER}: done" in en and "reserved until 2026-11-25 09:00:00+08:00" in en and "c-7" in en


def test_the_audit_report_lists_counts_and_violations():
    report = {
        "ok": False,
        "counts": {"submissions": 4000},
        "violations": [f"event e{i}: 0 verdicts" for i in range(52)],
    }
    zh = shown(render.audit_report(report, "zh"))
    assert "违规 52 条" in zh and "event e49: 0 verdicts" in zh and "event e50" not in zh and "……另有 2 条" in zh
    assert "4,000" in zh
    ok = shown(render.audit_report({"ok": True, "counts": {}, "violations": []}, "en"))
    assert "No violations" in ok


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_verdict_line_names_the_verdict_and_explains_the_reason(lang):
    verdict = {
        "decided_at": "2026-11-25T00:00:00.000Z",
        "verdict": "frozen",
        "reason": "FROZEN_AFTER_DUPLICATE",
        "carrier_code": "CHINAPOST",
        "tracking_no": NUMBER,
        "license_id": "L2",
        "store_id": "S1",
        "order_id": "O10",
        "replay": False,
        "frozen_until": "2026-11-28T00:00:00.000Z",
    }
    line = render.verdict_line(verdict, lang).plain
    assert "2026-11-25 08:00:00+08:00" in line and "L2/S1/O10" in line and "2026-11-28 08:00:00+08:00" in line
    assert t("cli.verdict.frozen", lang) in line and explain("FROZEN_AFTER_DUPLICATE", lang)[0] in line


def test_settings_show_the_value_or_the_default():
    rows = [
        {
            "section": "kafka",
            "key": "broker",
            "value": "127.0.0.1:9092",
            "default": "x",
            "env": "TRACKGUARD_BROKER",
            "help": "servers",
        },
        {
            "section": "topics",
            "key": "submitted",
            "value": None,
            "default": "shipments.submitted",
            "env": None,
            "help": "in",
        },
    ]
    zh = shown(render.settings_table(rows, "zh"))
    assert "[kafka] broker" in zh and "127.0.0.1:9092" in zh and "默认 'shipments.submitted'" in zh and "环境变量" in zh
