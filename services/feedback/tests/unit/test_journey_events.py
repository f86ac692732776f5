"""The participant journey's ``registration.offered.v1`` on ``registration.events``: the
feedback service skips it (counted as ignored, never dead-lettered)."""

from __future__ import annotations

from types import SimpleNamespace

from feedback.subscribers import subscription
from seminarops_shared.events.registration import ParticipantErased, RegistrationOffered
from seminarops_shared.events.topics import REGISTRATION_EVENTS


def test_offers_are_skipped() -> None:
    service = SimpleNamespace(
        on_seminar_completed=None, on_attendance_recorded=None, on_participant_erased=None
    )
    consumed = subscription(service)  # type: ignore[arg-type]
    assert REGISTRATION_EVENTS in consumed.topics
    assert RegistrationOffered not in consumed.handlers
    assert ParticipantErased in consumed.handlers
