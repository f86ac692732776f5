"""The ``metrics`` group's subscription on FastStream's ``TestKafkaBroker``: every
projected event type, on each of the three topics, reaches the projector's batch handler
decoded; the types it does not project are skipped; a record that cannot be decoded goes
to the DLQ with its reason, and its metric names the event type whenever the envelope
parsed. The projector is a mock and no database is involved (see
``seminarops_devtools.testing.in_memory_broker``); the folds run against the real
broker and database in ``tests/integration``."""

from __future__ import annotations

from unittest.mock import AsyncMock

import pytest
from prometheus_client import generate_latest

from metrics.handlers import PROJECTED_TYPES, ProjectionService
from metrics.subscribers import TOPICS, subscription
from seminarops_devtools.testing.in_memory_broker import in_memory_subscription, owner_source
from seminarops_devtools.testing.samples import poison_records, sample_event
from seminarops_shared.events import REGISTRY, Event

SKIPPED = [
    model
    for model in REGISTRY.models().values()
    if model.topic in TOPICS and model not in PROJECTED_TYPES
]


def _projector() -> AsyncMock:
    service = AsyncMock(spec=ProjectionService)
    service.project_batch.return_value = []
    return service


def test_the_subscription_routes_every_projected_type_to_the_projector() -> None:
    service = _projector()
    handlers = subscription(service).handlers
    assert set(handlers) == set(PROJECTED_TYPES)
    assert {handler.handle for handler in handlers.values()} == {service.project_batch}  # type: ignore[union-attr]
    assert SKIPPED  # the topics carry other types too: those must be skipped


@pytest.mark.parametrize("kind", PROJECTED_TYPES, ids=lambda kind: kind.event_type)
async def test_each_projected_type_reaches_the_projector(kind: type[Event]) -> None:
    service = _projector()
    data = sample_event(kind)
    async with in_memory_subscription(subscription(service), group="metrics") as running:
        envelope = await running.publish_event(data)
    service.project_batch.assert_awaited_once()
    [event] = service.project_batch.await_args.args[0]
    assert (event.envelope.id, event.data) == (envelope.id, data)
    assert running.dead_letters == []


@pytest.mark.parametrize("kind", SKIPPED, ids=lambda kind: kind.event_type)
async def test_a_type_it_does_not_project_is_skipped_not_dead_lettered(kind: type[Event]) -> None:
    service = _projector()
    async with in_memory_subscription(subscription(service), group="metrics") as running:
        await running.publish_event(sample_event(kind))
    service.project_batch.assert_not_awaited()
    assert running.dead_letters == []


@pytest.mark.parametrize("topic", TOPICS)
@pytest.mark.parametrize("reason_kind", list(poison_records(TOPICS[0], source="/x")))
async def test_an_undecodable_record_goes_to_the_dlq_with_its_reason(
    topic: str, reason_kind: str
) -> None:
    value = poison_records(topic, source=owner_source(topic))[reason_kind]
    service = _projector()
    async with in_memory_subscription(subscription(service), group="metrics") as running:
        await running.publish_raw(topic, value)
    [letter] = running.dead_letters
    assert letter.topic == running.kafka.topic(topic + ".dlq")
    assert letter.value == value
    assert letter.headers["x-dlq-reason-kind"] == reason_kind
    assert letter.headers["x-dlq-reason"]
    service.project_batch.assert_not_awaited()
    # The dead-lettered count is labelled with the type when the envelope named a known
    # one (invalid data, a forbidden source), "unknown" when it did not.
    dead = [
        line
        for line in generate_latest(running.metrics.registry).decode().splitlines()
        if line.startswith("seminarops_events_processed_total") and "dead_lettered" in line
    ]
    assert len(dead) == 1, dead
    named = reason_kind in {"invalid_data", "forbidden_source"}
    assert ('type="unknown"' not in dead[0]) == named, dead
