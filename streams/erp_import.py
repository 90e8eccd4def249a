"""Reading what ERPs (店小秘, 马帮, ...) and Excel export, for `trackguard import`.

Pure where it can be: bytes in, submissions and row errors out. No file or network I/O here (the
CLI reads the file, `streams.clients` publishes), no clock: every time comes from the file.

- Text: UTF-8 with or without a BOM, else GB18030 (a superset of GBK and GB2312, what Chinese
  Excel and ERPs write), or the encoding the caller names; a UTF-16 file (Excel's "Unicode text")
  is recognised by its BOM. CSV delimited by ',', tab or ';' (whichever the first lines hold most).
- `.xlsx`: the first worksheet, with openpyxl in read-only mode.
- Headers through a `ColumnMap` (config/import_columns.toml, extendable): 运单号 -> tracking_no, ...
  Columns that map to no field are not sent (ERP exports carry buyers' names and addresses).
- Ship times without an offset are local times in the given zone; times with one are kept.
- Every row is checked before anything is sent: a missing value, a time that is no time, a number
  Excel has rounded, a licence id of the wrong format. Each problem names the file's line (the
  sheet's row for .xlsx).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

from .core.events import SOURCES, license_id_problem
from .core.normalize import parse_rfc3339_ms

FIELDS = ("event_id", "license_id", "store_id", "order_id", "carrier_code", "tracking_no", "shipped_at", "source")
# A row must give these; without event_id, each row's id is derived from its content, so importing
# the same file twice is an event-id replay (rule 2), not a second submission.
REQUIRED = ("license_id", "store_id", "order_id", "carrier_code", "tracking_no", "shipped_at")
HEADER_SEARCH_ROWS = 10  # a title row or two above the header ("订单导出 2026-11-25") is skipped


class BadImportFile(ValueError):
    """A file `trackguard import` cannot read as submissions; says which line and what to fix."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line

    def at(self, name: object) -> BadImportFile:
        """The same problem, said with the file's name (and line): `shipments.csv:3: ...`."""
        return BadImportFile(f"{name}:{self.line}: {self}" if self.line else f"{name}: {self}")


class BadColumnMap(ValueError):
    """A column mapping (TOML) that cannot be used; says which key and why."""


def header_key(text: str) -> str:
    """How headers are compared: NFKC, case-folded, without spaces, '_', '-', '*', BOM and a
    trailing colon ("*运单号：" and "运单号" are one header; "Tracking_No" is "tracking no")."""
    text = unicodedata.normalize("NFKC", text).replace("\ufeff", "")
    return re.sub(r"[\s_\-*]+", "", text).rstrip(":").casefold()


class ColumnMap:
    """field -> header spellings in order of preference; each field's own name always matches."""

    def __init__(self, spellings: Mapping[str, Sequence[str]]) -> None:
        self._order: dict[str, tuple[str, ...]] = {}
        own = {header_key(name): name for name in FIELDS}
        owner = dict(own)
        for name in FIELDS:
            keys: list[str] = []
            for spelling in (*spellings.get(name, ()), name):
                k = header_key(spelling)
                if not k:
                    raise BadColumnMap(f"columns.{name}: an empty header spelling")
                if own.get(k, name) != name:
                    raise BadColumnMap(f"columns.{name}: {spelling!r} is the name of the field {own[k]}")
                if owner.get(k, name) != name:
                    raise BadColumnMap(f"columns.{name}: header {spelling!r} already maps to {owner[k]}")
                owner[k] = name
                if k not in keys:
                    keys.append(k)
            self._order[name] = tuple(keys)
        self._field_of = owner

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "column mapping") -> ColumnMap:
        """From what tomllib gives for a mapping file: {"columns": {field: [spelling, ...]}}."""
        try:
            return cls(_spellings(data, where))
        except BadColumnMap as exc:
            raise BadColumnMap(exc.args[0] if exc.args[0].startswith(where) else f"{where}: {exc}") from None

    def extended(self, data: Mapping[str, Any], where: str = "column mapping") -> ColumnMap:
        """This map with the spellings of another mapping file first; a header the other file names
        for a field is taken from whichever field here had it."""
        extra = _spellings(data, where)
        taken = {header_key(s) for spellings in extra.values() for s in spellings}
        merged = {name: [*extra.get(name, ()), *(k for k in self._order[name] if k not in taken)] for name in FIELDS}
        try:
            return ColumnMap(merged)  # a field's own name given to another field is refused here
        except BadColumnMap as exc:
            raise BadColumnMap(f"{where}: {exc}") from None

    def field_of(self, header: str) -> str | None:
        return self._field_of.get(header_key(header))

    def resolve(self, headers: Sequence[str]) -> dict[str, int]:
        """field -> index of the column to read it from, the most preferred spelling winning."""
        present = {header_key(h): i for i, h in reversed(list(enumerate(headers))) if header_key(h)}
        chosen: dict[str, int] = {}
        for name, keys in self._order.items():
            for k in keys:
                if k in present:
                    chosen[name] = present[k]
                    break
        return chosen


