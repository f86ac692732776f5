"""The participant journey's collections: what the service knows of each seminar
(``seminar_facts``) and the certificates of attendance (``certificates``).

Documents written before a field existed lack it: every read goes through ``_facts`` /
``_certificate``, which give a missing field its "unknown" value, so old documents read
as they are and no migration has to run first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from pymongo import ASCENDING, IndexModel, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from seminarops_shared.mongo import ConcurrentChange, Document, Repository, find_by_ids

from .certificates import Certificate, CertificateStatus
from .seminar_facts import SeminarFacts, Session

SEMINAR_FACTS = "seminar_facts"
CERTIFICATES = "certificates"


def _facts(doc: Document) -> SeminarFacts:
    return SeminarFacts(
        seminar_id=doc["_id"],
        title=doc.get("title"),
        kind=doc.get("kind"),
        programme=doc.get("programme"),
        timezone=doc.get("timezone"),
        sessions=tuple(
            Session(starts_at=s["starts_at"], ends_at=s["ends_at"])
            for s in doc.get("sessions") or ()
        ),
        reschedules=int(doc.get("reschedules") or 0),
        cancelled=bool(doc.get("cancelled", False)),
        updated_at=doc.get("updated_at"),
    )


def _facts_doc(facts: SeminarFacts) -> Document:
    return {
        "_id": facts.seminar_id,
        "title": facts.title,
        "kind": facts.kind,
        "programme": facts.programme,
        "timezone": facts.timezone,
        "sessions": [{"starts_at": s.starts_at, "ends_at": s.ends_at} for s in facts.sessions],
        "reschedules": facts.reschedules,
        "cancelled": facts.cancelled,
        "updated_at": facts.updated_at,
    }


class SeminarFactsRepository(Repository):
    """One document per seminar (``_id`` = seminar id). Only read by id."""

    indexes: ClassVar[dict[str, Sequence[IndexModel]]] = {SEMINAR_FACTS: []}

    async def get(
        self, seminar_id: str, *, session: AsyncClientSession | None = None
    ) -> SeminarFacts | None:
        doc = await self.collection(SEMINAR_FACTS).find_one({"_id": seminar_id}, session=session)
        return _facts(doc) if doc else None

    async def get_many(
        self, seminar_ids: Iterable[str], *, session: AsyncClientSession | None = None
    ) -> dict[str, SeminarFacts]:
        found = await find_by_ids(self.collection(SEMINAR_FACTS), seminar_ids, session=session)
        return {doc["_id"]: _facts(doc) for doc in found}

    async def save(self, facts: SeminarFacts, *, session: AsyncClientSession) -> None:
        """Whole-document write: a seminar's facts change only through its own events,
        applied in partition order under its seat book's claim (one writer at a time)."""
        await self.collection(SEMINAR_FACTS).replace_one(
            {"_id": facts.seminar_id}, _facts_doc(facts), upsert=True, session=session
        )


def _certificate(doc: Document) -> Certificate:
    return Certificate(
        id=doc["_id"],
        code=doc["code"],
        seminar_id=doc["seminar_id"],
        participant_id=doc["participant_id"],
        display_name=doc.get("display_name"),
        seminar_title=doc.get("seminar_title"),
        kind=doc["kind"],
        programme=doc["programme"],
        year=int(doc["year"]),
        timezone=doc.get("timezone"),
        starts_at=doc.get("starts_at"),
        ends_at=doc.get("ends_at"),
        hours=doc.get("hours"),
        issued_at=doc["issued_at"],
        status=CertificateStatus(doc.get("status", CertificateStatus.VALID.value)),
        revoked_at=doc.get("revoked_at"),
        revocation_reason=doc.get("revocation_reason"),
    )


def _certificate_doc(certificate: Certificate) -> Document:
    doc: dict[str, Any] = {
        "_id": certificate.id,
        "code": certificate.code,
        "seminar_id": certificate.seminar_id,
        "participant_id": certificate.participant_id,
        "seminar_title": certificate.seminar_title,
        "kind": certificate.kind,
        "programme": certificate.programme,
        "year": certificate.year,
        "timezone": certificate.timezone,
        "starts_at": certificate.starts_at,
        "ends_at": certificate.ends_at,
        "hours": certificate.hours,
        "issued_at": certificate.issued_at,
        "status": certificate.status.value,
    }
    # Personal data: stored only while the certificate is valid, never in a revoked one.
    if certificate.display_name is not None:
        doc["display_name"] = certificate.display_name
    if certificate.revoked_at is not None:
        doc["revoked_at"] = certificate.revoked_at
        doc["revocation_reason"] = certificate.revocation_reason
    return doc


class CertificateRepository(Repository):
    """Certificates of attendance (``_id`` = ``certificate_id(seminar, participant)``)."""

    indexes: ClassVar[dict[str, Sequence[IndexModel]]] = {
        CERTIFICATES: [
            # Public verification; unique: two certificates never share a code.
            IndexModel([("code", ASCENDING)], name="by_code", unique=True),
            # A person's certificates, and erasure.
            IndexModel([("participant_id", ASCENDING)], name="by_participant"),
        ]
    }

    async def existing(
        self, certificate_ids: Iterable[str], *, session: AsyncClientSession
    ) -> set[str]:
        """Which of ``certificate_ids`` were issued already (by ``_id``)."""
        found = await find_by_ids(self.collection(CERTIFICATES), certificate_ids, session=session)
        return {doc["_id"] for doc in found}

    async def insert_many(
        self, certificates: Sequence[Certificate], *, session: AsyncClientSession
    ) -> None:
        if not certificates:
            return
        try:
            await self.collection(CERTIFICATES).insert_many(
                [_certificate_doc(c) for c in certificates], ordered=True, session=session
            )
        except DuplicateKeyError:
            # A concurrent issue of the same certificate (retried: it then finds it), or,
            # once in 2^64 issues, two equal codes (retried: new codes are drawn).
            raise ConcurrentChange("certificate issued concurrently") from None

    async def replace_many(
        self, certificates: Sequence[Certificate], *, session: AsyncClientSession
    ) -> None:
        if certificates:
            await self.collection(CERTIFICATES).bulk_write(
                [ReplaceOne({"_id": c.id}, _certificate_doc(c)) for c in certificates],
                ordered=True,
                session=session,
            )

    async def of_participant(
        self, participant_id: str, *, limit: int = 1000, session: AsyncClientSession | None = None
    ) -> list[Certificate]:
        cursor = (
            self.collection(CERTIFICATES)
            .find({"participant_id": participant_id}, session=session)
            .limit(limit)
        )
        return [_certificate(doc) async for doc in cursor]

    async def by_code(self, code: str) -> Certificate | None:
        doc = await self.collection(CERTIFICATES).find_one({"code": code})
        return _certificate(doc) if doc else None
