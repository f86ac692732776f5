"""What the HTTP API reads: seat books, registrations (each with its current place in
the waiting list), parked requests."""

from __future__ import annotations

from collections.abc import Sequence

from seminarops_shared.events.registration import RegistrationStatus
from seminarops_shared.mongo import Document

from ..domain import Seats
from ..repository import ParkedRequestRepository, RegistrationRepository, SeminarRepository


class RegistrationReads:
    """Reads outside any transaction: each answers as the database stands. Every
    registration read carries ``waitlist_position`` (1 = promoted next; ``None`` unless
    waitlisted), counted at the read, never stored: a stored position would go stale
    with every cancellation ahead of it."""

    def __init__(
        self,
        *,
        seminars: SeminarRepository,
        registrations: RegistrationRepository,
        parked: ParkedRequestRepository,
    ) -> None:
        self.seminars = seminars
        self.registrations = registrations
        self.parked = parked

    async def seat_book(self, seminar_id: str) -> Seats | None:
        return await self.seminars.get(seminar_id)

    async def of_seminar(
        self, seminar_id: str, *, status: RegistrationStatus | None, limit: int, offset: int
    ) -> list[Document]:
        docs = await self.registrations.of_seminar(
            seminar_id, status=status, limit=limit, offset=offset
        )
        return await self._with_positions(docs)

    async def of_participant(self, participant_id: str, *, limit: int) -> list[Document]:
        docs = await self.registrations.of_participant(participant_id, limit=limit)
        return await self._with_positions(docs)

    async def registration(self, registration_id: str) -> Document | None:
        doc = await self.registrations.get(registration_id)
        return (await self._with_positions([doc]))[0] if doc is not None else None

    async def parked_request(self, registration_id: str) -> Document | None:
        found = await self.parked.get_many([registration_id])
        return found.get(registration_id)

    async def _with_positions(self, docs: Sequence[Document]) -> list[Document]:
        """``docs`` with ``waitlist_position`` set: one count (and, for several of one
        seminar, one index range read) per seminar among the waitlisted."""
        waiting: dict[str, list[int]] = {}
        for doc in docs:
            if doc["status"] == RegistrationStatus.WAITLISTED.value and "waitlist_seq" in doc:
                waiting.setdefault(doc["seminar_id"], []).append(int(doc["waitlist_seq"]))
        positions = {
            seminar_id: await self.registrations.waitlist_positions(seminar_id, seqs)
            for seminar_id, seqs in waiting.items()
        }
        answered = []
        for doc in docs:
            place = None
            if doc["status"] == RegistrationStatus.WAITLISTED.value and "waitlist_seq" in doc:
                place = positions[doc["seminar_id"]].get(int(doc["waitlist_seq"]))
            answered.append({**doc, "waitlist_position": place})
        return answered
