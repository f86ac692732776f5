"""Helpers for the registration service's tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from seminarops_shared.events.inbound import Participant, RegistrationRequested
from seminarops_shared.events.seminar import SeminarScheduled, SessionTimes
from seminarops_shared.events.vocabulary import Kind, Programme

SEMINAR_SOURCE = "/services/seminar"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def participant(participant_id: str) -> Participant:
    return Participant(
        id=participant_id,
        display_name=f"Teacher {participant_id}",
        email=f"{participant_id}@school.example",
        country="fr",
        school_id="school-1",
    )


def requested(seminar_id: str, participant_id: str) -> RegistrationRequested:
    return RegistrationRequested(seminar_id=seminar_id, participant=participant(participant_id))


def http_body(seminar_id: str, participant_id: str) -> dict[str, object]:
    return {
        "seminar_id": seminar_id,
        "participant": participant(participant_id).model_dump(mode="json"),
    }


def scheduled(seminar_id: str, capacity: int) -> SeminarScheduled:
    starts = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)
    return SeminarScheduled(
        seminar_id=seminar_id,
        title="Coding in the classroom",
        kind=Kind.ONLINE_SEMINAR,
        programme=Programme.ETWINNING,
        language="en",
        timezone="Europe/Brussels",
        sessions=[SessionTimes(starts_at=starts, ends_at=starts.replace(hour=16))],
        capacity=capacity,
        year=2026,
    )
