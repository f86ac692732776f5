"""One valid instance of any event model, made from its JSON schema: the required
fields only, each with the plainest value its schema allows (the first enum member, the
minimum, one list item). For tests that need "an event of each type", not a particular
one; deterministic, so a failure repeats."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from seminarops_shared.events import REGISTRY, Event, envelope_for

SAMPLE_TIME = "2026-03-02T10:00:00Z"
_TIME = datetime(2026, 3, 2, 10, tzinfo=UTC)
# Fields whose schema pattern a name-derived string would not meet.
_PATTERNED = {"country": "BE"}
_SCALARS: dict[str, Any] = {"number": 1.0, "boolean": True}


def sample_event(model: type[Event]) -> Event:
    """A valid ``model`` (raises if the schema walk cannot make one: extend it then)."""
    schema = model.model_json_schema()
    return model.model_validate(_value(schema, schema.get("$defs", {}), model.__name__))


def _value(schema: dict[str, Any], defs: dict[str, Any], name: str) -> Any:
    if "$ref" in schema:
        return _value(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, name)
    if "anyOf" in schema:
        present = next(s for s in schema["anyOf"] if s.get("type") != "null")
        return _value(present, defs, name)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    return _of_type(schema, defs, name)


def _of_type(schema: dict[str, Any], defs: dict[str, Any], name: str) -> Any:
    kind = schema.get("type")
    if kind == "string":
        return _string(schema, name)
    if kind == "integer":
        return max(schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1)
    if kind == "array":
        return [_value(schema.get("items", {}), defs, name)] * max(1, schema.get("minItems", 1))
    if kind == "object":
        required = set(schema.get("required", ()))
        properties = schema.get("properties", {})
        return {n: _value(s, defs, n) for n, s in properties.items() if n in required}
    if kind in _SCALARS:
        return _SCALARS[kind]
    raise ValueError(f"no sample for {name}: {schema}")


def _string(schema: dict[str, Any], name: str) -> str:
    if schema.get("format") == "date-time":
        return SAMPLE_TIME
    if schema.get("format") == "email":
        return "someone@example.org"
    return _PATTERNED.get(name, f"{name.replace('_', '-')}-1")


def poison_records(topic: str, *, source: str) -> dict[str, bytes]:
    """Records no consumer of ``topic`` can apply, by the reason kind the pipeline gives
    them (``x-dlq-reason-kind``); ``source``: one the topic accepts."""
    model = next(m for m in REGISTRY.models().values() if m.topic == topic)
    good = json.loads(envelope_for(sample_event(model), source=source, time=_TIME).to_json_bytes())
    return {
        "invalid_json": b"{not json",
        "invalid_envelope": json.dumps({**good, "specversion": "0.3"}).encode(),
        "unknown_type": json.dumps({**good, "type": "seminar.teleported.v1"}).encode(),
        "invalid_data": json.dumps({**good, "data": {}}).encode(),
        "forbidden_source": json.dumps({**good, "source": "/services/intruder"}).encode(),
    }
