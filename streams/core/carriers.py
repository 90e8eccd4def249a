"""Carrier book: canonical carrier codes, their aliases and tracking-number formats.

Pure: built from the mapping tomllib gives for config/carriers.toml, no I/O here.

Code matching: raw codes and aliases are compared by a *key* -- NFKC-normalized
(full-width letters from Chinese input methods become ASCII), upper-cased, with
spaces, '-' and '_' removed -- so "China Post", "china_post", "ＣＨＩＮＡＰＯＳＴ" and
"CHINAPOST" are one carrier, and Chinese names ("中国邮政") are aliases like any
other. Canonical codes must already be in key form ([A-Z0-9]+). An unknown code
is returned by canonical() in that same key form ("Royal Mail" -> "ROYALMAIL"), so
two spellings of one unknown carrier still compare equal downstream.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from .check_digits import ALGORITHMS

BAD_CHECK_DIGIT = "BAD_CHECK_DIGIT"
UNKNOWN_FORMAT = "UNKNOWN_FORMAT"

_CODE_RE = re.compile(r"[A-Z0-9]+")
_CARRIER_KEYS = {"name", "aliases", "formats"}
_FORMAT_KEYS = {"name", "pattern", "check"}


def _key(raw: str) -> str:
    if not raw.isascii():  # ASCII is NFKC-stable already
        raw = unicodedata.normalize("NFKC", raw)
    return re.sub(r"[\s\-_]+", "", raw).upper()


@dataclass(frozen=True)
class CarrierFormat:
    name: str
    pattern: re.Pattern[str]  # used with fullmatch on the normalized number
    check: str | None  # key of check_digits.ALGORITHMS, None = pattern only


@dataclass(frozen=True)
class Carrier:
    code: str
    name: str
    formats: tuple[CarrierFormat, ...]  # empty = no declared format, any number accepted


class CarrierBook:
    def __init__(self, carriers: dict[str, Carrier], aliases: dict[str, str]) -> None:
        self._carriers = dict(carriers)
        self._aliases = dict(aliases)  # key -> canonical code (codes map to themselves)
        self._canonical_cache: dict[str, str] = {}

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self._carriers)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> CarrierBook:
        """Build from {"carriers": {CODE: {name, aliases, formats: [{name, pattern, check}]}}}.

        Raises ValueError on anything that would otherwise fail silently later:
        unknown keys (a typo like "chek" would disable a check), unknown algorithm,
        bad regex, alias claimed twice.
        """
        table = data.get("carriers")
        if not isinstance(table, dict) or not table:
            raise ValueError("carriers config: missing or empty [carriers] table")
        carriers: dict[str, Carrier] = {}
        owners: dict[str, str] = {}  # key -> code claiming it
        for code, spec in table.items():
            where = f"carriers.{code}"
            if not isinstance(code, str) or not _CODE_RE.fullmatch(code):
                raise ValueError(f"{where}: code must be upper-case letters/digits only")
            if not isinstance(spec, dict):
                raise ValueError(f"{where}: must be a table")
            if unknown := set(spec) - _CARRIER_KEYS:
                raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
            name = spec.get("name", code)
            aliases = spec.get("aliases", [])
            if not isinstance(name, str) or not (
                isinstance(aliases, list) and all(isinstance(a, str) for a in aliases)
            ):
                raise ValueError(f"{where}: name must be a string and aliases a list of strings")
            for alias in (code, *aliases):
                k = _key(alias)
                if not k:
                    raise ValueError(f"{where}: empty alias")
                if owners.get(k, code) != code:
                    raise ValueError(f"{where}: alias {alias!r} already belongs to {owners[k]}")
                owners[k] = code
            carriers[code] = Carrier(code, name, _parse_formats(where, spec.get("formats", [])))
        return cls(carriers, owners)

    def canonical(self, raw_code: str) -> str:
        # Memoized: a few dozen spellings arrive millions of times. Bounded against junk codes.
        cached = self._canonical_cache.get(raw_code)
        if cached is None:
            k = _key(raw_code)
            cached = self._aliases.get(k, k)
            if len(self._canonical_cache) > 10_000:
                self._canonical_cache.clear()
            self._canonical_cache[raw_code] = cached
        return cached

    def carrier(self, code: str) -> Carrier | None:
        # Resolving aliases here too forgives callers that skip canonical(); canonical codes hit first.
        found = self._carriers.get(code)
        return found if found is not None else self._carriers.get(self.canonical(code))

    def is_known(self, code: str) -> bool:
        return self.carrier(code) is not None

    def validate(self, code: str, tracking_no: str) -> str | None:
        """None if acceptable, else BAD_CHECK_DIGIT or UNKNOWN_FORMAT.

        Any format that fits and passes (or has no check) accepts the number, so
        BAD_CHECK_DIGIT only means "fits some format, passes none".
        """
        carrier = self.carrier(code)
        if carrier is None or not carrier.formats:
            return None  # nothing declared to check against
        fitted = False
        for fmt in carrier.formats:
            if fmt.pattern.fullmatch(tracking_no):
                if fmt.check is None or ALGORITHMS[fmt.check](tracking_no):
                    return None
                fitted = True
        return BAD_CHECK_DIGIT if fitted else UNKNOWN_FORMAT


def _parse_formats(where: str, raw: object) -> tuple[CarrierFormat, ...]:
    if not isinstance(raw, list):
        raise ValueError(f"{where}.formats: must be a list of tables")
    formats: list[CarrierFormat] = []
    for i, spec in enumerate(raw):
        fwhere = f"{where}.formats[{i}]"
        if not isinstance(spec, dict):
            raise ValueError(f"{fwhere}: must be a table")
        if unknown := set(spec) - _FORMAT_KEYS:
            raise ValueError(f"{fwhere}: unknown keys {sorted(unknown)}")
        name, pattern, check = spec.get("name"), spec.get("pattern"), spec.get("check")
        if not isinstance(name, str) or not name or not isinstance(pattern, str) or not pattern:
            raise ValueError(f"{fwhere}: needs a non-empty name and pattern")
        if check is not None and check not in ALGORITHMS:
            raise ValueError(f"{fwhere} ({name}): unknown check algorithm {check!r}; known: {sorted(ALGORITHMS)}")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{fwhere} ({name}): bad regex {pattern!r}: {exc}") from exc
        formats.append(CarrierFormat(name, compiled, check))
    return tuple(formats)
