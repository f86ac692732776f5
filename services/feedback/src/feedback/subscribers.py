"""Kafka and timer entry points: which event type or job kind goes to which handler.

Consumed (consumer group ``feedback``):
- ``seminar.events``: ``seminar.completed.v1`` (opens the window),
  ``attendance.recorded.v1`` (more attendees);
- ``registration.events``: ``participant.erased.v1`` (pseudonymise the person).
Other types on these topics are skipped. Durable timers: ``feedback.remind`` and
``feedback.close``, one of each per seminar.
"""

from __future__ import annotations

from seminarops_shared.events.registration import ParticipantErased
from seminarops_shared.events.seminar import AttendanceRecorded, SeminarCompleted
from seminarops_shared.events.topics import REGISTRATION_EVENTS, SEMINAR_EVENTS
from seminarops_shared.service import Runtime
from seminarops_shared.subscriptions import Subscription

from .handlers import CLOSE_JOB, REMIND_JOB, FeedbackService


def subscription(service: FeedbackService) -> Subscription:
    """What the ``feedback`` group consumes, one handler per event type."""
    return Subscription(
        topics=(SEMINAR_EVENTS, REGISTRATION_EVENTS),
        handlers={
            SeminarCompleted: service.on_seminar_completed,
            AttendanceRecorded: service.on_attendance_recorded,
            ParticipantErased: service.on_participant_erased,
        },
    )


def register(runtime: Runtime, service: FeedbackService) -> None:
    runtime.consume(subscription(service))
    runtime.scheduler.on(REMIND_JOB, service.on_reminder_due)
    runtime.scheduler.on(CLOSE_JOB, service.on_close_due)
