"""The ``feedback`` group's subscription on FastStream's ``TestKafkaBroker``: each
consumed event type, on either topic, reaches its handler decoded, once however often
it is delivered; a record that cannot be decoded goes to the DLQ with its reason; the
types the service does not act on are skipped. The service is a mock and no database
is involved (see ``seminarops_devtools.testing.in_memory_broker``); the handlers
themselves run against the real broker and database in ``tests/integration``."""

from __future__ import annotations

from unittest.mock import AsyncMock

import pytest

from feedback.handlers import FeedbackService
from feedback.subscribers import subscription
from seminarops_devtools.testing.in_memory_broker import in_memory_subscription, owner_source
from seminarops_devtools.testing.samples import poison_records, sample_event
from seminarops_shared.events import REGISTRY, Event
from seminarops_shared.events.registration import ParticipantErased
from seminarops_shared.events.seminar import AttendanceRecorded, SeminarCompleted
from seminarops_shared.events.topics import REGISTRATION_EVENTS, SEMINAR_EVENTS

ROUTES: dict[type[Event], str] = {
    SeminarCompleted: "on_seminar_completed",
    AttendanceRecorded: "on_attendance_recorded",
    ParticipantErased: "on_participant_erased",
}
TOPICS = (SEMINAR_EVENTS, REGISTRATION_EVENTS)
SKIPPED = [
    model for model in REGISTRY.models().values() if model.topic in TOPICS and model not in ROUTES
]


def test_every_type_the_subscription_routes_is_tested_here() -> None:
    assert set(subscription(AsyncMock(spec=FeedbackService)).handlers) == set(ROUTES)
    assert SKIPPED  # the topics carry other types too: those must be skipped


@pytest.mark.parametrize("kind", list(ROUTES))
async def test_each_consumed_type_reaches_its_handler_once(kind: type[Event]) -> None:
    service = AsyncMock(spec=FeedbackService)
    data = sample_event(kind)
    async with in_memory_subscription(subscription(service), group="feedback") as running:
        envelope = await running.publish_event(data)
        # Delivered again (at least once): the processed-event marker skips it.
        await running.publish_raw(data.topic, envelope.to_json_bytes())
    handler = getattr(service, ROUTES[kind])
    handler.assert_awaited_once()
    event = handler.await_args.args[0]
    assert (event.envelope.id, event.data) == (envelope.id, data)
    for other in set(ROUTES.values()) - {ROUTES[kind]}:
        getattr(service, other).assert_not_awaited()
    assert running.dead_letters == []


@pytest.mark.parametrize("kind", SKIPPED, ids=lambda kind: kind.event_type)
async def test_a_type_the_service_does_not_act_on_is_skipped_not_dead_lettered(
    kind: type[Event],
) -> None:
    service = AsyncMock(spec=FeedbackService)
    async with in_memory_subscription(subscription(service), group="feedback") as running:
        await running.publish_event(sample_event(kind))
    assert service.mock_calls == []
    assert running.dead_letters == []


@pytest.mark.parametrize("topic", TOPICS)
@pytest.mark.parametrize("reason_kind", list(poison_records(SEMINAR_EVENTS, source="/x")))
async def test_an_undecodable_record_goes_to_the_dlq_with_its_reason(
    topic: str, reason_kind: str
) -> None:
    value = poison_records(topic, source=owner_source(topic))[reason_kind]
    service = AsyncMock(spec=FeedbackService)
    async with in_memory_subscription(subscription(service), group="feedback") as running:
        await running.publish_raw(topic, value)
    [letter] = running.dead_letters
    assert letter.topic == running.kafka.topic(topic + ".dlq")
    assert letter.value == value
    assert letter.headers["x-dlq-reason-kind"] == reason_kind
    assert letter.headers["x-dlq-reason"]
    assert letter.headers["x-dlq-consumer-group"] == "feedback"
    assert service.mock_calls == []
