"""Kafka entry points: map consumed events to the use cases in ``handlers``.

One consumer (group ``registration``) reads ``registration.requests`` and
``seminar.events`` (``subscription``). A batch's events are applied in order in one
transaction; runs of consecutive ``registration.requested.v1`` events are decided by one
``decide`` call (one set of queries for the whole run), everything else one event at a
time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from seminarops_shared.events import Event, ReceivedEvent
from seminarops_shared.events.inbound import (
    ParticipantErasureRequested,
    RegistrationCancellationRequested,
    RegistrationRequested,
)
from seminarops_shared.events.seminar import (
    SeminarCancelled,
    SeminarCompleted,
    SeminarRescheduled,
    SeminarScheduled,
)
from seminarops_shared.events.topics import REGISTRATION_REQUESTS, SEMINAR_EVENTS
from seminarops_shared.kafka import PermanentError
from seminarops_shared.keyed import KeyedWrites
from seminarops_shared.subscriptions import Batch, Subscription
from seminarops_shared.unit_of_work import UnitOfWork

from .domain import SeatTerms
from .handlers import (
    CancellationRequest,
    RegistrationClosed,
    RegistrationRequest,
    RegistrationService,
)
from .journey import ParticipantJourney

TOPICS = (REGISTRATION_REQUESTS, SEMINAR_EVENTS)


def request_of(event: ReceivedEvent) -> RegistrationRequest:
    data = event.data
    assert isinstance(data, RegistrationRequested)
    return RegistrationRequest(
        seminar_id=data.seminar_id,
        participant=data.participant,
        source=event.envelope.source,
        request_id=event.envelope.id,
        requested_at=event.envelope.time,
        traceparent=event.envelope.traceparent,
    )


def cancellation_of(event: ReceivedEvent) -> CancellationRequest:
    data = event.data
    assert isinstance(data, RegistrationCancellationRequested)
    return CancellationRequest(
        seminar_id=data.seminar_id,
        participant_id=data.participant_id,
        event_id=event.envelope.id,
        source=event.envelope.source,
        cancelled_at=event.envelope.time,
        traceparent=event.envelope.traceparent,
    )


def terms_of(data: SeminarScheduled) -> SeatTerms:
    countries = data.eligible_countries
    return SeatTerms(
        promotion=data.promotion,
        offer_hours=data.offer_hours,
        eligible_countries=frozenset(countries) if countries is not None else None,
    )


def seminars_of(events: Sequence[ReceivedEvent]) -> set[str]:
    """The seminars whose seat books a batch may change (its writers' turns)."""
    return {
        seminar_id
        for event in events
        if isinstance(seminar_id := getattr(event.data, "seminar_id", None), str)
    }


def subscription(
    service: RegistrationService, *, journey: ParticipantJourney, seat_books: KeyedWrites
) -> Subscription:
    """What the ``registration`` group consumes. Seminar events and erasure also reach
    the participant journey (``journey``: seminar facts, certificates), in the same
    transaction. Runs of consecutive requests are
    decided by one ``decide`` call (one set of queries for the whole run); requests carry
    no processed-event marker: a repeat resolves to its registration and changes
    nothing, and is reported as such. Every other event is applied on its own. Every
    transaction claims the seat books of its seminars first (``seat_books``)."""

    async def decide(events: Sequence[ReceivedEvent], uow: UnitOfWork) -> list[str]:
        outcomes = await service.requests.decide(uow, [request_of(e) for e in events])
        return [e.id for e, o in zip(events, outcomes, strict=True) if not o.created]

    async def cancel(event: ReceivedEvent, uow: UnitOfWork) -> None:
        try:
            await service.cancelling.cancel_requested(uow, cancellation_of(event))
        except RegistrationClosed as closed:
            raise PermanentError(str(closed)) from None

    async def erase(event: ReceivedEvent, uow: UnitOfWork) -> None:
        participant_id = _as(event, ParticipantErasureRequested).participant_id
        await service.erasure.erase(uow, participant_id=participant_id)
        await journey.revoke_certificates(uow, participant_id=participant_id)

    async def scheduled(event: ReceivedEvent, uow: UnitOfWork) -> None:
        data = _as(event, SeminarScheduled)
        await service.seminar_changes.on_seminar_scheduled(
            uow, seminar_id=data.seminar_id, capacity=data.capacity, terms=terms_of(data)
        )
        await journey.on_seminar_scheduled(
            uow,
            seminar_id=data.seminar_id,
            title=data.title,
            kind=data.kind,
            programme=data.programme,
            timezone=data.timezone,
            sessions=data.sessions,
        )

    async def rescheduled(event: ReceivedEvent, uow: UnitOfWork) -> None:
        data = _as(event, SeminarRescheduled)
        await service.seminar_changes.on_capacity_changed(
            uow, seminar_id=data.seminar_id, capacity=data.new_capacity
        )
        await journey.on_seminar_rescheduled(
            uow, seminar_id=data.seminar_id, sessions=data.new_sessions
        )

    async def cancelled(event: ReceivedEvent, uow: UnitOfWork) -> None:
        seminar_id = _as(event, SeminarCancelled).seminar_id
        await service.seminar_changes.on_seminar_cancelled(uow, seminar_id=seminar_id)
        await journey.on_seminar_cancelled(uow, seminar_id=seminar_id)

    async def completed(event: ReceivedEvent, uow: UnitOfWork) -> None:
        data = _as(event, SeminarCompleted)
        await service.seminar_changes.on_seminar_completed(uow, seminar_id=data.seminar_id)
        await journey.on_seminar_completed(
            uow,
            seminar_id=data.seminar_id,
            kind=data.kind,
            programme=data.programme,
            year=data.year,
            attendee_ids=data.attendee_ids,
        )

    return Subscription(
        topics=TOPICS,
        handlers={
            RegistrationRequested: Batch(decide, idempotent=True),
            RegistrationCancellationRequested: cancel,
            ParticipantErasureRequested: erase,
            SeminarScheduled: scheduled,
            SeminarRescheduled: rescheduled,
            SeminarCancelled: cancelled,
            SeminarCompleted: completed,
        },
        keyed=seat_books,
    )


E = TypeVar("E", bound=Event)


def _as(event: ReceivedEvent, kind: type[E]) -> E:
    data = event.data
    assert isinstance(data, kind)  # the subscription routes only this type here
    return data
