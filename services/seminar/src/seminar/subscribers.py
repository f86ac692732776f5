"""Kafka entry points: which consumed event types the seminar service acts on, mapped
onto its handlers. ``registration.events`` feeds the rosters; other types on the topic
(``registration.rejected.v1``) are skipped by the pipeline."""

from __future__ import annotations

from collections.abc import Sequence

from seminarops_shared.events import Event, ReceivedEvent
from seminarops_shared.events.registration import (
    ParticipantErased,
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationPromoted,
    RegistrationWaitlisted,
)
from seminarops_shared.events.topics import REGISTRATION_EVENTS
from seminarops_shared.subscriptions import Batch, BatchHandler, Subscription
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


def _roster_entry(data: RegistrationChange) -> RosterEntry:
    return RosterEntry(
        seminar_id=data.seminar_id,
        participant_id=data.participant_id,
        status=ROSTER_STATUS[type(data)],
        version=data.version,
        registration_id=data.registration_id,
    )


def subscription(service: SeminarService) -> Subscription:
    """What the ``seminar`` group consumes from ``registration.events``: runs of
    consecutive registration changes are applied by one ``apply_registrations`` call
    each (a few round trips for the whole run), runs of erasures by
    ``erase_participant``, so that each event sees the rosters as the events before it
    left them.

    Nothing here needs a processed-event marker: a roster entry follows the highest
    version, and an erased id never comes back, so applying any of these events again,
    late or early, changes nothing; the handlers report such events as unchanged (the
    pipeline counts them as duplicates)."""
    changes = Batch(_roster_changes(service), idempotent=True)
    erasures = Batch(_erasures(service), idempotent=True)
    return Subscription(
        topics=(REGISTRATION_EVENTS,),
        handlers={**dict.fromkeys(ROSTER_STATUS, changes), ParticipantErased: erasures},
    )


def _roster_changes(service: SeminarService) -> BatchHandler:
    async def handle(events: Sequence[ReceivedEvent], uow: UnitOfWork) -> list[str]:
        entries = [_roster_entry(_change(event)) for event in events]
        applied = await service.apply_registrations(uow, entries)
        return [e.id for e, a in zip(events, applied, strict=True) if not a]

    return handle


def _erasures(service: SeminarService) -> BatchHandler:
    async def handle(events: Sequence[ReceivedEvent], uow: UnitOfWork) -> list[str]:
        unchanged: list[str] = []
        for event in events:
            data = event.data
            assert isinstance(data, ParticipantErased)  # the subscription routes only these
            if not await service.erase_participant(uow, data.participant_id):
                unchanged.append(event.id)
        return unchanged

    return handle


def _change(event: ReceivedEvent) -> RegistrationChange:
    data = event.data
    assert isinstance(data, RegistrationChange)  # the subscription routes only these
    return data
