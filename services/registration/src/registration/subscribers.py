"""Kafka entry points: map consumed events to the use cases in ``handlers``.

One consumer (group ``registration``) reads ``registration.requests`` and
``seminar.events``. A batch's events are applied in order in one transaction; runs of
consecutive ``registration.requested.v1`` events are decided by one ``decide`` call
(one set of queries for the whole run), everything else one event at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

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
from seminarops_shared.kafka import BatchHandler, PermanentError
from seminarops_shared.unit_of_work import UnitOfWork

from .batching import Claim
from .handlers import (
    CancellationRequest,
    RegistrationClosed,
    RegistrationRequest,
    RegistrationService,
    traced,
)

TOPICS = (REGISTRATION_REQUESTS, SEMINAR_EVENTS)
HANDLED: tuple[type[Event], ...] = (
    RegistrationRequested,
    RegistrationCancellationRequested,
    ParticipantErasureRequested,
    SeminarScheduled,
    SeminarRescheduled,
    SeminarCancelled,
    SeminarCompleted,
)
# Handled types applied without a processed-event marker (see ``batch_handler``).
IDEMPOTENT: tuple[type[Event], ...] = (RegistrationRequested,)


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


def seminars_of(events: Sequence[ReceivedEvent]) -> set[str]:
    """The seminars whose seat books a batch may change (its writers' turns)."""
    return {
        seminar_id
        for event in events
        if isinstance(seminar_id := getattr(event.data, "seminar_id", None), str)
    }


def claim_for(service: RegistrationService) -> Claim:
    """The batch's first statement: take the seat books of its seminars."""

    async def claim(uow: UnitOfWork, events: Sequence[ReceivedEvent]) -> None:
        await service.claim_seminars(uow, seminars_of(events))

    return claim


def batch_handler(service: RegistrationService) -> BatchHandler:
    """The consumer's batch handler over ``service``. Requests carry no processed-event
    marker (``IDEMPOTENT``): a repeat resolves to its registration and changes nothing;
    the handler returns the ids of such repeats."""

    async def handle(events: Sequence[ReceivedEvent], uow: UnitOfWork) -> list[str]:
        unchanged: list[str] = []
        run: list[ReceivedEvent] = []

        async def decide_run() -> None:
            outcomes = await service.decide(uow, [request_of(e) for e in run])
            unchanged.extend(e.id for e, o in zip(run, outcomes, strict=True) if not o.created)
            run.clear()

        for event in events:
            if isinstance(event.data, RegistrationRequested):
                run.append(event)
                continue
            if run:
                await decide_run()
            envelope = event.envelope
            structlog.contextvars.bind_contextvars(event_id=envelope.id, event_type=envelope.type)
            try:
                with traced(envelope.traceparent):
                    await _one(service, event, uow)
            finally:
                structlog.contextvars.unbind_contextvars("event_id", "event_type")
        if run:
            await decide_run()
        return unchanged

    return handle


async def _one(service: RegistrationService, event: ReceivedEvent, uow: UnitOfWork) -> None:
    data = event.data
    match data:
        case RegistrationCancellationRequested():
            try:
                await service.cancel_requested(uow, cancellation_of(event))
            except RegistrationClosed as closed:
                raise PermanentError(str(closed)) from None
        case ParticipantErasureRequested():
            await service.erase(uow, participant_id=data.participant_id)
        case SeminarScheduled():
            await service.on_seminar_scheduled(
                uow, seminar_id=data.seminar_id, capacity=data.capacity
            )
        case SeminarRescheduled():
            await service.on_capacity_changed(
                uow, seminar_id=data.seminar_id, capacity=data.new_capacity
            )
        case SeminarCancelled():
            await service.on_seminar_cancelled(uow, seminar_id=data.seminar_id)
        case SeminarCompleted():
            await service.on_seminar_completed(uow, seminar_id=data.seminar_id)
        case _:  # pragma: no cover - the consumer only passes HANDLED types
            raise PermanentError(f"no handler for {event.envelope.type}")
