"""Forgetting a person (``participant.erasure_requested.v1`` or the operators' API)."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from seminarops_shared.events.registration import ParticipantErased
from seminarops_shared.scheduler import Scheduler
from seminarops_shared.unit_of_work import UnitOfWork

from ..repository import (
    ParkedRequestRepository,
    PendingCancellationRepository,
    RegistrationRepository,
)
from .kept_cancellations import expiry_job_id

_log = structlog.get_logger(__name__)


class ParticipantErasure:
    """The erasure use case."""

    def __init__(
        self,
        *,
        registrations: RegistrationRepository,
        parked: ParkedRequestRepository,
        cancellations: PendingCancellationRepository,
        scheduler: Scheduler,
        pseudonym: Callable[[str], str],
    ) -> None:
        self.registrations = registrations
        self.parked = parked
        self.cancellations = cancellations
        self._scheduler = scheduler
        self._pseudonym = pseudonym

    async def erase(self, uow: UnitOfWork, *, participant_id: str) -> int:
        """Forget a person: name and e-mail removed and the participant id replaced by
        its pseudonym (``seminarops_shared.privacy``: the same in every service) in
        every registration (statuses and counts stay), parked requests and kept
        cancellations dropped (seat books keep counting those as an upper bound), and
        ``participant.erased.v1`` emitted for the other services.
        Idempotent: a second erasure changes nothing here (and is announced again,
        which the other services absorb). Returns how many registrations changed."""
        changed = await self.registrations.anonymise(
            participant_id,
            pseudonym=self._pseudonym(participant_id),
            now=uow.now,
            session=uow.session,
        )
        dropped = await self.parked.delete_of_participant(participant_id, session=uow.session)
        kept = await self.cancellations.delete_of_participant(participant_id, session=uow.session)
        if kept:
            await self._scheduler.cancel(uow, [expiry_job_id(r) for r in kept])
        uow.emit(ParticipantErased(participant_id=participant_id, erased_at=uow.now))
        _log.info("participant erased", registrations=len(changed), parked_dropped=dropped)
        return len(changed)
