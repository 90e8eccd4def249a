"""The tools an ERP team and a downstream consumer use: submit, import, tail.

Submissions are keyed by their normalized tracking number and partitioned with murmur2, so the
worker decides them in place with no re-keying hop.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import orjson
from confluent_kafka import Producer

from .core.normalize import normalize_tracking
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


class BadImportFile(ValueError):
    """A file `trackguard import` cannot read as submissions; says which line and what to fix."""


# A CSV must have these columns; without event_id, each row's id is derived from its content, so
# importing the same file twice is an event-id replay (rule 2), not a second submission.
CSV_REQUIRED = ("license_id", "store_id", "order_id", "carrier_code", "tracking_no", "shipped_at")


def read_events(path: Path) -> Iterator[dict]:
    """CSV (with a header row) or JSON Lines, chosen by the file's extension."""
    with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: Excel's UTF-8 starts with a BOM
        try:
            if path.suffix.lower() == ".csv":
                yield from _csv_events(csv.DictReader(fh), path)
            else:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            event = json.loads(line)
                        except ValueError as exc:
                            raise BadImportFile(f"{path}:{n}: not a JSON object ({exc.args[0]})") from None
                        if not isinstance(event, dict):
                            raise BadImportFile(f"{path}:{n}: each line must be one JSON object")
                        yield event
        except UnicodeDecodeError as exc:
            raise BadImportFile(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _csv_events(reader: csv.DictReader, path: Path) -> Iterator[dict]:
    columns = [c.strip() for c in reader.fieldnames or ()]
    missing = [c for c in CSV_REQUIRED if c not in columns]
    if missing:
        raise BadImportFile(
            f"{path}: the header row lacks the column(s) {', '.join(missing)}; "
            f"a CSV needs {', '.join(CSV_REQUIRED)} (event_id and source optional)"
        )
    reader.fieldnames = columns
    for row in reader:
        event = {k: v.strip() for k, v in row.items() if k and isinstance(v, str) and v.strip()}
        if not event.get("event_id"):
            digest = hashlib.sha1("|".join(event.get(c, "") for c in CSV_REQUIRED).encode()).hexdigest()
            event["event_id"] = f"import-{digest[:24]}"
        yield event


def publish_events(settings: Settings, events: list[dict], out: IO = sys.stderr) -> int:
    pub = Publisher(settings)
    total = len(events)
    for i, event in enumerate(events, 1):
        pub.send(event)
        if i % 500 == 0 or i == total:
            _progress(out, i, total)
    pub.flush()
    out.write("\n")
    return total


def _progress(out: IO, done: int, total: int, width: int = 30) -> None:
    filled = width * done // max(total, 1)
    out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    out.flush()


def tail(
    settings: Settings,
    *,
    as_json: bool,
    from_beginning: bool,
    out: IO = sys.stdout,
    topics: Iterable[str] | None = None,
    max_s: float | None = None,
) -> None:
    """Follow the verdict topics; one line per verdict."""
    c = consumer(settings, group=None, **{"auto.offset.reset": "earliest" if from_beginning else "latest"})
    c.subscribe(list(topics or settings.topics.verdicts))
    end = time.monotonic() + max_s if max_s else None
    try:
        while end is None or time.monotonic() < end:
            for msg in c.consume(500, 0.5):
                value = msg.value()
                if msg.error() or value is None:
                    continue
                out.write((value.decode() if as_json else format_verdict(orjson.loads(value))) + "\n")
            out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        c.close()


def format_verdict(v: dict) -> str:
    where = f"{v.get('license_id')}/{v.get('store_id')}/{v.get('order_id')}"
    extra = f" until {v['frozen_until']}" if v.get("frozen_until") else ""
    replay = " (replay)" if v.get("replay") else ""
    return f"{v.get('decided_at')}  {v['verdict']:<9} {v['reason']:<24} {v.get('carrier_code')} {v.get('tracking_no')}  {where}{replay}{extra}"
