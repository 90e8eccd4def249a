"""Simplified Chinese and English messages, shared by the web console and the CLI.

The catalogue is JSON in this package, one file per audience: `reasons.json` (every verdict
reason, command error, check status and alert: what it means and what to do next; the console
and the CLI show the same words), `console.json` (the console's own labels) and `cli.json` (the
CLI's). The console fetches the files from the worker (`/console/i18n/<name>.json`); Python reads
them here. Each entry is `{"en": ..., "zh": ...}` with `{name}` placeholders.

Reasons with a field (`MISSING_FIELD:carrier_code`, `PRODUCE_FAILED:MSG_SIZE_TOO_LARGE`) are
explained by their prefix, with the field filled in as `{detail}` (see `explain`).
"""

from __future__ import annotations

import functools
import json
import locale
import os
from importlib import resources
from typing import Any

LANGUAGES = ("en", "zh")
CATALOGUES = ("reasons", "console", "cli")


@functools.cache
def catalogue(name: str) -> dict[str, dict[str, str]]:
    if name not in CATALOGUES:
        raise KeyError(name)
    text = resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("//")}


def raw(name: str) -> bytes:
    """A catalogue file as served to the browser."""
    return resources.files(__package__).joinpath(f"{name}.json").read_bytes()


def language(explicit: str | None = None) -> str:
    """`zh` or `en`: an explicit choice, else TRACKGUARD_LANG, else the locale (LC_ALL, LANG)."""
    for choice in (explicit, os.environ.get("TRACKGUARD_LANG"), os.environ.get("LC_ALL"), os.environ.get("LANG")):
        if choice:
            return "zh" if choice.lower().startswith("zh") else "en"
    loc = locale.getlocale()[0] or ""
    return "zh" if loc.lower().startswith("zh") else "en"


def t(key: str, lang: str | None = None, /, **values: Any) -> str:
    """The message `key` in `lang` (default: `language()`), looked up in every catalogue."""
    lang = lang or language()
    for name in CATALOGUES:
        entry = catalogue(name).get(key)
        if entry is not None:
            return entry.get(lang, entry["en"]).format(**values)
    raise KeyError(key)


def explain(reason: str, lang: str | None = None) -> tuple[str, str] | None:
    """What a reason code means and what to do next, or None for a code the catalogue lacks.
    `CODE:detail` is explained by the entry `CODE:` (which names the detail), else by `CODE`."""
    base, colon, detail = reason.partition(":")
    reasons = catalogue("reasons")
    entry = reasons.get(f"{base}:") if colon else None
    entry = entry or reasons.get(base)
    if entry is None:
        return None
    lang = lang or language()
    return entry[lang].format(detail=detail), entry[f"next_{lang}"].format(detail=detail)
