"""The Quix Streams peer of trackguard's decision, for bench/run.py (run it in bench/.venv-quix).

It does the one rule both systems share: the first event seen for a normalized tracking number
is "accepted", every later one "duplicate"; JSON it cannot read, or without a tracking number, is
"invalid". State is Quix's own RocksDB store with its changelog topic (`apply(stateful=True)`),
one verdict per event to the output topic. With `--group-by` it re-keys by the normalized
number through a repartition topic first (`sdf.group_by`), as trackguard must when submissions
are keyed by store id.

Its own venv because quixstreams 3.28 pins confluent-kafka < 2.13 and trackguard needs >= 2.16.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson
from quixstreams import Application

# The normalization is trackguard's own pure function (stdlib only), so both sides agree on what
# "the same number" is and the comparison is about the decision, not about normalization.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from streams.core.normalize import normalize_tracking  # noqa: E402

INVALID_KEY = b"~invalid"  # group_by needs some key for unreadable events; their state is never touched


def parse(raw: bytes) -> dict:
    try:
        obj = orjson.loads(raw)
        number = obj.get("tracking_no")
        number = normalize_tracking(number) if isinstance(number, str) else ""
    except (orjson.JSONDecodeError, AttributeError):
        return {"e": None, "n": None}
    return {"e": obj.get("event_id"), "n": number or None}


def decide(event: dict, state) -> dict:
    number = event["n"]
    if number is None:
        verdict = "invalid"  # no state access: these may carry no (or a shared) key
    elif state.get("first") is None:
        state.set("first", event["e"])
        verdict = "accepted"
    else:
        verdict = "duplicate"
    return {"event_id": event["e"], "tracking_no": number, "verdict": verdict}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--broker", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--group", default="quix-peer")
    p.add_argument("--group-by", action="store_true", help="input is not keyed by the number: re-key first")
    args = p.parse_args()

    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        # A 45 s session makes a group join take ~25 s on Tansu (NOTES); 6 s brings it to ~5 s.
        consumer_extra_config={"session.timeout.ms": 6000},
        loglevel="INFO",
    )
    source = app.topic(args.input, value_deserializer="bytes", key_deserializer="bytes")
    sink = app.topic(args.output, value_serializer="json", key_serializer="bytes")

    sdf = app.dataframe(source)
    sdf = sdf.apply(parse)
    if args.group_by:
        sdf = sdf.group_by(
            lambda e: e["n"].encode() if e["n"] else INVALID_KEY,
            name="number",
            key_serializer="bytes",
            key_deserializer="bytes",
        )
    sdf = sdf.apply(decide, stateful=True)
    # Quix stamps outputs with the input's timestamp (here: days in the past); stamp the decision
    # time instead so the harness can measure first-to-last verdict as it does for trackguard.
    sdf = sdf.set_timestamp(lambda _v, _k, _ts, _h: time.time_ns() // 1_000_000)
    sdf.to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
