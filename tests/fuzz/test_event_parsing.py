"""Property tests of what a consumer does with a record: whatever arrives (random bytes,
random JSON, envelopes with random fields, valid records with corrupted bytes), decoding
either yields a valid event for that topic or raises one of the documented rejections,
which the pipeline dead-letters. Nothing else may escape: an unexpected exception would
stop a consumer's partition instead of dead-lettering the record.

And every registered event type, generated from its own JSON schema, survives the trip
model -> envelope -> bytes -> ``decode_record`` -> model unchanged.
"""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from seminarops_shared.events import REGISTRY, Envelope, Event, UnknownEventType, envelope_for
from seminarops_shared.events.topics import EVENT_TOPICS, REGISTRATION_REQUESTS
from seminarops_shared.kafka import MAX_RECORD_BYTES, Rejected, decode_record
from seminarops_shared.service import default_allowed_sources, service_source
from seminarops_shared.settings import KafkaSettings

# The reasons the pipeline documents (docs/architecture.md, "Dead letters").
DOCUMENTED_REJECTIONS = frozenset(
    {
        "empty",
        "too_large",
        "invalid_json",
        "invalid_envelope",
        "forbidden_source",
        "unknown_type",
        "invalid_data",
        "wrong_topic",
    }
)
KAFKA = KafkaSettings(topic_prefix="")
ALLOWED_SOURCES = default_allowed_sources()
CONSUMED_TOPICS = sorted({*EVENT_TOPICS, REGISTRATION_REQUESTS})
EVENT_TYPES = sorted(REGISTRY.models())
TRACEPARENT = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def owner_source(topic: str) -> str:
    if topic == REGISTRATION_REQUESTS:
        return "/platform/teacher-portal"
    return service_source(topic.split(".", maxsplit=1)[0])


def record(value: bytes | None, topic: str) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value or b""),
        headers=(),
    )


def documented(rejected: Rejected) -> str:
    assert rejected.reason_kind in DOCUMENTED_REJECTIONS, rejected.reason_kind
    assert rejected.reason, "a dead letter needs its reason"
    return rejected.reason_kind


def decode(value: bytes | None, topic: str) -> str:
    """``"accepted"`` or the documented reason; anything else propagates and fails."""
    try:
        received, logical = decode_record(
            record(value, topic), kafka=KAFKA, allowed_sources=ALLOWED_SOURCES
        )
    except Rejected as rejected:
        return documented(rejected)
    # What is accepted is a known type, on its own topic, from a source allowed there.
    assert logical == topic
    assert received.data.topic == topic
    assert type(received.data) is REGISTRY.model_for(received.envelope.type)
    assert any(received.envelope.source.startswith(p) for p in ALLOWED_SOURCES[topic])
    return "accepted"


# ---- strategies ------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5)), timezone(timedelta(0))]
)
# st.datetimes takes naive bounds and attaches the zones itself.
EARLIEST, LATEST = datetime(1990, 1, 1), datetime(2200, 1, 1)  # noqa: DTZ001
aware_datetimes = st.datetimes(min_value=EARLIEST, max_value=LATEST, timezones=zones)
timestamps = aware_datetimes.map(lambda d: d.isoformat()) | st.text(max_size=30) | json_scalars


