"""The ``registration`` group's subscription on FastStream's ``TestKafkaBroker``: each
consumed event type, on either topic, reaches its use case decoded; a record that cannot
be decoded goes to the DLQ with its reason; a cancellation for a closed seminar is
dead-lettered as a rule violation. The service is a mock and no database is involved
(see ``seminarops_devtools.testing.in_memory_broker``); the use cases themselves run
against the real broker and database in ``tests/integration``."""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any
from unittest.mock import AsyncMock, call

import pytest

from registration.handlers import (
    Outcome,
    OutcomeStatus,
    RegistrationClosed,
)
from registration.subscribers import TOPICS, seminars_of, subscription, terms_of
from seminarops_devtools.testing.in_memory_broker import in_memory_subscription, owner_source
from seminarops_devtools.testing.samples import poison_records, sample_event
from seminarops_shared.events import Envelope, Event
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
from seminarops_shared.keyed import KeyedWrites

# Per consumed type: the use case it reaches, and what that call must carry.
Check = Callable[[Any, Any, Envelope], None]


def _requested(args: Any, data: Any, envelope: Envelope) -> None:
    [request] = args.args[1]
    assert (request.seminar_id, request.participant) == (data.seminar_id, data.participant)
    assert (request.request_id, request.source) == (envelope.id, envelope.source)


def _cancellation(args: Any, data: Any, envelope: Envelope) -> None:
    cancellation = args.args[1]
    assert (cancellation.seminar_id, cancellation.participant_id) == (
        data.seminar_id,
        data.participant_id,
    )
    assert cancellation.event_id == envelope.id


def _called_with(**fields: str) -> Check:
    """The use case got these keyword arguments: each the named field of the event's data."""

    def check(args: Any, data: Any, _envelope: Envelope) -> None:
        assert args.kwargs == {name: getattr(data, field) for name, field in fields.items()}

    return check


def _scheduled(args: Any, data: Any, _envelope: Envelope) -> None:
    assert args.kwargs == {
        "seminar_id": data.seminar_id,
        "capacity": data.capacity,
        "terms": terms_of(data),
    }


ROUTES: dict[type[Event], tuple[str, Check]] = {
    RegistrationRequested: ("requests.decide", _requested),
    RegistrationCancellationRequested: ("cancelling.cancel_requested", _cancellation),
    ParticipantErasureRequested: (
        "erasure.erase",
        _called_with(participant_id="participant_id"),
    ),
    SeminarScheduled: (
        "seminar_changes.on_seminar_scheduled",
        _scheduled,
    ),
    SeminarRescheduled: (
        "seminar_changes.on_capacity_changed",
        _called_with(seminar_id="seminar_id", capacity="new_capacity"),
    ),
    SeminarCancelled: (
        "seminar_changes.on_seminar_cancelled",
        _called_with(seminar_id="seminar_id"),
    ),
    SeminarCompleted: (
        "seminar_changes.on_seminar_completed",
        _called_with(seminar_id="seminar_id"),
    ),
}
USE_CASES = {name for name, _ in ROUTES.values()}


def _service() -> AsyncMock:
    """The use cases, each a mock (``service.requests.decide``, ...)."""
    service = AsyncMock()
    service.requests.decide.side_effect = lambda _uow, requests: [
        Outcome(f"reg-{i}", OutcomeStatus.CONFIRMED, created=True) for i in range(len(requests))
    ]
    return service


def _use_case(service: AsyncMock, name: str) -> AsyncMock:
    use_case: AsyncMock = attrgetter(name)(service)
    return use_case


def _subscription(service: AsyncMock) -> Any:
    seat_books = KeyedWrites(keys_of=seminars_of, claim=service.seminars.claim)
    # The participant journey (certificates, seminar facts) is tested on its own.
    return subscription(service, journey=AsyncMock(), seat_books=seat_books)


def test_every_type_the_subscription_routes_is_tested_here() -> None:
    assert set(_subscription(_service()).handlers) == set(ROUTES)


@pytest.mark.parametrize("kind", list(ROUTES))
async def test_each_consumed_type_reaches_its_use_case(kind: type[Event]) -> None:
    service = _service()
    data = sample_event(kind)
    async with in_memory_subscription(_subscription(service), group="registration") as running:
        envelope = await running.publish_event(data)
    name, check = ROUTES[kind]
    use_case = _use_case(service, name)
    use_case.assert_awaited_once()
    check(use_case.await_args, data, envelope)
    for other in USE_CASES - {name}:
        _use_case(service, other).assert_not_awaited()
    # The seat book of the event's seminar (none for an erasure) is claimed first, in the
    # same unit of work.
    seminar_id = getattr(data, "seminar_id", None)
    books = {seminar_id} if seminar_id else set()
    assert service.seminars.claim.await_args_list == [call(use_case.await_args.args[0], books)]
    assert running.dead_letters == []


async def test_a_cancellation_for_a_closed_seminar_is_dead_lettered_as_a_rule_violation() -> None:
    service = _service()
    service.cancelling.cancel_requested.side_effect = RegistrationClosed("the seminar is completed")
    async with in_memory_subscription(_subscription(service), group="registration") as running:
        await running.publish_event(sample_event(RegistrationCancellationRequested))
    [letter] = running.dead_letters
    assert letter.headers["x-dlq-reason-kind"] == "rule_violation"
    assert "the seminar is completed" in letter.headers["x-dlq-reason"]
    service.cancelling.cancel_requested.assert_awaited_once()  # a rule: not tried again


@pytest.mark.parametrize("topic", TOPICS)
@pytest.mark.parametrize("reason_kind", list(poison_records(TOPICS[0], source="/platform/x")))
async def test_an_undecodable_record_goes_to_the_dlq_with_its_reason(
    topic: str, reason_kind: str
) -> None:
    value = poison_records(topic, source=owner_source(topic))[reason_kind]
    service = _service()
    async with in_memory_subscription(_subscription(service), group="registration") as running:
        await running.publish_raw(topic, value)
    [letter] = running.dead_letters
    assert letter.topic == running.kafka.topic(topic + ".dlq")
    assert letter.value == value
    assert letter.headers["x-dlq-reason-kind"] == reason_kind
    assert letter.headers["x-dlq-reason"]
    assert letter.headers["x-dlq-original-topic"] == running.kafka.topic(topic)
    assert service.mock_calls == []
