"""Every CLI command fails cleanly: the real `trackguard` command, run as a user runs it.

Each mistake ends in seconds with one or two lines saying what is wrong and what to do, and exit
code 2 — never a Python traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from streams.broker import free_port

ENV = {k: v for k, v in os.environ.items() if not k.startswith("TRACKGUARD_")}


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
