"""What the HTTP API reads: seat books, registrations, parked requests."""

from __future__ import annotations

from seminarops_shared.events.registration import RegistrationStatus
from seminarops_shared.mongo import Document

from ..domain import Seats
from ..repository import ParkedRequestRepository, RegistrationRepository, SeminarRepository


class RegistrationReads:
    """Reads outside any transaction: each answers as the database stands."""

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
        return await self.registrations.of_seminar(
            seminar_id, status=status, limit=limit, offset=offset
        )

    async def of_participant(self, participant_id: str, *, limit: int) -> list[Document]:
        return await self.registrations.of_participant(participant_id, limit=limit)

    async def registration(self, registration_id: str) -> Document | None:
        return await self.registrations.get(registration_id)

    async def parked_request(self, registration_id: str) -> Document | None:
        found = await self.parked.get_many([registration_id])
        return found.get(registration_id)
