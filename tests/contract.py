"""The contract in docs/contract (JSON Schemas, AsyncAPI), as validators the tests apply to real records."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from streams.settings import Settings

CONTRACT = Path(__file__).resolve().parent.parent / "docs" / "contract"
SCHEMAS = CONTRACT / "schemas"


@cache
def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return Draft202012Validator(schema, format_checker=FormatChecker())


def schema_for_topic(settings: Settings) -> dict[str, str]:
    """Topic name -> schema name, from the AsyncAPI document's channels and the settings' topic names."""
    doc = json.loads((CONTRACT / "asyncapi.json").read_text())
    out = {}
    for channel, spec in doc["channels"].items():
        (message,) = spec["messages"].values()
        ref = doc["components"]["messages"][message["$ref"].rsplit("/", 1)[1]]["payload"]["schema"]["$ref"]
        out[getattr(settings.topics, channel)] = ref.removeprefix("schemas/").removesuffix(".schema.json")
    return out


def violations(name: str, record: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(record)'}: {e.message}" for e in validator(name).iter_errors(record)
    ]
