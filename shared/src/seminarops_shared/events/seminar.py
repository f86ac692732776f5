"""``seminar.events``: what the seminar service tells the others, keyed by seminar id.

Datetimes are aware and sent in UTC; ``timezone`` (an IANA name) says how the seminar
reads locally, and ``year`` is the year its first session starts in that zone.
Participant ids of people who asked to be forgotten appear as pseudonyms
(``erased-<24 hex>``, see ``seminarops_shared.privacy``) in events emitted after
their erasure.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .base import Event, event
from .topics import SEMINAR_EVENTS
from .vocabulary import CountryCode, Identifier, Kind, Programme, Promotion, Year


class SessionTimes(BaseModel):
    """One live session of a seminar (an online seminar has one, a learning event several)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    starts_at: AwareDatetime
    ends_at: AwareDatetime


class _SeminarEvent(Event):
    topic: ClassVar[str] = SEMINAR_EVENTS

    seminar_id: Identifier


@event
class SeminarScheduled(_SeminarEvent):
    """A seminar exists. ``year`` is the year its first session starts, in its own time zone."""

    event_type: ClassVar[str] = "seminar.scheduled.v1"

    title: str
    kind: Kind
    programme: Programme
    language: str
    theme: str | None = None
    timezone: str
    sessions: list[SessionTimes] = Field(min_length=1)
    capacity: int = Field(gt=0)
    year: Year
    host_school_id: Identifier | None = None
    open_to_other_schools: bool = True
    # The moderator's platform id (never a name: personal data stays in registration).
    moderator: Identifier | None = None
    # The participant journey (CONTRACT.md): how a freed seat is given, how long an
    # offer stands, and who may register (None: everyone).
    promotion: Promotion = Promotion.AUTOMATIC
    offer_hours: int | None = Field(default=None, ge=1, le=168)
    eligible_countries: list[CountryCode] | None = Field(default=None, min_length=1, max_length=250)


@event
class SeminarRescheduled(_SeminarEvent):
    """Times or capacity changed; both the old and the new values are carried."""

    event_type: ClassVar[str] = "seminar.rescheduled.v1"

    old_sessions: list[SessionTimes]
    new_sessions: list[SessionTimes]
    old_capacity: int
    new_capacity: int
    year: Year
    reason: str | None = None


@event
class SeminarWentLive(_SeminarEvent):
    """The seminar is running (its first session started); attendance can be recorded."""

    event_type: ClassVar[str] = "seminar.went_live.v1"


@event
class SeminarCancelled(_SeminarEvent):
    """The seminar will not take place (or stops); terminal. Its reminders are withdrawn."""

    event_type: ClassVar[str] = "seminar.cancelled.v1"

    reason: str | None = None


@event
class AttendanceRecorded(_SeminarEvent):
    """Confirmed registrants newly recorded as having attended (never one twice).

    A large batch is split into several events of at most 1000 ids each."""

    event_type: ClassVar[str] = "attendance.recorded.v1"

    kind: Kind
    programme: Programme
    year: Year
    participant_ids: list[Identifier]


@event
class SeminarCompleted(_SeminarEvent):
    """The seminar is over: who attended (every attendee, once; at most 20,000), and what
    reports group it by. Emitted once per seminar; completed is terminal."""

    event_type: ClassVar[str] = "seminar.completed.v1"

    kind: Kind
    programme: Programme
    year: Year
    attendee_ids: list[Identifier]
    host_school_id: Identifier | None = None
    open_to_other_schools: bool = True


@event
class SeminarReminderDue(_SeminarEvent):
    """For the platform's notification system: a session starts in ``offset_minutes``."""

    event_type: ClassVar[str] = "seminar.reminder_due.v1"

    session_index: int = Field(ge=0)
    session_starts_at: AwareDatetime
    offset_minutes: int = Field(gt=0)
    session_ends_at: AwareDatetime | None = None
    title: str | None = None
    timezone: str | None = None
