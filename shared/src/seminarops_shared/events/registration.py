"""``registration.events``: decisions of the registration service, keyed by seminar id.

Every registration event carries the registration's ``version`` (1, 2, ...), so a
projection applies a change only when it is newer than what it holds, whatever order
the records arrive in. Events carry participant id, country and school; never a name
or an e-mail address.
"""

from __future__ import annotations

import enum
from typing import ClassVar

from pydantic import AwareDatetime, Field

from .base import Event, event
from .topics import REGISTRATION_EVENTS
from .vocabulary import CountryCode, Identifier, Kind, Programme, Year


class RegistrationStatus(enum.StrEnum):
    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    # Holds a seat offer (seminars with ``offer`` promotion) until it is accepted,
    # declined or expires.
    OFFERED = "offered"


class _RegistrationEvent(Event):
    topic: ClassVar[str] = REGISTRATION_EVENTS

    registration_id: Identifier
    seminar_id: Identifier
    participant_id: Identifier
    country: CountryCode | None = None
    school_id: Identifier | None = None
    version: int = Field(ge=1)
    # `source` of the request that created the registration (the platform system).
    source: str | None = None


@event
class RegistrationConfirmed(_RegistrationEvent):
    event_type: ClassVar[str] = "registration.confirmed.v1"

    requested_at: AwareDatetime


@event
class RegistrationWaitlisted(_RegistrationEvent):
    event_type: ClassVar[str] = "registration.waitlisted.v1"

    requested_at: AwareDatetime
    position: int = Field(ge=1)


@event
class RegistrationPromoted(_RegistrationEvent):
    """A waitlisted registration got a seat (a cancellation or a capacity increase)."""

    event_type: ClassVar[str] = "registration.promoted.v1"


@event
class RegistrationOffered(_RegistrationEvent):
    """A freed seat is offered to the head of the waiting list (seminars with ``offer``
    promotion) until ``offer_expires_at``: accepted, it is ``registration.confirmed.v1``;
    declined or expired, ``registration.cancelled.v1`` (``offer_declined`` /
    ``offer_expired``) and the seat is offered to the next."""

    event_type: ClassVar[str] = "registration.offered.v1"

    offer_expires_at: AwareDatetime


@event
class RegistrationCancelled(_RegistrationEvent):
    event_type: ClassVar[str] = "registration.cancelled.v1"

    previous_status: RegistrationStatus
    reason: str


@event
class RegistrationRejected(_RegistrationEvent):
    """A request that could not become a registration, with the reason
    (``seminar_unknown``, ``seminar_cancelled``, ``seminar_closed``, ``not_eligible``:
    the participant's country is not among the seminar's ``eligible_countries``)."""

    event_type: ClassVar[str] = "registration.rejected.v1"

    reason: str


@event
class ParticipantErased(Event):
    """A person asked to be forgotten: every service erases or anonymises them, and
    keeps its counts."""

    event_type: ClassVar[str] = "participant.erased.v1"
    topic: ClassVar[str] = REGISTRATION_EVENTS
    key_field: ClassVar[str] = "participant_id"

    participant_id: Identifier
    erased_at: AwareDatetime


class _CertificateEvent(Event):
    """A certificate of attendance, as the registration service announces it: ids and
    the seminar's grouping (``kind``, ``programme``, ``year``), never the holder's name.
    ``participant_id`` is the pseudonym once the holder asked to be forgotten."""

    topic: ClassVar[str] = REGISTRATION_EVENTS

    certificate_id: Identifier
    seminar_id: Identifier
    participant_id: Identifier
    kind: Kind
    programme: Programme
    year: Year


@event
class CertificateIssued(_CertificateEvent):
    """A certificate of attendance was issued (once per attendee and seminar, when the
    seminar completed), in the same transaction as the certificate."""

    event_type: ClassVar[str] = "certificate.issued.v1"

    issued_at: AwareDatetime


@event
class CertificateRevoked(_CertificateEvent):
    """A certificate was revoked (``reason``: ``participant_erased``), in the same
    transaction as the revocation; it stays revoked."""

    event_type: ClassVar[str] = "certificate.revoked.v1"

    revoked_at: AwareDatetime
    reason: str
