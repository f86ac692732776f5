"""Kafka entry points: which consumed event types the seminar service acts on, mapped
onto its handlers. ``registration.events`` feeds the rosters; other types on the topic
(``registration.rejected.v1``) are skipped by the pipeline."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from seminarops_shared.events import Event, ReceivedEvent
from seminarops_shared.events.registration import (
    ParticipantErased,
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationPromoted,
    RegistrationWaitlisted,
)
from seminarops_shared.kafka import BatchHandler, PermanentError
from seminarops_shared.unit_of_work import UnitOfWork

from .domain import RosterStatus
from .handlers import SeminarService
from .repository import RosterEntry

RegistrationChange = (
    RegistrationConfirmed | RegistrationPromoted | RegistrationWaitlisted | RegistrationCancelled
)

ROSTER_STATUS: dict[type[Event], RosterStatus] = {
    RegistrationConfirmed: RosterStatus.CONFIRMED,
    RegistrationPromoted: RosterStatus.CONFIRMED,
    RegistrationWaitlisted: RosterStatus.WAITLISTED,
    RegistrationCancelled: RosterStatus.CANCELLED,
}
HANDLED: tuple[type[Event], ...] = (*ROSTER_STATUS, ParticipantErased)
# Every handled type is applied without a processed-event marker: a roster entry
# follows the highest version, and an erased id never comes back, so applying any of
# them again, late or early, changes nothing (see ``SeminarService.apply_registrations``
# and ``erase_participant``).
IDEMPOTENT: tuple[type[Event], ...] = HANDLED


def _roster_entry(data: RegistrationChange) -> RosterEntry:
    return RosterEntry(
        seminar_id=data.seminar_id,
        participant_id=data.participant_id,
        status=ROSTER_STATUS[type(data)],
        version=data.version,
        registration_id=data.registration_id,
    )


def registration_batch_handler(service: SeminarService) -> BatchHandler:
    """The batch handler for ``registration.events``: runs of consecutive registration
    changes are applied by one ``apply_registrations`` call each (a few round trips for
    the whole run), an erasure on its own between them, so that each event sees the
    rosters as the events before it left them. Returns the ids of the events that
    changed nothing (repeats and outdated versions: the pipeline counts them as
    duplicates)."""

    async def handle(events: Sequence[ReceivedEvent], uow: UnitOfWork) -> list[str]:
        unchanged: list[str] = []
        run: list[tuple[ReceivedEvent, RosterEntry]] = []

        async def apply_run() -> None:
            applied = await service.apply_registrations(uow, [entry for _, entry in run])
            unchanged.extend(e.id for (e, _), a in zip(run, applied, strict=True) if not a)
            run.clear()

        for event in events:
            data = event.data
            if isinstance(data, RegistrationChange):
                run.append((event, _roster_entry(data)))
                continue
            if not isinstance(data, ParticipantErased):
                raise PermanentError(f"not a registration change: {type(data).__name__}")
            if run:
                await apply_run()
            structlog.contextvars.bind_contextvars(
                event_id=event.envelope.id, event_type=event.envelope.type
            )
            try:
                if not await service.erase_participant(uow, data.participant_id):
                    unchanged.append(event.id)
            finally:
                structlog.contextvars.unbind_contextvars("event_id", "event_type")
        if run:
            await apply_run()
        return unchanged

    return handle
