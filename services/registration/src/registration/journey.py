"""The participant journey's use cases: certificates of attendance (issued when a
seminar completes, revoked by erasure, verified publicly) and the participant's
calendar, from the seminar facts this service keeps.

The event use cases run in the consumer's transaction (``uow``), beside the
registration use cases of the same event, with its processed-event marker: applied
once, whatever is replayed. Certificates are issued by durable jobs, a chunk of
attendees each in its own transaction: a seminar may have 20,000 attendees, far more
than one transaction writes within the database's transaction lifetime.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from seminarops_shared.clock import Clock
from seminarops_shared.errors import NotFound
from seminarops_shared.events.registration import CertificateIssued, CertificateRevoked
from seminarops_shared.events.seminar import SessionTimes
from seminarops_shared.events.vocabulary import Kind, Programme
from seminarops_shared.scheduler import Job, Scheduler
from seminarops_shared.unit_of_work import UnitOfWork

from . import calendar_ics, calendars, certificate_pdf, certificates, seminar_facts
from .certificates import Attendee, Certificate, CompletedSeminar
from .domain import registration_id
from .journey_repository import CertificateRepository, SeminarFactsRepository
from .repository import RegistrationRepository

_log = structlog.get_logger(__name__)

# How many of a person's registrations the calendar looks at (more than anyone has).
CALENDAR_REGISTRATIONS_LIMIT = 2000
CERTIFICATE_ISSUE_JOB = "registration.certificate_issue"
# Attendees per certificate job: about 3 s of work on the embedded database, well
# inside the job's 60 s lease and the 60 s transaction lifetime.
CERTIFICATES_PER_JOB = 500


def new_verification_code() -> str:
    """128 random bits, URL-safe: unguessable, and safe in a path."""
    return secrets.token_urlsafe(16)


class CertificateRevokedNotFound(NotFound):
    """A revoked certificate names nobody any more: there is no document to give."""

    code = "certificate_revoked"


def _certificate_fields(certificate: Certificate) -> dict[str, Any]:
    """What both certificate events carry: ids and the seminar's grouping, never a name
    (the holder's id is already the pseudonym on a revoked certificate)."""
    return {
        "certificate_id": certificate.id,
        "seminar_id": certificate.seminar_id,
        "participant_id": certificate.participant_id,
        "kind": Kind(certificate.kind),
        "programme": Programme(certificate.programme),
        "year": certificate.year,
    }


def _sessions(times: Sequence[SessionTimes]) -> list[seminar_facts.Session]:
    return [seminar_facts.Session(starts_at=t.starts_at, ends_at=t.ends_at) for t in times]


class ParticipantJourney:
    """Certificates and calendars over the service's repositories."""

    def __init__(
        self,
        *,
        facts: SeminarFactsRepository,
        certificates: CertificateRepository,
        registrations: RegistrationRepository,
        pseudonym: Callable[[str], str],
        certificate_font: Path | None,
        verify_base_url: str | None = None,
        clock: Clock,
        scheduler: Scheduler,
        new_code: Callable[[], str] = new_verification_code,
    ) -> None:
        self.facts = facts
        self.certificates = certificates
        self._registrations = registrations
        self._pseudonym = pseudonym
        self._font = certificate_font
        self._verify_base_url = verify_base_url.rstrip("/") if verify_base_url else None
        self._new_code = new_code
        self._clock = clock
        self._scheduler = scheduler

    # ---- seminar facts -------------------------------------------------------------------

    async def on_seminar_scheduled(
        self,
        uow: UnitOfWork,
        *,
        seminar_id: str,
        title: str,
        kind: str,
        programme: str,
        timezone: str,
        sessions: Sequence[SessionTimes],
    ) -> None:
        """Keep what the calendar and the certificates say of the seminar. Idempotent
        (the same facts again write the same document)."""
        known = await self.facts.get(seminar_id, session=uow.session)
        await self.facts.save(
            seminar_facts.scheduled(
                known,
                seminar_id=seminar_id,
                title=title,
                kind=kind,
                programme=programme,
                timezone=timezone,
                sessions=_sessions(sessions),
                now=uow.now,
            ),
            session=uow.session,
        )

    async def on_seminar_rescheduled(
        self, uow: UnitOfWork, *, seminar_id: str, sessions: Sequence[SessionTimes]
    ) -> None:
        """The new sessions, and one reschedule more (the calendar's SEQUENCE). Once per
        event: the consumer's processed-event marker commits with it."""
        known = await self.facts.get(seminar_id, session=uow.session)
        await self.facts.save(
            seminar_facts.rescheduled(
                known, seminar_id=seminar_id, sessions=_sessions(sessions), now=uow.now
            ),
            session=uow.session,
        )

    async def on_seminar_cancelled(self, uow: UnitOfWork, *, seminar_id: str) -> None:
        """The calendar shows the seminar's sessions cancelled. Idempotent."""
        known = await self.facts.get(seminar_id, session=uow.session)
        changed = seminar_facts.cancelled(known, seminar_id=seminar_id, now=uow.now)
        if changed != known:
            await self.facts.save(changed, session=uow.session)

    # ---- certificates --------------------------------------------------------------------

    async def on_seminar_completed(
        self,
        uow: UnitOfWork,
        *,
        seminar_id: str,
        kind: str,
        programme: str,
        year: int,
        attendee_ids: Sequence[str],
    ) -> None:
        """``seminar.completed.v1``: certificates for the attendees are planned as jobs of
        ``CERTIFICATES_PER_JOB`` attendees each, due now (``on_issue_due``), committed
        with the event's marker. Idempotent: the same attendees give the same job ids
        (scheduling again moves a job), and a job run again issues nothing new."""
        attendees = list(dict.fromkeys(attendee_ids))
        jobs = [
            Job(
                id=f"{CERTIFICATE_ISSUE_JOB}:{seminar_id}:{number}",
                kind=CERTIFICATE_ISSUE_JOB,
                group=seminar_id,
                due_at=uow.now,
                payload={
                    "seminar_id": seminar_id,
                    "kind": kind,
                    "programme": programme,
                    "year": year,
                    "attendee_ids": attendees[start : start + CERTIFICATES_PER_JOB],
                },
            )
            for number, start in enumerate(range(0, len(attendees), CERTIFICATES_PER_JOB))
        ]
        await self._scheduler.schedule_many(uow, jobs)

    async def on_issue_due(self, job: Job, uow: UnitOfWork) -> None:
        """A certificate job: its attendees' certificates, in its own transaction."""
        payload = job.payload
        await self.issue_certificates(
            uow,
            seminar_id=str(payload["seminar_id"]),
            kind=str(payload["kind"]),
            programme=str(payload["programme"]),
            year=int(payload["year"]),
            attendee_ids=[str(a) for a in payload["attendee_ids"]],
        )

    async def issue_certificates(
        self,
        uow: UnitOfWork,
        *,
        seminar_id: str,
        kind: str,
        programme: str,
        year: int,
        attendee_ids: Sequence[str],
    ) -> int:
        """A certificate for every one of ``attendee_ids`` whose registration this
        service knows and who was not erased (``certificates.issue``).

        Never two for one attendee and seminar, and codes never change: a replayed
        completion finds the certificates by id and issues nothing. Each registration a
        certificate is issued for is written too (``certificate_id``): an erasure of the
        same person running concurrently writes it as well, so the two transactions
        conflict and the later one sees the other (no certificate can be issued in the
        name of someone erased at that very moment). Returns how many were issued."""
        session = uow.session
        reg_ids = {registration_id(seminar_id, a): a for a in attendee_ids}
        registrations = await self._registrations.get_many(reg_ids, session=session)
        known = {
            reg_ids[reg_id]: Attendee(
                participant_id=reg_ids[reg_id],
                display_name=doc.get("display_name"),
                erased="erased_at" in doc,
            )
            for reg_id, doc in registrations.items()
        }
        completed = CompletedSeminar(
            seminar_id=seminar_id,
            kind=kind,
            programme=programme,
            year=year,
            facts=await self.facts.get(seminar_id, session=session),
        )
        issued = await self.certificates.existing(
            (certificates.certificate_id(seminar_id, a) for a in attendee_ids), session=session
        )
        new = certificates.issue(
            completed,
            attendee_ids,
            known=known,
            issued=issued,
            now=uow.now,
            new_code=self._new_code,
        )
        await self.certificates.insert_many(new, session=session)
        for certificate in new:
            uow.emit(
                CertificateIssued(
                    **_certificate_fields(certificate), issued_at=certificate.issued_at
                )
            )
        linked = [(registrations[registration_id(seminar_id, c.participant_id)], c) for c in new]
        await self._registrations.set_quietly(
            [(doc["_id"], int(doc["version"]), {"certificate_id": c.id}) for doc, c in linked],
            session=session,
        )
        skipped = len(set(attendee_ids)) - len(new)
        _log.info("certificates issued", seminar_id=seminar_id, issued=len(new), not_issued=skipped)
        return len(new)

    async def revoke_certificates(self, uow: UnitOfWork, *, participant_id: str) -> int:
        """Erasure: the person's certificates are revoked, their name and id removed
        (``certificates.revoke_for_erasure``), and ``certificate.revoked.v1`` emitted for
        each (under the pseudonym) in the same transaction. Idempotent: a second erasure
        finds none under the person's id, so revokes and announces nothing. Returns how
        many were revoked."""
        held = await self.certificates.of_participant(participant_id, session=uow.session)
        pseudonym = self._pseudonym(participant_id)
        revoked = [
            certificates.revoke_for_erasure(c, pseudonym=pseudonym, now=uow.now)
            for c in held
            if c.valid
        ]
        await self.certificates.replace_many(revoked, session=uow.session)
        for certificate in revoked:
            uow.emit(
                CertificateRevoked(
                    **_certificate_fields(certificate),
                    revoked_at=certificate.revoked_at or uow.now,
                    reason=certificate.revocation_reason or certificates.REVOKED_BY_ERASURE,
                )
            )
        return len(revoked)

    async def certificates_of(self, participant_id: str) -> list[Certificate]:
        found = await self.certificates.of_participant(participant_id)
        return sorted(found, key=lambda c: (c.starts_at or c.issued_at, c.id))

    async def verify(self, code: str) -> Certificate:
        """The certificate with this public code (valid or revoked)."""
        found = await self.certificates.by_code(code) if certificates.is_code(code) else None
        if found is None:
            raise NotFound("no certificate has this code")
        return found

    def verification_url(self, code: str, *, as_requested: str) -> str:
        """Where the certificate with ``code`` is verified: under the configured public
        base URL, else ``as_requested`` (the verification route at the address the
        caller used)."""
        if self._verify_base_url is None:
            return as_requested
        return f"{self._verify_base_url}/v1/certificates/{code}"

    async def certificate_pdf(self, code: str, *, as_requested: str) -> bytes:
        """The PDF of a valid certificate (a revoked one: ``CertificateRevoked``), with
        its verification URL (``verification_url``) printed and as a QR code. Rendered
        off the event loop (about 0.1 s of CPU)."""
        verify_url = self.verification_url(code, as_requested=as_requested)
        certificate = await self.verify(code)
        if not certificate.valid:
            raise CertificateRevokedNotFound("this certificate was revoked")
        return await asyncio.to_thread(
            certificate_pdf.render, certificate, verify_url=verify_url, font=self._font
        )

    # ---- calendar ------------------------------------------------------------------------

    async def calendar(self, participant_id: str) -> bytes:
        """The person's calendar (``calendars``): their confirmed and offered seminars,
        and those of them since cancelled, one event per session."""
        docs = await self._registrations.of_participant(
            participant_id, limit=CALENDAR_REGISTRATIONS_LIMIT
        )
        held = [
            calendars.HeldRegistration(
                seminar_id=doc["seminar_id"],
                status=doc["status"],
                reason=doc.get("reason"),
                previous_status=doc.get("previous_status"),
            )
            for doc in docs
        ]
        facts = await self.facts.get_many({h.seminar_id for h in held})
        return calendar_ics.render(
            calendars.entries(held, facts), name=f"Seminars of {participant_id}", now=self._clock()
        )
