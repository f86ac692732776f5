from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from seminarops_shared.events import (
    REGISTRY,
    Envelope,
    EventRegistry,
    UnknownEventType,
    envelope_for,
)
from seminarops_shared.events.base import Event
from seminarops_shared.events.inbound import Participant, RegistrationRequested
from seminarops_shared.events.snapshots import SNAPSHOT_DIR, current_schemas, render

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def _requested() -> RegistrationRequested:
    return RegistrationRequested(
        seminar_id="sem-1",
        participant=Participant(
            id="p-1", display_name="Ana", email="ana@example.org", country="pt"
        ),
    )


def test_envelope_round_trip_keeps_every_attribute() -> None:
    envelope = envelope_for(
        _requested(),
        source="/platform/teacher-portal",
        time=NOW,
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    )
    decoded = REGISTRY.decode(Envelope.from_json_bytes(envelope.to_json_bytes()))
    assert decoded.envelope == envelope
    assert decoded.data == _requested()
    assert envelope.subject == "sem-1"
    assert json.loads(envelope.to_json_bytes())["time"] == "2026-03-01T09:30:00Z"


def test_time_is_serialised_in_utc() -> None:
    cet = timezone(timedelta(hours=1))
    envelope = envelope_for(
        _requested(), source="/x", time=datetime(2026, 3, 1, 10, 30, tzinfo=cet)
    )
    assert json.loads(envelope.to_json_bytes())["time"] == "2026-03-01T09:30:00Z"


def test_country_is_normalised_and_validated() -> None:
    assert _requested().participant.country == "PT"
    with pytest.raises(ValidationError):
        Participant(id="p", country="Portugal")


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b'{"specversion": "0.3", "id": "x", "source": "/s", "type": "t", "time": "2026-01-01T00:00:00Z", "data": {}}',
        b'{"specversion": "1.0", "id": "", "source": "/s", "type": "t", "time": "2026-01-01T00:00:00Z", "data": {}}',
        b'{"specversion": "1.0", "id": "x", "source": "/s", "type": "t", "time": "2026-01-01T00:00:00", "data": {}}',
        b'{"specversion": "1.0", "id": "x", "source": "/s", "type": "t", "time": "2026-01-01T00:00:00Z", "data": []}',
    ],
    ids=["bad-json", "wrong-version", "empty-id", "naive-time", "data-not-object"],
)
def test_invalid_envelopes_are_refused(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        Envelope.from_json_bytes(raw)


def test_unknown_fields_are_tolerated_in_data_and_envelope() -> None:
    envelope = envelope_for(_requested(), source="/s", time=NOW)
    raw = json.loads(envelope.to_json_bytes())
    raw["data"]["added_later"] = 1
    raw["someextension"] = "x"
    decoded = REGISTRY.decode(Envelope.model_validate(raw))
    assert decoded.data == _requested()


def test_unknown_type_is_refused() -> None:
    envelope = envelope_for(_requested(), source="/s", time=NOW).model_copy(
        update={"type": "nope.v1"}
    )
    with pytest.raises(UnknownEventType):
        REGISTRY.decode(envelope)


def test_upcaster_lifts_an_old_version_to_the_new_model() -> None:
    class Renamed(Event):
        event_type = "thing.renamed.v2"
        topic = "t"
        key_field = "thing_id"
        thing_id: str
        new_name: str

    registry = EventRegistry()
    registry.register(Renamed)
    registry.register_upcaster(
        "thing.renamed.v1",
        lambda data: ("thing.renamed.v2", {"thing_id": data["id"], "new_name": data["name"]}),
    )
    old = Envelope(
        specversion="1.0",
        id="1",
        source="/s",
        type="thing.renamed.v1",
        time=NOW,
        data={"id": "a", "name": "b"},
    )
    decoded = registry.decode(old)
    assert decoded.data == Renamed(thing_id="a", new_name="b")
    assert decoded.envelope.type == "thing.renamed.v2"


def test_registering_two_models_for_one_type_fails() -> None:
    registry = EventRegistry()
    registry.register(RegistrationRequested)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(type("Other", (RegistrationRequested,), {}))


def test_every_event_type_ends_in_a_version_and_names_its_topic() -> None:
    for name, model in REGISTRY.models().items():
        assert name.rsplit(".", 1)[-1].startswith("v"), name
        assert model.topic, name


def test_schema_snapshots_match_the_models() -> None:
    """An unannounced change of an event schema fails here. Announce it by rewriting the
    snapshots (python -m seminarops_shared.events.snapshots --write) and committing."""
    current = current_schemas()
    on_disk = {p.stem: p.read_text() for p in SNAPSHOT_DIR.glob("*.json")}
    assert sorted(on_disk) == sorted(current), "event types added or removed without a snapshot"
    changed = [name for name, schema in current.items() if render(schema) != on_disk[name]]
    assert not changed, f"event schemas changed without a snapshot update: {changed}"
