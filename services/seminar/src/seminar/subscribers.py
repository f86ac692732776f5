"""Kafka entry points: which consumed event types the seminar service acts on, mapped
onto its handlers. ``registration.events`` feeds the rosters; other types on the topic
(``registration.rejected.v1``) are skipped by the pipeline."""

from __future__ import annotations

from seminarops_shared.events import Event, ReceivedEvent
from seminarops_shared.events.registration import (
    ParticipantErased,
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationPromoted,
    RegistrationWaitlisted,
)
from seminarops_shared.kafka import EventHandler, PermanentError
from seminarops_shared.unit_of_work import UnitOfWork

from .domain import RosterStatus
from .handlers import SeminarService

RegistrationChange = (
    RegistrationConfirmed | RegistrationPromoted | RegistrationWaitlisted | RegistrationCancelled
)

ROSTER_STATUS: dict[type[Event], RosterStatus] = {
    RegistrationConfirmed: RosterStatus.CONFIRMED,
    RegistrationPromoted: RosterStatus.CONFIRMED,
    RegistrationWaitlisted: RosterStatus.WAITLISTED,
    RegistrationCancelled: RosterStatus.CANCELLED,
}


def registration_handlers(service: SeminarService) -> dict[type[Event], EventHandler]:
    """The handlers for ``registration.events``."""

    async def registration_changed(event: ReceivedEvent, uow: UnitOfWork) -> None:
        data = event.data
        if not isinstance(data, RegistrationChange):
            raise PermanentError(f"not a registration change: {type(data).__name__}")
        await service.apply_registration(
            uow,
            seminar_id=data.seminar_id,
            participant_id=data.participant_id,
            registration_id=data.registration_id,
            status=ROSTER_STATUS[type(data)],
            version=data.version,
        )

    async def participant_erased(event: ReceivedEvent, uow: UnitOfWork) -> None:
        data = event.data
        if not isinstance(data, ParticipantErased):
            raise PermanentError(f"not an erasure: {type(data).__name__}")
        await service.erase_participant(uow, data.participant_id)

    handlers: dict[type[Event], EventHandler] = dict.fromkeys(ROSTER_STATUS, registration_changed)
    handlers[ParticipantErased] = participant_erased
    return handlers
