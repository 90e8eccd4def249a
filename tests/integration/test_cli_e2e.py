"""The CLI against a real broker: the forms a user types are accepted."""

from __future__ import annotations

import pytest

from ..test_cli import trackguard

pytestmark = pytest.mark.broker


def test_the_url_form_works_against_a_real_broker(broker):
    code, err, _ = trackguard(
        "submit",
        "--broker",
        f"kafka://{broker.address}",
        "--event-id",
        "cli-url",
        "--license-id",
        "L1",
        "--store-id",
        "S1",
        "--order-id",
        "O1",
        "--carrier-code",
        "CHINAPOST",
        "--tracking-no",
        "RR123456785CN",
        "--shipped-at",
        "2026-11-20T08:00:00+08:00",
        env={"TRACKGUARD_APP_ID": "cli-errors"},
    )
    assert code == 0, err


def test_an_erp_export_in_gb18030_with_chinese_headers_through_the_cli_and_a_worker(broker, tmp_path):
    """Issue 18: a GB18030 CSV as 店小秘 writes it, through `trackguard import` and a real worker. The
    same number and order typed once as 中国邮政 and once as CHINAPOST is a re-push (rule 3), not a
    CARRIER_MISMATCH; local times get +08:00; re-importing the file replays (rule 2); and in uscc
    mode a bad licence id sent past the CLI is a dead letter naming the field."""
    import json
    import subprocess
    import sys

    from streams.settings import DEFAULT_CONFIG

    from ..test_cli import ENV
    from .conftest import Guard, fresh_s10

    licence = "91110000600037341L"  # a valid USCC from python-stdnum's doc tests
    guard = Guard(
        broker,
        tmp_path,
        policy={"license_id_format": "uscc"},
        **{"import": {"columns": str(DEFAULT_CONFIG.parent / "import_columns.toml")}},
    )
    try:
        guard.start_worker()
        repushed, other = fresh_s10(), fresh_s10()
        spaced = f"{repushed[:2]} {repushed[2:6]} {repushed[6:11]} {repushed[11:]}".lower()
        export = tmp_path / "店小秘订单导出.csv"
        rows = [
            "店铺名称,平台订单号,承运商,跟踪号,发货时间,收货人",
            f"义乌小店,T-1001,中国邮政,{repushed},2026/11/25 08:00,张三",
            f"义乌小店,T-1001,CHINAPOST,{spaced},2026-11-25 09:30:00,张三",
            f"义乌小店,T-1002,燕文,{other},2026年11月25日 10时00分,李四",
            f"金华二店,T-2001,燕文,{other},2026-11-26 11:00,王五",
        ]
        export.write_bytes("\r\n".join(rows).encode("gb18030"))

        def run(*extra: str) -> subprocess.CompletedProcess:
            args = ["import", str(export), "--license", licence, *extra]
            return subprocess.run(
                [sys.executable, "-m", "streams", "--config", str(guard.config_path), *args],
                capture_output=True,
                text=True,
                timeout=120,
                env=ENV,
                stdin=subprocess.DEVNULL,
            )

        dry = run("--dry-run")
        assert dry.returncode == 0, dry.stderr
        ids = [json.loads(line)["event_id"] for line in dry.stdout.splitlines()[1:]]
        assert len(ids) == 4 and "read as gb18030" in dry.stderr
        done = run()
        assert done.returncode == 0 and "imported 4 submissions" in done.stdout, done.stderr

        verdicts = [guard.verdict(event_id) for event_id in ids]
        got = [(v["verdict"], v["reason"], v["replay"], v["carrier_code"], v["tracking_no"]) for v in verdicts]
        assert got == [
            ("accepted", "FIRST_USE", False, "CHINAPOST", repushed),
            ("accepted", "SAME_ORDER_REPUSH", True, "CHINAPOST", repushed),
            ("accepted", "FIRST_USE", False, "YANWEN", other),
            ("duplicate", "USED_BY_LICENSE", False, "YANWEN", other),
        ]
        assert [v["shipped_at"] for v in verdicts[:3]] == [
            "2026-11-25T00:00:00.000Z",
            "2026-11-25T01:30:00.000Z",
            "2026-11-25T02:00:00.000Z",
        ]
        assert all(v["license_id"] == licence for v in verdicts)

        again = run("--json")  # the same file again: content-derived ids, so event-id replays (rule 2)
        assert again.returncode == 0, again.stderr
        summary = json.loads(again.stdout)
        assert (summary["published"], summary["good"], summary["encoding"]) == (4, 4, "gb18030")
        replays = [guard.verdict(event_id, nth=1) for event_id in ids]
        assert [(v["verdict"], v["reason"], v["replay"]) for v in replays] == [
            (v["verdict"], v["reason"], True) for v in verdicts
        ]

        bad = guard.submit(license_id="91110000600037341N", tracking_no=fresh_s10())  # past the CLI
        dead = guard.verdict(bad)
        assert (dead["verdict"], dead["reason"]) == ("invalid", "BAD_CHECK_DIGIT:license_id")
        assert "Unified Social Credit Code" in dead["error"]
        assert guard.contract_violations() == []
    finally:
        guard.close()