def load_column_map(configured: Path | None, extra: Path | None = None) -> ColumnMap:
    """The mapping `[import] columns` names (the shipped config/import_columns.toml when a
    settings file elsewhere keeps the default name), extended by `extra` (--columns). Raises
    BadColumnMap with the file's name for a missing file, bad TOML or a bad mapping."""
    import tomllib

    def mapping(file: Path, what: str) -> dict:
        try:
            with open(file, "rb") as fh:
                return tomllib.load(fh)
        except FileNotFoundError:
            raise BadColumnMap(f"{what} {file} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise BadColumnMap(f"{what} {file} is not TOML: {exc}") from None

    columns = ColumnMap({})
    if configured is not None:
        shipped = Path(__file__).resolve().parent.parent / "config" / "import_columns.toml"
        if not configured.exists() and configured.name == shipped.name:  # a settings file of its own, default key
            configured = shipped
        data = mapping(configured, "the column mapping ([import] columns)")
        columns = ColumnMap.from_mapping(data, str(configured))
    if extra is not None:
        columns = columns.extended(mapping(extra, "--columns"), str(extra))
    return columns


def _spellings(data: Mapping[str, Any], where: str) -> dict[str, list[str]]:
    if set(data) - {"columns"}:
        raise BadColumnMap(f"{where}: unknown section(s) {sorted(set(data) - {'columns'})}; only [columns]")
    table = data.get("columns", {})
    if not isinstance(table, dict):
        raise BadColumnMap(f"{where}: [columns] must be a table")
    for name, spellings in table.items():
        if name not in FIELDS:
            raise BadColumnMap(f"{where}: unknown field {name!r} in [columns]; fields: {', '.join(FIELDS)}")
        if not isinstance(spellings, list) or not all(isinstance(s, str) for s in spellings):
            raise BadColumnMap(f"{where}: columns.{name} must be a list of header spellings (strings)")
    return {name: list(spellings) for name, spellings in table.items()}


# --- text -------------------------------------------------------------------------------------


def decode_text(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """(text, encoding used). Named encoding, else UTF-8 (BOM or not), else GB18030."""
    if encoding:
        try:
            return data.decode(encoding), codecs.lookup(encoding).name
        except UnicodeDecodeError as exc:
            raise BadImportFile(f"not {encoding} text ({exc.reason} at byte {exc.start})") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise BadImportFile(f"not UTF-16 text despite its BOM ({exc.reason} at byte {exc.start})") from None
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as utf8:
        try:
            return data.decode("gb18030"), "gb18030"
        except UnicodeDecodeError:
            raise BadImportFile(
                f"neither UTF-8 nor GB18030 text ({utf8.reason} at byte {utf8.start}); "
                "name its encoding with --encoding (e.g. big5, shift_jis, latin-1)"
            ) from None


def csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number where the row starts, cells) of each non-empty row."""
    start = "\n".join(text.split("\n", HEADER_SEARCH_ROWS + 1)[: HEADER_SEARCH_ROWS + 1])
    delimiter = max((",", "\t", ";"), key=start.count)  # ',' unless the first lines say otherwise
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise BadImportFile(f"not CSV ({exc})", line) from None
        if any(cell.strip() for cell in row):
            yield line, row


def xlsx_rows(data: bytes) -> Iterator[tuple[int, list[Any]]]:
    """(row number in the sheet, cell values) of each non-empty row of the first worksheet."""
    import zipfile

    from openpyxl import load_workbook  # type: ignore[import-untyped]  # no stubs shipped

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise BadImportFile(f"not an .xlsx workbook ({exc})") from None
    try:
        sheet = book.worksheets[0]
        sheet.reset_dimensions()  # some writers record wrong ones; read what is there
        for number, values in enumerate(sheet.iter_rows(min_row=1, values_only=True), 1):
            cells = list(values)
            if any(v is not None and str(v).strip() for v in cells):
                yield number, cells
    finally:
        book.close()


# --- rows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    line: int  # the file's line (CSV, JSON Lines) or the sheet's row (.xlsx)
    message: str


@dataclass
class ImportResult:
    events: list[dict[str, str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the line of each event, in step with `events`
    errors: list[RowError] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # field -> the header it was read from
    ignored: list[str] = field(default_factory=list)  # headers that map to no field (not sent)
    encoding: str | None = None
    header_line: int | None = None

    @property
    def rows(self) -> int:
        return len(self.events) + len(self.errors)


@dataclass(frozen=True)
class RowContext:
    zone: tzinfo
    license_id: str | None = None  # --license: for files without a licence column (or empty cells)
    license_id_format: str = "any"


def read_rows(rows: Iterable[tuple[int, Sequence[Any]]], columns: ColumnMap, ctx: RowContext) -> ImportResult:
    """Rows (line, cells) with a header row among the first ones -> submissions and row errors.

    The header is the first of the first HEADER_SEARCH_ROWS rows in which three or more cells name
    a field (rows above it are titles), else the first row. A header that lacks a required column
    is a BadImportFile: every row would fail.
    """
    result = ImportResult()
    it = iter(rows)
    leading: list[tuple[int, Sequence[Any]]] = []
    header_at = 0
    for line, cells in it:
        leading.append((line, cells))
        if sum(1 for c in cells if isinstance(c, str) and columns.field_of(c)) >= 3:
            header_at = len(leading) - 1
            break
        if len(leading) >= HEADER_SEARCH_ROWS:
            break
    if not leading:
        raise BadImportFile("the file is empty: no header row")
    result.header_line, header = leading[header_at][0], [_text(c) for c in leading[header_at][1]]
    chosen = columns.resolve(header)
    needed = [f for f in REQUIRED if f not in chosen and not (f == "license_id" and ctx.license_id)]
    if needed:
        raise BadImportFile(
            f"the header row lacks the column(s) {', '.join(needed)}; "
            f"a file needs {', '.join(REQUIRED)} (event_id and source optional), under these names or a "
            f"header config/import_columns.toml maps to them (found: {', '.join(h for h in header if h) or 'nothing'})",
            result.header_line,
        )
    result.columns = {name: header[i] for name, i in chosen.items()}
    used = set(chosen.values())
    result.ignored = [h for i, h in enumerate(header) if h and i not in used]
    for line, cells in [*leading[header_at + 1 :], *it]:
        event = _event(cells, chosen, header, ctx)
        if isinstance(event, str):
            result.errors.append(RowError(line, event))
        else:
            result.events.append(event)
            result.lines.append(line)
    return result


def _event(cells: Sequence[Any], chosen: dict[str, int], header: list[str], ctx: RowContext) -> dict[str, str] | str:
    """One row -> a submission, or what is wrong with it (naming the column as the file does)."""
    raw = {name: (cells[i] if i < len(cells) else None) for name, i in chosen.items()}
    event: dict[str, str] = {}
    problems: list[str] = []

    def named(name: str) -> str:
        shown = header[chosen[name]] if name in chosen else name
        return shown if header_key(shown) == header_key(name) else f"{shown} ({name})"

    for name, value in raw.items():
        if name == "shipped_at":
            continue
        text = _cell_text(value)
        if isinstance(text, _Rounded):
            problems.append(f"{named(name)} {text.shown} is a number Excel has rounded; format the column as text")
        elif text:
            event[name] = text
    if ctx.license_id:
        given = event.get("license_id")
        if given and given != ctx.license_id:
            problems.append(f"{named('license_id')} {given!r} is not the --license {ctx.license_id!r}")
        event["license_id"] = ctx.license_id
    number = event.get("tracking_no", "")
    if _SCIENTIFIC.fullmatch(number):
        problems.append(
            f"{named('tracking_no')} {number!r} is Excel's scientific notation: the number was rounded; "
            "format the column as text and export again"
        )
    shipped = raw.get("shipped_at")
    if shipped is not None and _cell_text(shipped) != "":
        when = parse_ship_time(shipped, ctx.zone)
        if when is None:
            problems.append(
                f"{named('shipped_at')} {_shown(shipped)} is not a date-time "
                "(e.g. 2026-11-25 08:00:00, 2026/11/25 8:00 or RFC 3339 with an offset)"
            )
        else:
            event["shipped_at"] = when
    missing = [named(f) for f in REQUIRED if not event.get(f) and not any(p.startswith(named(f)) for p in problems)]
    if missing:
        problems.insert(0, f"no value for {', '.join(missing)}")
    if event.get("source") and event["source"] not in SOURCES:
        problems.append(f"{named('source')} {event['source']!r} is not one of {', '.join(sorted(SOURCES))}")
    if event.get("license_id"):
        bad = license_id_problem(event["license_id"], ctx.license_id_format)
        if bad is not None:
            problems.append(f"{bad.error} ([policy] license_id_format = {ctx.license_id_format!r})")
    if problems:
        return "; ".join(problems)
    if not event.get("event_id"):
        event["event_id"] = content_event_id(event)
    return event


def content_event_id(event: Mapping[str, Any], prefix: str = "import") -> str:
    """An id derived from the submission's content: the same row imported (or, with prefix "api",
    posted to /shipments) again is a replay."""
    # Over every required field, event_id included (it is empty here): ids imported before stay the same.
    digest = hashlib.sha1("|".join(str(event.get(c) or "") for c in REQUIRED).encode()).hexdigest()
    return f"{prefix}-{digest[:24]}"


_SCIENTIFIC = re.compile(r"[0-9](?:\.[0-9]+)?E\+[0-9]+", re.IGNORECASE)  # how Excel shows 12345678901234567890
_EXACT_FLOAT = 2**53  # integers beyond this are not exact in a float; Excel keeps 15 digits anyway


@dataclass(frozen=True)
class _Rounded:
    shown: str


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _shown(value: Any) -> str:
    return repr(value.isoformat(sep=" ")) if isinstance(value, datetime) else repr(_text(value))


def _cell_text(value: Any) -> str | _Rounded:
    """A cell as text. Excel gives numbers for numeric-looking ids: 1001.0 is "1001", but a float
    that is no exact integer (1.23456789012346E+19) has lost digits and cannot be sent."""
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return _Rounded(repr(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return _text(value)


_LOCAL_TIME = re.compile(
    r"(?P<y>[0-9]{4})\s*[-/.年]\s*(?P<m>[0-9]{1,2})\s*[-/.月]\s*(?P<d>[0-9]{1,2})\s*日?"
    r"(?:(?:\s*T\s*|\s+)(?P<H>[0-9]{1,2})\s*[:：时]\s*(?P<M>[0-9]{1,2})\s*分?"
    r"(?:\s*[:：]?\s*(?P<S>[0-9]{1,2})(?:[.,](?P<f>[0-9]{1,6}))?\s*秒?)?)?"
    r"\s*(?P<tz>Z|[+-][0-9]{2}:?[0-9]{2})?",
    re.IGNORECASE,
)


def parse_ship_time(value: Any, zone: tzinfo) -> str | None:
    """A ship time as an ERP or Excel writes it -> RFC 3339 with an offset, or None.

    RFC 3339 with an offset is kept as written. A time without an offset is a local time in `zone`
    (an ambiguous local time at a DST change takes the earlier instant, fold=0). A date alone
    is that day's midnight. An Excel date-time cell is local like a text without offset.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, time())
    elif isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip()
        try:
            parse_rfc3339_ms(text)
            return text  # already what a submission carries: kept as is
        except ValueError:
            pass
        match = _LOCAL_TIME.fullmatch(text)
        if match is None:
            return None
        g = match.groupdict()
        try:
            dt = datetime(
                int(g["y"]),
                int(g["m"]),
                int(g["d"]),
                int(g["H"] or 0),
                int(g["M"] or 0),
                int(g["S"] or 0),
                int((g["f"] or "0").ljust(6, "0")),
            )
        except ValueError:
            return None
        if g["tz"]:
            offset = g["tz"].upper().replace(":", "")
            if offset == "Z":
                dt = dt.replace(tzinfo=UTC)
            else:
                sign = -1 if offset[0] == "-" else 1
                hours, minutes = int(offset[1:3]), int(offset[3:5])
                if hours > 23 or minutes > 59:
                    return None
                dt = dt.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone)
    return dt.isoformat(timespec="milliseconds" if dt.microsecond else "seconds")


# --- JSON Lines -------------------------------------------------------------------------------


def jsonl_events(text: str) -> ImportResult:
    """JSON Lines: each line one submission object, sent as written (the guard judges it).

    A first line that is no JSON object means the file is not JSON Lines (BadImportFile); a later
    one is that line's error.
    """
    import json

    result = ImportResult()
    for line, raw in enumerate(text.split("\n"), 1):  # not splitlines(): JSON strings may hold U+2028
        if not raw.strip():
            continue
        try:
            event = json.loads(raw)
            problem = None if isinstance(event, dict) else "each line must be one JSON object"
        except ValueError as exc:
            problem = f"not a JSON object ({exc.args[0]})"
        if problem is not None:
            if not result.events and not result.errors:
                raise BadImportFile(problem, line)
            result.errors.append(RowError(line, problem))
        else:
            result.events.append(event)
            result.lines.append(line)
    return result
