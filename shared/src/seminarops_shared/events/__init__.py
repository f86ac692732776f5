"""Every event of the system, registered in one place (``REGISTRY``)."""

from . import feedback, inbound, registration, seminar
from .base import REGISTRY, Event, EventRegistry, ReceivedEvent, UnknownEventType, envelope_for
from .envelope import Envelope

__all__ = [
    "REGISTRY",
    "Envelope",
    "Event",
    "EventRegistry",
    "ReceivedEvent",
    "UnknownEventType",
    "envelope_for",
    "feedback",
    "inbound",
    "registration",
    "seminar",
]
