"""The zh/en catalogue shared by the console and the CLI: complete in both languages, and every
reason the guard can give explained, with what to do next."""

from __future__ import annotations

import re
import string

import orjson
import pytest

from streams import i18n
from streams import settings as settings_mod
from streams.partitioning import partition_for
from streams.processor import GuardProcessor, InRecord
from streams.sample import generate

SETTINGS = settings_mod.load()
NOW = 1_796_000_000_000

# Every code the contract names (../shared/SPEC.md) and the core adds, written out here rather
# than read from the code, so that a code the core stops emitting is still checked.
CODES = [
    *("FIRST_USE", "RESERVED_NUMBER_USED", "SAME_ORDER_REPUSH", "FROZEN_AFTER_DUPLICATE", "BLACKLISTED"),
    *("RESERVED_BY_OTHER", "CARRIER_MISMATCH", "USED_BY_OTHER_LICENSE", "USED_BY_LICENSE", "TIMESTAMP_REGRESSION"),
    *("MALFORMED_JSON", "BAD_ENCODING", "NOT_AN_OBJECT", "EMPTY_MESSAGE", "MISSING_FIELD:carrier_code"),
    *("TOO_LONG:order_id", "BAD_TYPE:store_id", "BAD_VALUE:source", "BAD_CHARS:tracking_no", "BAD_TIME:shipped_at"),
    *("BAD_FORMAT:license_id", "BAD_CHECK_DIGIT", "BAD_CHECK_DIGIT:license_id", "UNKNOWN_FORMAT", "TOO_LARGE"),
    *(
        "INTERNAL_ERROR",
        "PRODUCE_FAILED:MSG_SIZE_TOO_LARGE",
        "UNKNOWN_FORMAT:tracking_no",
        "ALREADY_BOUND",
        "ALREADY_RESERVED",
        "NOT_HOLDER",
    ),
    *("NOT_RESERVED", "NOTHING_TO_APPEAL", "INVALID_COMMAND:ttl_s", "LFR_PENALTY", "SERVICE_DOWNGRADE"),
    *("NOT_SUBMITTED", "BAD_ROW", "OTHER_LICENSE", "erp_not_accepted", "accepted_not_in_erp", "differs", "erp_invalid"),
]
STATUSES = ["available", "bound", "reserved", "frozen", "blacklisted", "invalid"]


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("name", i18n.CATALOGUES)
def test_every_entry_is_in_both_languages_with_the_same_placeholders(name):
    entries = i18n.catalogue(name)
    assert entries
    for key, entry in entries.items():
        assert entry["en"].strip() and entry["zh"].strip(), key
        assert placeholders(entry["en"]) == placeholders(entry["zh"]), key
        assert re.search(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]", entry["zh"]) or entry["zh"] == entry["en"], (
            f"{key}: zh is not Chinese"
        )
        if name == "reasons":
            assert entry["next_en"].strip() and entry["next_zh"].strip(), key
            assert placeholders(entry["next_en"]) == placeholders(entry["next_zh"]), key


@pytest.mark.parametrize("code", CODES)
def test_every_code_is_explained_in_both_languages(code):
    en, zh = i18n.explain(code, "en"), i18n.explain(code, "zh")
    assert en is not None and zh is not None, code
    assert en != zh
    base, _, detail = code.partition(":")
    if detail and f"{base}:" in i18n.catalogue("reasons"):  # the field is named, in both languages
        assert detail in en[0] and detail in zh[0]


def test_every_status_of_a_check_is_explained():
    for status in STATUSES:
        assert i18n.t(f"status.{status}", "en") != i18n.t(f"status.{status}", "zh")
    assert set(STATUSES) == {k.removeprefix("state.") for k in i18n.catalogue("console") if k.startswith("state.")}


def test_every_reason_the_guard_gives_to_a_realistic_sample_is_explained():
    """The demo's sample (re-pushes, re-typed and reused numbers, broken events) through the real
    processor: each reason of its verdicts and dead letters has an entry."""
    proc, stored = GuardProcessor(SETTINGS), {}
    pending = [
        InRecord(SETTINGS.topics.submitted, i % SETTINGS.partitions, i, None, e.value, e.ts_ms)
        for i, e in enumerate(generate(1500, SETTINGS.carriers, end_ms=NOW))
    ]
    reasons: set[str] = set()
    while pending:  # forwards to the re-keying topic come back as its records, as on the broker
        result = proc.process(pending, lambda p, k: stored.get((p, k)))
        for partition, writes in result.state_writes.items():
            stored.update({(partition, k): v for k, v in writes.items()})
        reasons.update(r for _, r, _ in result.reasons)
        pending = [
            InRecord(out.topic, partition_for(out.key, SETTINGS.partitions), n, out.key, out.value, NOW)
            for n, out in enumerate(result.produce)
            if out.topic == SETTINGS.repartition_topic
        ]
        assert all(orjson.loads(out.value) for out in result.produce)
    assert len(reasons) >= 8, reasons  # the sample is meant to exercise most rules
    assert [r for r in sorted(reasons) if i18n.explain(r, "zh") is None] == []


def test_the_language_comes_from_the_choice_then_trackguard_lang_then_the_locale(monkeypatch):
    for var in ("TRACKGUARD_LANG", "LC_ALL", "LANG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert i18n.language() == "zh"
    monkeypatch.setenv("TRACKGUARD_LANG", "en")
    assert i18n.language() == "en"
    assert i18n.language("zh") == "zh"
    assert i18n.t("cli.error", "zh", command="check", error="x") == "trackguard check：x"
    with pytest.raises(KeyError):
        i18n.t("no.such.key", "en")
