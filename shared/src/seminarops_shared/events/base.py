"""Event schemas: one frozen pydantic model per ``type``, registered in one place.

Rules (CONVENTIONS.md): an event type ends in its major version; adding an optional
field keeps the version; anything else is a new version plus an upcaster from the old
one, so consumers only ever see the newest shape.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .envelope import Envelope


class Event(BaseModel):
    """Base class of every event's ``data``.

    Frozen and tolerant: fields a newer producer added are ignored, not rejected.
    Subclasses set ``event_type`` (``<aggregate>.<past_tense>.v<major>``) and ``topic``,
    and name the field that carries the record key in ``key_field``.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    topic: ClassVar[str]
    key_field: ClassVar[str] = "seminar_id"

    @property
    def key(self) -> str:
        return str(getattr(self, self.key_field))


class UnknownEventType(ValueError):
    """The envelope's ``type`` is not one this system knows."""


Upcaster = Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """An event as a consumer sees it: the validated data and its envelope."""

    envelope: Envelope
    data: Event

    @property
    def id(self) -> str:
        return self.envelope.id


class EventRegistry:
    """Maps ``type`` to its model, and old types to upcasters that lift them."""

    def __init__(self) -> None:
        self._models: dict[str, type[Event]] = {}
        self._upcasters: dict[str, Upcaster] = {}

    def register(self, model: type[Event]) -> type[Event]:
        existing = self._models.get(model.event_type)
        if existing is not None and existing is not model:
            raise ValueError(f"event type {model.event_type} registered twice")
        self._models[model.event_type] = model
        return model

    def register_upcaster(self, old_type: str, upcaster: Upcaster) -> None:
        """``upcaster(old_data) -> (new_type, new_data)``; chains are followed."""
        self._upcasters[old_type] = upcaster

    def model_for(self, event_type: str) -> type[Event]:
        try:
            return self._models[event_type]
        except KeyError:
            raise UnknownEventType(f"unknown event type {event_type!r}") from None

    def knows(self, event_type: str) -> bool:
        """A type this system decodes (its own or an older one it upcasts)."""
        return event_type in self._models or event_type in self._upcasters

    def models(self) -> dict[str, type[Event]]:
        return dict(sorted(self._models.items()))

    def decode(self, envelope: Envelope) -> ReceivedEvent:
        """Validate ``data`` against the (upcast) type's model.

        Raises ``UnknownEventType`` or ``pydantic.ValidationError``: both permanent.
        """
        event_type, data = envelope.type, envelope.data
        seen: set[str] = set()
        while event_type in self._upcasters and event_type not in seen:
            seen.add(event_type)
            event_type, data = self._upcasters[event_type](data)
        model = self.model_for(event_type)
        if event_type != envelope.type:
            envelope = envelope.model_copy(update={"type": event_type, "data": data})
        return ReceivedEvent(envelope=envelope, data=model.model_validate(data))


REGISTRY = EventRegistry()


def event(model: type[Event]) -> type[Event]:
    """Class decorator: register an event model in the one registry."""
    return REGISTRY.register(model)


def new_event_id() -> str:
    return str(uuid.uuid4())


def envelope_for(
    data: Event,
    *,
    source: str,
    time: datetime,
    event_id: str | None = None,
    traceparent: str | None = None,
) -> Envelope:
    """Wrap event data in its envelope; ``subject`` is the record key."""
    return Envelope(
        specversion="1.0",
        id=event_id or new_event_id(),
        source=source,
        type=data.event_type,
        time=time,
        subject=data.key,
        traceparent=traceparent,
        data=data.model_dump(mode="json"),
    )


__all__ = [
    "REGISTRY",
    "Event",
    "EventRegistry",
    "ReceivedEvent",
    "UnknownEventType",
    "ValidationError",
    "envelope_for",
    "event",
    "new_event_id",
]
