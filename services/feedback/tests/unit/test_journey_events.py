"""The participant journey's ``registration.offered.v1`` on ``registration.events``: the
feedback service skips it (counted as ignored, never dead-lettered)."""

from __future__ import annotations

from types import SimpleNamespace

from feedback.subscribers import subscription
from seminarops_shared.events.registration import (
    CertificateIssued,
    CertificateRevoked,
    ParticipantErased,
    RegistrationOffered,
)
from seminarops_shared.events.topics import REGISTRATION_EVENTS


def test_offers_are_skipped() -> None:
    service = SimpleNamespace(
        on_seminar_completed=None, on_attendance_recorded=None, on_participant_erased=None
    )
    consumed = subscription(service)  # type: ignore[arg-type]
    assert REGISTRATION_EVENTS in consumed.topics
    assert RegistrationOffered not in consumed.handlers
    assert ParticipantErased in consumed.handlers


def test_certificate_events_are_skipped() -> None:
    """Certificates change nothing of an evaluation: skipped (the subscriber tests check
    that every skipped type is neither handled nor dead-lettered)."""
    service = SimpleNamespace(
        on_seminar_completed=None, on_attendance_recorded=None, on_participant_erased=None
    )
    consumed = subscription(service)  # type: ignore[arg-type]
    assert CertificateIssued not in consumed.handlers
    assert CertificateRevoked not in consumed.handlers
