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
