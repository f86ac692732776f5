"""``registration.requests``: the inbound topic other platform systems publish to."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from .base import Event, event
from .topics import REGISTRATION_REQUESTS
from .vocabulary import CountryCode, Identifier


class Participant(BaseModel):
    """A teacher as other platform systems describe them. Name and e-mail are personal
    data: they stay inside the registration service and never go out in an event."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: Identifier
    display_name: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    country: CountryCode | None = None
    school_id: Identifier | None = None


@event
class RegistrationRequested(Event):
    event_type: ClassVar[str] = "registration.requested.v1"
    topic: ClassVar[str] = REGISTRATION_REQUESTS

    seminar_id: Identifier
    participant: Participant


@event
class RegistrationCancellationRequested(Event):
    event_type: ClassVar[str] = "registration.cancellation_requested.v1"
    topic: ClassVar[str] = REGISTRATION_REQUESTS

    seminar_id: Identifier
    participant_id: Identifier


@event
class ParticipantErasureRequested(Event):
    event_type: ClassVar[str] = "participant.erasure_requested.v1"
    topic: ClassVar[str] = REGISTRATION_REQUESTS
    key_field: ClassVar[str] = "participant_id"

    participant_id: Identifier
