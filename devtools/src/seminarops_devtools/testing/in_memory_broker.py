"""A service's ``Subscription`` on FastStream's in-memory ``TestKafkaBroker``: routing
and decoding, tested the way FastStream tests subscribers, with no broker or database.

The subscription is registered as a running service registers it: an ``EventConsumer``
handed to ``kafka.subscribe`` (what ``Runtime.consume`` does) on a ``KafkaBroker`` that
``TestKafkaBroker`` patches, so a record published to a topic reaches the subscriber
in-process (a batch of one) through the same parser, decoder and pipeline, and a dead
letter goes out through the same ``DeadLetters`` publisher, to a test subscriber on the
``.dlq`` topic.

What ``TestKafkaBroker`` cannot stand in for is the database: every handler runs inside
a MongoDB transaction (``UnitOfWork``) with the processed-event markers and the outbox,
and ``TestKafkaBroker`` replaces only the broker. So here ``MemoryUnitsOfWork`` keeps the
markers in a set and gives handlers a unit of work without a session, and the service
behind the subscription is a mock. Transactions, markers, the outbox, offsets, consumer
groups and partitions are proven against the real broker and database by the
integration tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from seminarops_shared.clock import utc_now
from seminarops_shared.events import Envelope, Event, envelope_for
from seminarops_shared.events.topics import dead_letter_topic
from seminarops_shared.kafka import DeadLetters, EventConsumer, build_broker, subscribe
from seminarops_shared.observability import ServiceMetrics
from seminarops_shared.publishing import RecordPublisher
from seminarops_shared.service import default_allowed_sources
from seminarops_shared.settings import KafkaSettings
from seminarops_shared.subscriptions import Subscription
from seminarops_shared.unit_of_work import UnitOfWork, UnitOfWorkFactory

# Physical topics carry a prefix, as in every test namespace: the pipeline must strip it.
TOPIC_PREFIX = "in-memory."


class MemoryUnitsOfWork:
    """Stands in for ``UnitOfWorkFactory`` in the pipeline: a unit of work without a
    database session, processed-event markers in a set, emitted events kept in order."""

    def __init__(self) -> None:
        self.processed: set[tuple[str, str]] = set()
        self.emitted: list[Envelope] = []

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[UnitOfWork]:
        # Handlers under test are mocks: nothing reads the session.
        uow = UnitOfWork(session=cast(Any, None), source="/services/in-memory", clock=utc_now)
        yield uow
        self.emitted += [outgoing.envelope for outgoing in uow.outgoing]

    async def claim(self, uow: UnitOfWork, consumer: str, event_ids: Iterable[str]) -> set[str]:
        fresh = {i for i in event_ids if (consumer, i) not in self.processed}
        self.processed |= {(consumer, i) for i in fresh}
        return fresh


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    value: bytes
    headers: dict[str, str]


@dataclass
class InMemorySubscription:
    """The running subscription: publish to it, read what it dead-lettered."""

    broker: KafkaBroker
    kafka: KafkaSettings
    units: MemoryUnitsOfWork
    metrics: ServiceMetrics
    dead_letters: list[DeadLetter] = field(default_factory=list)

    async def publish_event(self, data: Event, *, source: str | None = None) -> Envelope:
        """``data`` in an envelope from its topic's owner (or ``source``), on its topic."""
        envelope = envelope_for(data, source=source or owner_source(data.topic), time=utc_now())
        await self.publish_raw(data.topic, envelope.to_json_bytes(), key=data.key.encode())
        return envelope

    async def publish_raw(self, topic: str, value: bytes, *, key: bytes = b"key-1") -> None:
        """Any bytes as a record of the logical ``topic``."""
        await self.broker.publish(value, topic=self.kafka.topic(topic), key=key)


def _keeper(running: InMemorySubscription, dlq: str) -> Any:
    """A subscriber of ``dlq`` that keeps each dead letter, bytes and headers."""

    async def keep(_body: bytes, message: KafkaMessage) -> None:
        running.dead_letters.append(
            DeadLetter(topic=dlq, value=message.body, headers=dict(message.headers))
        )

    return keep


def owner_source(topic: str) -> str:
    """A ``source`` the pipeline accepts on ``topic``: its owner, or a platform system."""
    allowed = default_allowed_sources()[topic][0]
    return f"{allowed}teacher-portal" if allowed.endswith("/") else allowed


@asynccontextmanager
async def in_memory_subscription(
    subscription: Subscription, *, group: str
) -> AsyncIterator[InMemorySubscription]:
    """``subscription`` consumed by consumer group ``group`` on ``TestKafkaBroker``."""
    kafka = KafkaSettings(bootstrap_servers="in-memory:9092", topic_prefix=TOPIC_PREFIX)
    broker = build_broker(kafka, client_id=group)
    metrics = ServiceMetrics(group)
    units = MemoryUnitsOfWork()
    consumer = EventConsumer(
        group=group,
        subscription=subscription,
        uow=cast(UnitOfWorkFactory, units),  # the one stand-in: see the module docstring
        dead_letters=DeadLetters(RecordPublisher(broker), group=group, metrics=metrics),
        metrics=metrics,
        kafka=kafka,
        allowed_sources=default_allowed_sources(),
    )
    subscribe(broker, consumer, kafka)
    running = InMemorySubscription(broker=broker, kafka=kafka, units=units, metrics=metrics)
    for topic in subscription.topics:
        dlq = kafka.topic(dead_letter_topic(topic))
        broker.subscriber(dlq, group_id=f"{TOPIC_PREFIX}dlq-reader")(_keeper(running, dlq))
    async with TestKafkaBroker(broker) as patched:
        running.broker = patched
        yield running
