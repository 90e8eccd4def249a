"""Every CLI command fails cleanly: the real `trackguard` command, run as a user runs it.

Each mistake ends in seconds with one or two lines saying what is wrong and what to do, and exit
code 2 — never a Python traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streams.broker import free_port

# English whatever the machine's locale: the tests below read the messages (TRACKGUARD_LANG=zh: theirs)
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("TRACKGUARD_")}, "TRACKGUARD_LANG": "en"}


def trackguard(*args: str, env: dict | None = None, timeout: float = 30.0) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "streams", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**ENV, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, proc.stderr.strip(), time.monotonic() - started


def assert_clean_failure(code: int, err: str, *expected: str) -> None:
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    assert 1 <= len(err.splitlines()) <= 2, err
    for text in expected:
        assert text in err, err


def test_a_broker_that_does_not_answer_fails_in_seconds():
    dead = f"127.0.0.1:{free_port()}"
    for args in (["submit", "--tracking-no", "RR123456785CN"], ["tail", "--seconds", "1"], ["import", __file__]):
        code, err, took = trackguard(*args, "--broker", dead)
        if args[0] == "import":  # the file is checked first: this one is not JSON Lines
            assert_clean_failure(code, err, "not a JSON object")
            continue
        assert_clean_failure(code, err, "no Kafka broker answers at " + dead, "--broker")
        assert took < 15


def test_faust_url_form_of_the_broker_is_accepted_and_a_bad_address_is_named():
    dead = free_port()
    code, err, _ = trackguard("submit", "--broker", f"kafka://127.0.0.1:{dead}", "--tracking-no", "X")
    assert_clean_failure(code, err, f"127.0.0.1:{dead}")  # parsed: only the broker is missing
    code, err, _ = trackguard("submit", "--tracking-no", "X", env={"TRACKGUARD_BROKER": "localhost"})
    assert_clean_failure(code, err, "'localhost' is not host:port")


def test_missing_and_unreadable_files(tmp_path: Path):
    assert_clean_failure(*trackguard("import", str(tmp_path / "nope.csv"))[:2], "no such file")
    no_columns = tmp_path / "erp.csv"
    no_columns.write_text("order,number\nA-1,RR123456785CN\n")
    assert_clean_failure(*trackguard("import", str(no_columns))[:2], "lacks the column(s) license_id")
    gbk = tmp_path / "gbk.jsonl"
    gbk.write_bytes('{"店铺": "义乌"}\n'.encode("gbk"))
    assert_clean_failure(*trackguard("import", str(gbk))[:2], "not UTF-8")
    assert_clean_failure(
        *trackguard(
            "appeal",
            "--tracking-no",
            "RR123456785CN",
            "--evidence",
            str(tmp_path / "x.pdf"),
            "--evidence-ref",
            "T",
            "--decided-by",
            "ops",
            "--decision",
            "approved",
            "--token",
            "t",
        )[:2],
        "no such evidence file",
    )


def test_settings_files_reject_unknown_keys_wrong_types_and_missing_paths(tmp_path: Path):
    assert_clean_failure(*trackguard("--config", str(tmp_path / "missing.toml"), "submit")[:2], "does not exist")
    typo = tmp_path / "typo.toml"
    typo.write_text("[kafka]\nparititons = 8\n")
    assert_clean_failure(
        *trackguard("--config", str(typo), "submit")[:2],
        "unknown key 'parititons' in [kafka]",
        "did you mean 'partitions'",
    )
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[worker]\nbatch_max = "lots"\n')
    assert_clean_failure(*trackguard("--config", str(wrong), "submit")[:2], "[worker] batch_max must be a int")
    broken = tmp_path / "broken.toml"
    broken.write_text("[kafka\n")
    assert_clean_failure(*trackguard("--config", str(broken), "submit")[:2], "cannot be read")
    code, err, _ = trackguard("submit", env={"TRACKGUARD_PARTITIONS": "eight"})
    assert_clean_failure(code, err, "TRACKGUARD_PARTITIONS='eight' must be a number")


def test_http_commands_without_a_token_or_a_reachable_api():
    assert_clean_failure(*trackguard("diagnose", "RR123456785CN")[:2], "no API token", "TRACKGUARD_TOKEN")
    url = f"http://127.0.0.1:{free_port()}"
    code, err, took = trackguard("diagnose", "RR123456785CN", "--url", url, "--token", "t")
    assert_clean_failure(code, err, f"cannot reach the trackguard HTTP API at {url}", "TRACKGUARD_URL")
    assert took < 15


# --- trackguard import of ERP exports (issue 18): run as a user runs it, no broker needed until
# the rows are good (a dead broker address proves nothing was attempted before).


def trackguard_out(*args: str) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "streams", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, proc.stdout, proc.stderr.strip()


ERP_HEADER = "店铺名称,平台订单号,承运商,跟踪号,发货时间,收货人"
ERP_ROWS = [
    "义乌小店,T-1001,中国邮政,RR123456785CN,2026/11/25 08:00,张三",
    "义乌小店,T-1001,CHINAPOST,RR 1234 5678 5CN,2026-11-25 09:00:00,张三",
]


def test_import_dry_run_reads_a_gb18030_export_and_sends_nothing(tmp_path: Path):
    import json

    export = tmp_path / "店小秘.csv"
    export.write_bytes("\r\n".join([ERP_HEADER, *ERP_ROWS]).encode("gb18030"))
    dead = f"127.0.0.1:{free_port()}"
    code, out, err = trackguard_out("import", str(export), "--license", "L1", "--dry-run", "--broker", dead)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("would publish 2 submissions to shipments.submitted")
    sent = [json.loads(line) for line in lines[1:]]
    assert [(e["carrier_code"], e["shipped_at"]) for e in sent] == [
        ("中国邮政", "2026-11-25T08:00:00+08:00"),
        ("CHINAPOST", "2026-11-25T09:00:00+08:00"),
    ]
    assert all(e["license_id"] == "L1" and e["event_id"].startswith("import-") and "收货人" not in e for e in sent)
    assert "read as gb18030" in err and "跟踪号→tracking_no" in err and "not sent: 收货人" in err
    code, out, _ = trackguard_out("import", str(export), "--license", "L1", "--dry-run", "--timezone", "Europe/Berlin")
    assert code == 0 and '"shipped_at":"2026-11-25T08:00:00+01:00"' in out


def test_import_bad_rows_are_listed_by_line_and_nothing_is_published(tmp_path: Path):
    export = tmp_path / "erp.csv"
    bad_time = ERP_ROWS[1].replace("2026-11-25 09:00:00", "下周")
    export.write_text("\n".join([ERP_HEADER, ERP_ROWS[0], bad_time, "义乌小店,T-1003,顺丰,,2026/11/25 08:00,李四"]))
    dead = f"127.0.0.1:{free_port()}"
    code, out, err = trackguard_out("import", str(export), "--license", "L1", "--broker", dead)
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"{export}:3: 发货时间 (shipped_at) '下周' is not a date-time" in err
    assert f"{export}:4: no value for 跟踪号 (tracking_no)" in err
    assert "2 of 3 rows cannot be imported (listed above); nothing was published" in err
    assert "--skip-bad to publish the 1 good rows" in err and "broker" not in err
    # --skip-bad: the good row goes on to the broker (here: none answers)
    code, err, _ = trackguard("import", str(export), "--license", "L1", "--skip-bad", "--broker", dead)
    assert code == 2 and "no Kafka broker answers at " + dead in err and f"{export}:3:" in err


def test_import_option_mistakes_are_one_line_each(tmp_path: Path):
    export = tmp_path / "erp.csv"
    export.write_text("\n".join([ERP_HEADER, *ERP_ROWS]))
    run = lambda *extra: trackguard("import", str(export), "--license", "L1", "--dry-run", *extra)[:2]  # noqa: E731
    assert_clean_failure(*run("--timezone", "Asia/Shanghia"), "'Asia/Shanghia' is no IANA time zone")
    assert_clean_failure(*run("--encoding", "gb-18030x"), "'gb-18030x' is no encoding")
    assert_clean_failure(*run("--columns", str(tmp_path / "nope.toml")), "--columns", "does not exist")
    mine = tmp_path / "mine.toml"
    mine.write_text('[columns]\ntracking = ["单号"]\n')
    assert_clean_failure(*run("--columns", str(mine)), "unknown field 'tracking'")
    no_licence = trackguard("import", str(export), "--dry-run")[:2]
    assert_clean_failure(*no_licence, "lacks the column(s) license_id")


def test_import_in_uscc_mode_checks_the_licence_option_and_every_row(tmp_path: Path):
    config_dir = Path(__file__).resolve().parents[1] / "config"
    config = tmp_path / "uscc.toml"
    config.write_text(
        '[policy]\nlicense_id_format = "uscc"\n'
        f'[carriers]\nfile = "{config_dir / "carriers.toml"}"\n'
        f'[import]\ncolumns = "{config_dir / "import_columns.toml"}"\n'
    )
    export = tmp_path / "erp.csv"
    export.write_text("\n".join([ERP_HEADER, *ERP_ROWS]))
    code, err, _ = trackguard("--config", str(config), "import", str(export), "--license", "L1", "--dry-run")
    assert_clean_failure(code, err, "--license: license_id 'L1' is not a Unified Social Credit Code")
    # valid code from python-stdnum's doc tests; a licence column with a bad check digit in row 3
    with_column = tmp_path / "with-licence.csv"
    with_column.write_text(
        "\n".join(
            [
                "营业执照," + ERP_HEADER,
                "91110000600037341L," + ERP_ROWS[0],
                "91110000600037341N," + ERP_ROWS[1],
            ]
        )
    )
    code, out, err = trackguard_out("--config", str(config), "import", str(with_column), "--dry-run")
    assert code == 2 and f"{with_column}:3: license_id '91110000600037341N' fails the check digit" in err
    code, out, err = trackguard_out("--config", str(config), "import", str(with_column), "--dry-run", "--skip-bad")
    assert code == 0 and out.startswith("would publish 1 submissions") and "91110000600037341L" in out


def test_import_reads_an_xlsx_export(tmp_path: Path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(ERP_HEADER.split(","))
    sheet.append(["义乌小店", "T-1001", "菜鸟", "LP00123456789012", "2026-11-25 08:00", "张三"])
    book.save(tmp_path / "马帮.xlsx")
    code, out, err = trackguard_out("import", str(tmp_path / "马帮.xlsx"), "--license", "L1", "--dry-run")
    assert code == 0, err
    assert out.startswith("would publish 1 submissions") and '"carrier_code":"菜鸟"' in out


def test_import_with_a_settings_file_of_its_own_uses_the_shipped_column_mapping(tmp_path: Path):
    carriers = Path(__file__).resolve().parents[1] / "config" / "carriers.toml"
    config = tmp_path / "own.toml"  # no import_columns.toml beside it, [import] columns not set
    config.write_text(f'[carriers]\nfile = "{carriers}"\n')
    export = tmp_path / "erp.csv"
    export.write_text("\n".join([ERP_HEADER, *ERP_ROWS]))
    code, out, err = trackguard_out("--config", str(config), "import", str(export), "--license", "L1", "--dry-run")
    assert code == 0 and out.startswith("would publish 2 submissions"), err
    config.write_text(f'[carriers]\nfile = "{carriers}"\n[import]\ncolumns = "mine.toml"\n')
    code, err, _ = trackguard("--config", str(config), "import", str(export), "--license", "L1", "--dry-run")
    assert_clean_failure(code, err, "mine.toml does not exist")


# --- people and machines (issue 20): tables and explanations in the user's language by default,
# the API's own JSON with --json, errors on stderr in that language. A small HTTP server on
# loopback stands in for a worker; its answers are the pure core's (tests/test_render.py).


@dataclass
class FakeApi:
    url: str
    answers: dict[tuple[str, str], tuple[int, Any]]  # (method, path) -> (status, JSON or text)
    seen: list[tuple[str, str, bytes]]  # (method, path with query, body)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answers: dict[tuple[str, str], tuple[int, Any]] = {}
    seen: list[tuple[str, str, bytes]] = []

    class Worker(BaseHTTPRequestHandler):
        def answer(self) -> None:
            seen.append((self.command, self.path, self.rfile.read(int(self.headers.get("Content-Length") or 0))))
            status, body = answers[(self.command, self.path.split("?")[0])]
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/csv" if isinstance(body, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Worker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeApi(f"http://127.0.0.1:{server.server_address[1]}", answers, seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    from streams.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_diagnose_shows_people_a_panel_in_their_language_and_machines_the_apis_json(api, capsys, monkeypatch):
    from streams.core.queries import diagnose

    from .test_render import NOW, NUMBER, duplicated_state

    answer = diagnose(NUMBER, duplicated_state(), "L2", NOW + 5000)
    api.answers[("GET", f"/tracking/{NUMBER}")] = (200, answer)
    flags = ("--url", api.url, "--token", "secret-l2")
    monkeypatch.setenv("TRACKGUARD_LANG", "zh")
    code, out, err = run_main(capsys, "diagnose", NUMBER, *flags)
    assert code == 0 and err == "" and "\x1b" not in out
    assert f"运单号 {NUMBER}" in out and "冻结至" in out and "已冻结：本执照曾重复提交该运单号" in out
    code, out, _ = run_main(capsys, "diagnose", NUMBER, *flags, "--json")
    assert code == 0 and json.loads(out) == answer
    # --lang before or after the command, over TRACKGUARD_LANG
    for args in (("--lang", "en", "diagnose", NUMBER, *flags), ("diagnose", NUMBER, *flags, "--lang", "en")):
        code, out, _ = run_main(capsys, *args)
        assert code == 0 and f"Tracking number {NUMBER}" in out and "licence L2: frozen until" in out
    assert "运单号" in run_main(capsys, "--lang", "en", "diagnose", NUMBER, *flags, "--lang", "zh")[1]


def test_a_refusal_is_one_error_line_in_the_users_language_and_exit_1(api, capsys):
    refused = {"error": "a licence token sees only its own stores"}
    api.answers[("GET", "/stores/S1/performance")] = (403, refused)
    flags = ("--url", api.url, "--token", "secret-l1")
    code, out, err = run_main(capsys, "performance", "S1", "--license", "L2", *flags, "--lang", "zh")
    assert (code, out) == (1, "")
    assert err == "trackguard performance：API 拒绝了请求（HTTP 403）：a licence token sees only its own stores\n"
    code, out, err = run_main(capsys, "performance", "S1", "--license", "L2", *flags, "--json")
    assert code == 1 and json.loads(out) == refused and err == ""
    assert api.seen[-1][1] == "/stores/S1/performance?license=L2"


def test_a_refused_command_is_explained_and_exits_1(api, capsys):
    result = {"command_id": "c-1", "command": "release", "tracking_no": "RR1", "ok": False, "error": "NOT_HOLDER"}
    api.answers[("POST", "/commands/release")] = (
        409,
        {**result, "replay": False, "decided_at": "2026-11-25T00:00:00Z"},
    )
    args = ("release", "--tracking-no", "RR1", "--order-id", "O2", "--url", api.url, "--token", "t")
    code, out, err = run_main(capsys, *args, "--lang", "en")
    assert code == 1 and err == ""
    assert "release RR1: refused (NOT_HOLDER)" in out and "Only the licence and order holding the reservation" in out
    code, out, _ = run_main(capsys, *args, "--json")
    assert code == 1 and json.loads(out)["error"] == "NOT_HOLDER"
    assert json.loads(api.seen[-1][2]) == {"tracking_no": "RR1", "order_id": "O2"}


def test_check_and_reuse_tables_and_their_json(api, capsys, tmp_path: Path):
    checked = {"license_id": "L1", "results": [{"tracking_no": "RR1", "status": "bound"}]}
    api.answers[("POST", "/tracking/check")] = (200, checked)
    listing = tmp_path / "numbers.txt"
    listing.write_text("RR1,T-1\n")
    flags = ("--url", api.url, "--token", "t")
    code, out, _ = run_main(capsys, "check", str(listing), *flags, "--lang", "zh")
    assert code == 0 and "已绑定" in out and "下一步：请查询看是谁在用" in out
    assert json.loads(run_main(capsys, "check", str(listing), *flags, "--json")[1]) == checked
    assert json.loads(api.seen[-1][2]) == {"tracking_numbers": ["RR1"]}
    nothing = {"month": "2026-11", "carrier_code": None, "groups": [], "items": []}
    api.answers[("GET", "/reuse")] = (200, nothing)
    code, out, _ = run_main(capsys, "reuse", "--month", "2026-11", *flags, "--lang", "zh")
    assert code == 0 and "没有运单号被两个以上执照使用。" in out and api.seen[-1][1] == "/reuse?month=2026-11"


def test_reconcile_shows_a_table_or_passes_the_apis_json_and_csv_through(api, capsys, tmp_path: Path):
    export = tmp_path / "erp.csv"
    export.write_text("\n".join([ERP_HEADER, ERP_ROWS[0]]))
    report = {
        "license_id": "L1",
        "month": None,
        "counts": {"erp_not_accepted": 1, "matched": 0},
        "findings": [
            {"kind": "erp_not_accepted", "tracking_no": "RR123456785CN", "line": 2, "reason": "NOT_SUBMITTED"}
        ],
    }
    csv_report = "kind,tracking_no\nerp_not_accepted,RR123456785CN\n"
    api.answers[("POST", "/licenses/L1/reconcile")] = (200, report)
    flags = ("--license", "L1", "--url", api.url, "--token", "t")
    code, out, err = run_main(capsys, "reconcile", str(export), *flags, "--lang", "zh")
    assert code == 0 and "执照 L1 对账" in out and "ERP 中有这笔发货，但从未提交过。" in out
    assert "跟踪号→tracking_no" in err and "\x1b" not in err  # the columns used; no progress bar off a terminal
    sent = json.loads(api.seen[-1][2])["rows"]
    assert [(r["line"], r["tracking_no"]) for r in sent] == [(2, "RR123456785CN")] and api.seen[-1][1].endswith(
        "reconcile"
    )
    assert json.loads(run_main(capsys, "reconcile", str(export), *flags, "--json")[1]) == report
    api.answers[("POST", "/licenses/L1/reconcile")] = (200, csv_report)
    code, out, _ = run_main(capsys, "reconcile", str(export), *flags, "--format", "csv")
    assert (code, out) == (0, csv_report + "\n") and api.seen[-1][1].endswith("reconcile?format=csv")


def test_settings_and_import_summaries_as_json(capsys, tmp_path: Path):
    code, out, _ = run_main(capsys, "settings", "--json")
    by_name = {f"{s['section']}.{s['key']}": s for s in json.loads(out)}
    assert code == 0 and by_name["kafka.broker"]["env"] == "TRACKGUARD_BROKER" and by_name["kafka.broker"]["value"]
    assert by_name["topics.submitted"] == {
        **by_name["topics.submitted"],
        "value": None,
        "default": "shipments.submitted",
    }
    code, out, _ = run_main(capsys, "settings", "--lang", "zh")
    assert code == 0 and "环境变量" in out and "[kafka] broker" in out

    export = tmp_path / "erp.csv"
    export.write_text("\n".join([ERP_HEADER, *ERP_ROWS, "义乌小店,T-1003,顺丰,,2026/11/25 08:00,李四"]))
    code, out, err = run_main(capsys, "import", str(export), "--license", "L1", "--dry-run", "--json", "--lang", "en")
    summary = json.loads(out)
    assert code == 2 and (summary["rows"], summary["good"], summary["bad"], summary["published"]) == (3, 2, 1, 0)
    assert summary["errors"] == [{"line": 4, "message": "no value for 跟踪号 (tracking_no)"}]
    assert summary["columns"]["tracking_no"] == "跟踪号" and summary["not_sent"] == ["收货人"]
    assert "1 of 3 rows cannot be imported" in err.splitlines()[-1]
    code, out, _ = run_main(capsys, "import", str(export), "--license", "L1", "--dry-run", "--json", "--skip-bad")
    summary = json.loads(out)
    assert code == 0 and summary["dry_run"] and [e["order_id"] for e in summary["first_events"]] == ["T-1001"] * 2


def test_errors_in_chinese_with_trackguard_lang_or_lang(tmp_path: Path):
    zh = {"TRACKGUARD_LANG": "zh"}
    missing = tmp_path / "nope.csv"
    assert_clean_failure(*trackguard("import", str(missing), env=zh)[:2], f"trackguard import：{missing}：文件不存在")
    assert_clean_failure(*trackguard("--lang", "zh", "import", str(missing))[:2], "文件不存在")
    assert_clean_failure(*trackguard("import", str(missing), "--lang", "en", env=zh)[:2], "no such file")
    export = tmp_path / "erp.csv"
    export.write_text("\n".join([ERP_HEADER, *ERP_ROWS]))
    code, err, _ = trackguard("import", str(export), "--license", "L1", "--dry-run", "--columns", str(tmp_path), env=zh)
    assert_clean_failure(code, err, f"trackguard import：这是一个目录，不是文件：{tmp_path}")  # an OSError
    code, err, _ = trackguard(
        "diagnose", "RR123456785CN", "--url", f"http://127.0.0.1:{free_port()}", "--token", "t", env=zh
    )
    assert_clean_failure(code, err, "无法连接", "请先启动 worker")


def test_progress_bars_are_drawn_on_a_terminal_only(tmp_path: Path):
    """The import's reading bar: on stderr when it is a terminal (a pty here), never on stdout;
    nothing of it when stderr is captured (the tests above)."""
    import pty

    export = tmp_path / "erp.csv"
    export.write_text("\n".join([ERP_HEADER, *ERP_ROWS]))
    terminal, stderr = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "streams", "import", str(export), "--license", "L1", "--dry-run"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env={**ENV, "TERM": "xterm"},
            timeout=60,
        )
    finally:
        os.close(stderr)
    drawn = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # EIO: the terminal's other end is closed, all read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(terminal)
    assert proc.returncode == 0 and proc.stdout.startswith(b"would publish 2 submissions")
    assert b"\x1b[" in drawn and b"reading erp.csv" in drawn and b"\x1b" not in proc.stdout
