"""Certificates of attendance: who gets one, what it says, and how erasure revokes it.
Pure: no database, broker or clock; time and fresh codes come in as arguments.

A certificate is issued once per (seminar, attendee) when the seminar completes. Its
id is derived from that pair, so a replayed completion finds it and issues nothing;
its public verification code is drawn once, at that first issue (128 random bits,
URL-safe), and never changes. Erasure revokes the person's certificates and strips
what identifies them: the verification then says "revoked" and nothing about whom.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from seminarops_shared.privacy import is_pseudonym

from .seminar_facts import SeminarFacts, total_hours

CERTIFICATE_ID_PREFIX = "cert-"
REVOKED_BY_ERASURE = "participant_erased"
# What ``secrets.token_urlsafe(16)`` draws (22 characters), with room for longer codes.
CODE_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"
_CODE = re.compile(CODE_PATTERN)


class CertificateStatus(enum.StrEnum):
    VALID = "valid"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Attendee:
    """An attendee as their registration knows them (``erased``: the person asked to
    be forgotten, so nothing is issued in their name)."""

    participant_id: str
    display_name: str | None
    erased: bool = False


@dataclass(frozen=True, slots=True)
class CompletedSeminar:
    """What ``seminar.completed.v1`` says, and what this service knows of the seminar."""

    seminar_id: str
    kind: str
    programme: str
    year: int
    facts: SeminarFacts | None


@dataclass(frozen=True, slots=True)
class Certificate:
    id: str
    code: str
    seminar_id: str
    participant_id: str
    display_name: str | None
    seminar_title: str | None
    kind: str
    programme: str
    year: int
    timezone: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    hours: float | None
    issued_at: datetime
    status: CertificateStatus = CertificateStatus.VALID
    revoked_at: datetime | None = None
    revocation_reason: str | None = None

    @property
    def valid(self) -> bool:
        return self.status is CertificateStatus.VALID


def certificate_id(seminar_id: str, participant_id: str) -> str:
    """The one certificate of (seminar, participant): a replay resolves to it."""
    digest = hashlib.sha256(f"certificate\x1f{seminar_id}\x1f{participant_id}".encode())
    return CERTIFICATE_ID_PREFIX + digest.hexdigest()[:24]


def is_code(value: str) -> bool:
    return _CODE.fullmatch(value) is not None


def issue(
    seminar: CompletedSeminar,
    attendees: Iterable[str],
    *,
    known: Mapping[str, Attendee],
    issued: Iterable[str],
    now: datetime,
    new_code: Callable[[], str],
) -> list[Certificate]:
    """The certificates to issue now, one per attendee, in the order given.

    Never two for one (seminar, attendee): those already ``issued`` (by certificate id)
    and repeats in ``attendees`` get none. Nothing is issued to a pseudonym, to an
    attendee whose registration this service does not know (``known``, by participant
    id), or whose registration was erased: a certificate would put back what erasure
    removed. Idempotent: issued again with the result's ids, it returns nothing.
    """
    done = set(issued)
    facts = seminar.facts
    sessions = facts.sessions if facts else ()
    certificates: list[Certificate] = []
    for participant_id in attendees:
        cert_id = certificate_id(seminar.seminar_id, participant_id)
        attendee = known.get(participant_id)
        if cert_id in done or attendee is None or attendee.erased or is_pseudonym(participant_id):
            continue
        done.add(cert_id)
        code = new_code()
        if not is_code(code):
            raise ValueError("a verification code must be 16-64 URL-safe characters")
        certificates.append(
            Certificate(
                id=cert_id,
                code=code,
                seminar_id=seminar.seminar_id,
                participant_id=participant_id,
                display_name=attendee.display_name,
                seminar_title=facts.title if facts else None,
                kind=seminar.kind,
                programme=seminar.programme,
                year=seminar.year,
                timezone=facts.timezone if facts else None,
                starts_at=facts.starts_at if facts else None,
                ends_at=facts.ends_at if facts else None,
                hours=total_hours(sessions),
                issued_at=now,
            )
        )
    return certificates


def revoke_for_erasure(certificate: Certificate, *, pseudonym: str, now: datetime) -> Certificate:
    """The holder asked to be forgotten: revoked, their name gone, their id replaced by
    the pseudonym every service uses. Idempotent: a revoked one stays as it is."""
    if not certificate.valid:
        return certificate
    return replace(
        certificate,
        status=CertificateStatus.REVOKED,
        participant_id=pseudonym,
        display_name=None,
        revoked_at=now,
        revocation_reason=REVOKED_BY_ERASURE,
    )
