"""The tools an ERP team and a downstream consumer use: submit, import, tail.

Submissions are keyed by their normalized tracking number and partitioned with murmur2, so the
worker decides them in place with no re-keying hop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from confluent_kafka import Producer

from .core.normalize import normalize_tracking
from .erp_import import (
    BadImportFile,
    ColumnMap,
    ImportResult,
    RowContext,
    csv_rows,
    decode_text,
    jsonl_events,
    read_rows,
    xlsx_rows,
)
from .hotpath import producer_config
from .kafka import consumer
from .settings import Settings


def submission_key(event: dict | bytes) -> bytes | None:
    """The normalized tracking number, UTF-8; None when there is none to read (the worker re-keys)."""
    if isinstance(event, bytes):
        try:
            event = orjson.loads(event)
        except orjson.JSONDecodeError:
            return None
    number = event.get("tracking_no") if isinstance(event, dict) else None
    return normalize_tracking(number).encode() if isinstance(number, str) and number.strip() else None


class DeliveryFailed(RuntimeError):
    """The broker did not take what we published (said with librdkafka's reason)."""


class Publisher:
    """An idempotent producer of submissions (librdkafka retries never duplicate a record)."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topics.submitted
        self.producer = Producer(producer_config(settings, **{"client.id": "trackguard-publisher"}))
        self.errors: list[str] = []

    def _on_delivery(self, err, _msg) -> None:
        if err is not None:
            self.errors.append(str(err))

    def send(
        self, event: dict | bytes, key: bytes | None = None, timestamp_ms: int | None = None, topic: str | None = None
    ) -> None:
        value = event if isinstance(event, bytes) else orjson.dumps(event)
        if key is None:
            key = submission_key(event)
        while True:
            try:  # timestamp 0: librdkafka stamps the current time
                self.producer.produce(
                    topic or self.topic, value, key, on_delivery=self._on_delivery, timestamp=timestamp_ms or 0
                )
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)

    def flush(self, timeout: float = 60.0) -> None:
        left = self.producer.flush(timeout)
        errors, self.errors = self.errors, []  # each flush reports its own records' failures
        if left or errors:
            raise DeliveryFailed(f"{left} records not delivered; errors: {errors[:3]}")


# Reading lives in streams.erp_import (pure: bytes in, submissions and row errors out); the file's
# bytes are read here. BadImportFile is re-exported: the CLI catches it from this module.
IMPORT_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx"}


def read_events(
    path: Path,
    *,
    columns: ColumnMap | None = None,
    context: RowContext | None = None,
    encoding: str | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> ImportResult:
    """Every row of a CSV / .xlsx ERP export or a JSON Lines file, checked before anything is sent.

    By extension: .csv/.tsv/.txt (a header row; UTF-8, else GB18030, or `encoding`), .xlsx/.xlsm
    (the first worksheet), anything else JSON Lines (UTF-8, or `encoding`), sent as written.
    File-wide problems raise BadImportFile naming the file (and line); a row's own problem is one
    of the result's `errors`. `on_rows` hears how many CSV / .xlsx rows were read so far (a
    progress bar), every PROGRESS_EVERY rows and at the end.
    """
    kind = IMPORT_SUFFIXES.get(path.suffix.lower())
    if path.suffix.lower() == ".xls":
        raise BadImportFile(f"{path}: an Excel 97-2003 workbook (.xls); save it as .xlsx or CSV")
    data = path.read_bytes()
    columns = columns or ColumnMap({})
    context = context or RowContext(ZoneInfo("Asia/Shanghai"))
    try:
        if kind == "xlsx":
            return read_rows(_counted(xlsx_rows(data), on_rows), columns, context)
        if kind == "csv":
            text, used = decode_text(data, encoding)
            result = read_rows(_counted(csv_rows(text), on_rows), columns, context)
            result.encoding = used
            return result
        try:
            text = data.decode(encoding or "utf-8-sig")
        except UnicodeDecodeError as exc:
            shown = "UTF-8" if encoding is None else encoding
            raise BadImportFile(f"not {shown} text ({exc.reason} at byte {exc.start})") from None
        return jsonl_events(text)
    except BadImportFile as exc:
        raise exc.at(path) from None


PROGRESS_EVERY = 500  # rows read or records sent between two progress callbacks


def _counted(
    rows: Iterable[tuple[int, Sequence[Any]]], on_rows: Callable[[int], None] | None
) -> Iterator[tuple[int, Sequence[Any]]]:
    if on_rows is None:
        yield from rows
        return
    count = 0
    for count, row in enumerate(rows, 1):
        if count % PROGRESS_EVERY == 0:
            on_rows(count)
        yield row
    on_rows(count)


def publish_events(settings: Settings, events: list[dict], on_sent: Callable[[int], None] | None = None) -> int:
    """Publish and wait for the broker to take every one; `on_sent` hears how many were sent so far."""
    pub = Publisher(settings)
    total = len(events)
    for i, event in enumerate(events, 1):
        pub.send(event)
        if on_sent is not None and (i % PROGRESS_EVERY == 0 or i == total):
            on_sent(i)
    pub.flush()
    return total


def tail(
    settings: Settings,
    *,
    show: Callable[[bytes], None],
    from_beginning: bool,
    topics: Iterable[str] | None = None,
    max_s: float | None = None,
) -> None:
    """Follow the verdict topics; `show` gets each verdict's JSON as it arrives (the CLI prints it
    as it is, or as a line for people: streams/render.py)."""
    c = consumer(settings, group=None, **{"auto.offset.reset": "earliest" if from_beginning else "latest"})
    c.subscribe(list(topics or settings.topics.verdicts))
    end = time.monotonic() + max_s if max_s else None
    try:
        while end is None or time.monotonic() < end:
            for msg in c.consume(500, 0.5):
                value = msg.value()
                if msg.error() or value is None:
                    continue
                show(value)
    except KeyboardInterrupt:
        pass
    finally:
        c.close()