def from_schema(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid against the subset of JSON Schema that pydantic writes for events."""
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, defs) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -(2**40) - 1) + 1)
        high = schema.get("maximum", 2**40)
        return st.integers(min_value=low, max_value=high)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "string":
        return _strings(schema)
    if kind == "array":
        items = from_schema(schema.get("items", {}), defs)
        return st.lists(
            items, min_size=schema.get("minItems", 0), max_size=max(schema.get("minItems", 0), 4)
        )
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {name: from_schema(s, defs) for name, s in properties.items() if name in required},
            optional={
                name: from_schema(s, defs) for name, s in properties.items() if name not in required
            },
        )
    return json_values


def _strings(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength", 60)
    if schema.get("format") == "date-time":
        return aware_datetimes.map(lambda d: d.isoformat())
    if schema.get("format") == "email":
        return st.emails()
    if "pattern" in schema:
        pattern = re.compile(schema["pattern"])
        return st.from_regex(pattern, fullmatch=True).filter(lambda s: low <= len(s) <= high)
    return st.text(min_size=low, max_size=min(high, 60))


@st.composite
def envelopes(draw: st.DrawFn, topic: str) -> dict[str, Any]:
    """Envelope-shaped JSON objects: mostly plausible (a known type, a source allowed
    somewhere, data generated from the type's schema), each field junk now and then."""

    def field(plausible: st.SearchStrategy[Any], junk: st.SearchStrategy[Any]) -> Any:
        return draw(junk if draw(st.integers(0, 9)) == 0 else plausible)

    own_types = [t for t in EVENT_TYPES if REGISTRY.model_for(t).topic == topic]
    event_type = field(
        st.sampled_from(own_types) if draw(st.integers(0, 3)) else st.sampled_from(EVENT_TYPES),
        st.text(max_size=40),
    )
    if event_type in REGISTRY.models():
        schema = REGISTRY.model_for(event_type).model_json_schema()
        payload = from_schema(schema, schema.get("$defs", {}))
    else:
        payload = st.dictionaries(st.text(max_size=20), json_values, max_size=6)
    others = [owner_source(t) for t in CONSUMED_TOPICS] + ["/platform/x", "/services/intruder"]
    sources = st.just(owner_source(topic)) if draw(st.integers(0, 3)) else st.sampled_from(others)
    envelope = {
        "specversion": field(st.just("1.0"), json_scalars),
        "id": field(st.text(min_size=1, max_size=40), json_scalars),
        "source": field(sources, st.text(max_size=20) | json_scalars),
        "type": event_type,
        "time": field(aware_datetimes.map(lambda d: d.isoformat()), timestamps),
        "data": field(payload, json_values),
    }
    for name, value in (("subject", st.text(max_size=20)), ("traceparent", st.text(max_size=60))):
        if draw(st.booleans()):
            envelope[name] = field(value, json_values)
    if draw(st.booleans()):
        envelope[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    return envelope


# ---- properties: nothing but documented rejections -----------------------------------


@FUZZ
@given(value=st.binary(max_size=512), topic=st.sampled_from(CONSUMED_TOPICS))
def test_arbitrary_bytes_are_rejected_with_a_documented_reason(value: bytes, topic: str) -> None:
    assert decode(value, topic) in DOCUMENTED_REJECTIONS | {"accepted"}
    with contextlib.suppress(ValidationError):
        Envelope.from_json_bytes(value)


@FUZZ
@given(value=json_values, topic=st.sampled_from(CONSUMED_TOPICS))
def test_arbitrary_json_is_rejected_with_a_documented_reason(value: Any, topic: str) -> None:
    outcome = decode(json.dumps(value).encode(), topic)
    assert outcome in DOCUMENTED_REJECTIONS - {"empty", "too_large"}


@FUZZ
@given(data=st.data(), topic=st.sampled_from(CONSUMED_TOPICS))
def test_envelope_shaped_json_is_accepted_or_rejected_with_a_documented_reason(
    data: st.DataObject, topic: str
) -> None:
    envelope = data.draw(envelopes(topic))
    decode(json.dumps(envelope).encode(), topic)


@FUZZ
@given(
    event_type=st.sampled_from(EVENT_TYPES),
    payload=st.dictionaries(st.text(max_size=20), json_values, max_size=8),
)
def test_registry_decode_raises_only_unknown_type_or_validation_error(
    event_type: str, payload: dict[str, Any]
) -> None:
    envelope = Envelope(
        specversion="1.0",
        id="e-1",
        source="/platform/x",
        type=event_type,
        time=datetime(2026, 1, 1, tzinfo=UTC),
        data=payload,
    )
    try:
        received = REGISTRY.decode(envelope)
    except (UnknownEventType, ValidationError):
        return
    assert received.envelope.type == event_type


def test_the_documented_size_and_emptiness_limits() -> None:
    assert decode(None, REGISTRATION_REQUESTS) == "empty"
    assert decode(b"", REGISTRATION_REQUESTS) == "empty"
    assert decode(b" " * (MAX_RECORD_BYTES + 1), REGISTRATION_REQUESTS) == "too_large"


# ---- properties: valid events survive the trip ------------------------------------------


def _models() -> list[type[Event]]:
    return [REGISTRY.model_for(name) for name in EVENT_TYPES]


@pytest.mark.parametrize("model", _models(), ids=lambda m: m.event_type)
def test_generated_valid_events_round_trip_through_the_record_decoder(model: type[Event]) -> None:
    schema = model.model_json_schema()
    payloads = from_schema(schema, schema.get("$defs", {}))

    valid = 0

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(payload=payloads, time=aware_datetimes, traceparent=st.none() | st.just(TRACEPARENT))
    def round_trip(payload: dict[str, Any], time: datetime, traceparent: str | None) -> None:
        nonlocal valid
        try:
            event = model.model_validate(payload)
        except ValidationError:
            # A rule the JSON schema cannot express (one time after another, say).
            assume(condition=False)
            return
        valid += 1
        assert model.model_validate(event.model_dump(mode="json")) == event
        envelope = envelope_for(
            event, source=owner_source(model.topic), time=time, traceparent=traceparent
        )
        raw = envelope.to_json_bytes()
        received, logical = decode_record(
            record(raw, model.topic), kafka=KAFKA, allowed_sources=ALLOWED_SOURCES
        )
        assert logical == model.topic
        assert received.data == event
        assert received.envelope == Envelope.from_json_bytes(raw)
        assert received.envelope.time == time
        assert received.envelope.subject == event.key
        # The bytes themselves are stable: a second trip writes the same record.
        assert received.envelope.to_json_bytes() == raw

    round_trip()
    # The generator really produces valid events of this type, not only rejected ones.
    assert valid >= 20, f"only {valid} valid {model.event_type} generated"


@FUZZ
@given(
    model=st.sampled_from(_models()),
    data=st.data(),
    cut=st.integers(min_value=0, max_value=4000),
    junk=st.binary(min_size=0, max_size=8),
)
def test_corrupted_valid_records_are_rejected_with_a_documented_reason(
    model: type[Event], data: st.DataObject, cut: int, junk: bytes
) -> None:
    schema = model.model_json_schema()
    payload = data.draw(from_schema(schema, schema.get("$defs", {})))
    try:
        event = model.model_validate(payload)
    except ValidationError:
        return
    raw = envelope_for(
        event, source=owner_source(model.topic), time=datetime(2026, 1, 1, tzinfo=UTC)
    ).to_json_bytes()
    position = cut % (len(raw) + 1)
    corrupted = raw[:position] + junk + raw[position + len(junk) :]
    decode(corrupted, model.topic)
