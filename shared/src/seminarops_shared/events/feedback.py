"""``feedback.events``: evaluation windows, invitations and submissions, keyed by seminar id.

The window of a seminar opens when the seminar service reports it completed and closes
a configurable number of days later. Optional fields were added after the first
snapshot (``kind``/``programme``/``year`` on the window events, ``anonymous``); they
keep the ``.v1`` types, and consumers must not rely on their presence.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, Field

from .base import Event, event
from .topics import FEEDBACK_EVENTS
from .vocabulary import Identifier, Kind, Programme, Rating, Year


class _FeedbackEvent(Event):
    topic: ClassVar[str] = FEEDBACK_EVENTS

    seminar_id: Identifier


@event
class EvaluationWindowOpened(_FeedbackEvent):
    """The seminar's evaluation opened with this form version (pinned for the whole
    window) and this many attendees; it closes at ``closes_at``."""

    event_type: ClassVar[str] = "evaluation.window_opened.v1"

    form_id: str
    form_version: int = Field(ge=1)
    attendee_count: int = Field(ge=0)
    closes_at: AwareDatetime
    opens_at: AwareDatetime | None = None
    kind: Kind | None = None
    programme: Programme | None = None
    year: Year | None = None
    # True: responses are stored without a link to the person who gave them.
    anonymous: bool | None = None


@event
class EvaluationInvited(_FeedbackEvent):
    """For the platform's mailer: this attendee is asked to evaluate the seminar."""

    event_type: ClassVar[str] = "evaluation.invited.v1"

    participant_id: Identifier
    closes_at: AwareDatetime


@event
class EvaluationReminderDue(_FeedbackEvent):
    """For the platform's mailer: this attendee has not answered and the window closes soon."""

    event_type: ClassVar[str] = "evaluation.reminder_due.v1"

    participant_id: Identifier
    closes_at: AwareDatetime


@event
class EvaluationSubmitted(_FeedbackEvent):
    """One response. No free text; no person when the form is anonymous."""

    event_type: ClassVar[str] = "evaluation.submitted.v1"

    evaluation_id: Identifier
    kind: Kind
    programme: Programme
    year: Year
    overall: Rating
    form_id: str
    form_version: int = Field(ge=1)
    participant_id: Identifier | None = None
    anonymous: bool | None = None


@event
class EvaluationWindowClosed(_FeedbackEvent):
    """The window closed: how many attendees there were and how many answered by then."""

    event_type: ClassVar[str] = "evaluation.window_closed.v1"

    attendee_count: int = Field(ge=0)
    response_count: int = Field(ge=0)
    closes_at: AwareDatetime | None = None
    kind: Kind | None = None
    programme: Programme | None = None
    year: Year | None = None
