"""What the registration use cases take and answer: the requests from either path
(Kafka or HTTP), the outcome a caller learns, and the one domain error they raise."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from seminarops_shared.errors import Conflict
from seminarops_shared.events.inbound import Participant

from .. import domain


class OutcomeStatus(enum.StrEnum):
    """What a caller learns about its request."""

    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    OFFERED = "offered"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    # Parked: the seminar is not known yet; decided when it becomes known.
    PENDING = "pending"
    # A parked request was withdrawn before its seminar became known.
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class RegistrationRequest:
    """One request to register, from either path. ``source`` is the requesting
    system (the envelope's ``source``, or this service's HTTP API); ``request_id`` the
    event id or an HTTP request id."""

    seminar_id: str
    participant: Participant
    source: str
    request_id: str
    requested_at: datetime
    traceparent: str | None = None

    @property
    def registration_id(self) -> str:
        return domain.registration_id(self.seminar_id, self.participant.id)


@dataclass(frozen=True, slots=True)
class CancellationRequest:
    """A ``registration.cancellation_requested.v1``: ``cancelled_at`` is its envelope's
    ``time`` (when it was published), which orders it against the requests of the same
    registration (``domain.cancellation_applies``)."""

    seminar_id: str
    participant_id: str
    event_id: str
    source: str | None
    cancelled_at: datetime
    traceparent: str | None = None

    @property
    def registration_id(self) -> str:
        return domain.registration_id(self.seminar_id, self.participant_id)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to a request: the registration, its status, and whether this request
    created it (``False``: it existed already, or is a duplicate)."""

    registration_id: str
    status: OutcomeStatus
    created: bool
    position: int | None = None
    reason: str | None = None


class RegistrationClosed(Conflict):
    """The seminar is completed: its registrations no longer change."""


def existing_outcome(doc: Mapping[str, Any]) -> Outcome:
    """The answer for a registration that exists already (a repeat)."""
    return Outcome(
        registration_id=doc["_id"],
        status=OutcomeStatus(doc["status"]),
        created=False,
        reason=doc.get("reason"),
    )


def cancelled_outcome(outcome: Outcome) -> Outcome:
    """The answer to a request whose registration was cancelled in the same
    transaction (by a cancellation published after it)."""
    return replace(
        outcome, status=OutcomeStatus.CANCELLED, position=None, reason=domain.REASON_PARTICIPANT
    )
