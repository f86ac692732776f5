"""The consumer's lanes against the real broker and database: partitions of a keyed
subscription applied side by side, each in its order; offsets committed only once the
transaction that applied the records committed; records whose transaction committed
but whose offsets did not are redelivered and absorbed. (Their logic with fakes:
``shared/tests/unit/test_lanes.py``.)"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import generate_latest
from pymongo import AsyncMongoClient

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.clock import utc_now
from seminarops_shared.events import envelope_for
from seminarops_shared.events.inbound import Participant, RegistrationRequested
from seminarops_shared.events.topics import REGISTRATION_REQUESTS
from seminarops_shared.lanes import OffsetCommits

from .probe_service import Behaviour, ProbeSettings, effect, probe_app

pytestmark = pytest.mark.integration


def _seminar() -> str:
    return f"sem-{uuid.uuid4().hex[:8]}"


async def _send(kafka: KafkaProbe, seminar_id: str, participant_id: str, partition: int) -> None:
    envelope = envelope_for(
        RegistrationRequested(seminar_id=seminar_id, participant=Participant(id=participant_id)),
        source="/platform/teacher-portal",
        time=utc_now(),
    )
    await kafka.send_envelope(
        envelope, topic=REGISTRATION_REQUESTS, key=seminar_id, partition=partition
    )


async def _participants(app: Any, seminar_id: str) -> list[str]:
    doc = await effect(app, seminar_id)
    return list(doc["participants"]) if doc else []


def _counted(app: Any, outcome: str) -> float:
    text = generate_latest(app.state.metrics.registry).decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("seminarops_events_processed_total") and f'outcome="{outcome}"' in line
    )


async def test_two_seminars_on_two_partitions_are_applied_side_by_side_each_in_its_order(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    behaviour = Behaviour()
    app = probe_app(namespace.settings(ProbeSettings), behaviour, keyed=True)
    first, second = _seminar(), _seminar()
    async with running(app):
        # The first seminar's first request is applied only once the second seminar's
        # first request was, in another transaction: one lane for both partitions would
        # wait for ever (the request would fail after 10 s and be tried again).
        for participant in ("after:b0", "a1", "a2", "a3"):
            await _send(kafka, first, participant, partition=0)
        for participant in ("b0", "b1", "b2"):
            await _send(kafka, second, participant, partition=1)
        await eventually(
            lambda: _participants(app, first), until=lambda p: len(p) == 4, what="first seminar"
        )
        await eventually(
            lambda: _participants(app, second), until=lambda p: len(p) == 3, what="second seminar"
        )
        assert await _participants(app, first) == ["after:b0", "a1", "a2", "a3"]
        assert await _participants(app, second) == ["b0", "b1", "b2"]
    assert behaviour.calls["after:b0"] == 1, "applied at the first attempt, beside the other"


async def _committed(namespace: Namespace, partition: int) -> int | None:
    consumer = AIOKafkaConsumer(
        group_id=namespace.kafka().group("probe"),
        enable_auto_commit=False,
        **namespace.kafka_client_options(),
    )
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(
            TopicPartition(namespace.topic(REGISTRATION_REQUESTS), partition)
        )
        return offset
    finally:
        await consumer.stop()


async def test_offsets_are_committed_only_after_the_transaction_that_applied_them(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    behaviour = Behaviour()
    app = probe_app(namespace.settings(ProbeSettings), behaviour)
    seminar = _seminar()
    async with running(app):
        await _send(kafka, seminar, "first", partition=0)
        await eventually(lambda: _participants(app, seminar), what="first applied")
        await eventually(
            lambda: _committed(namespace, 0), until=lambda o: o == 1, what="first committed"
        )
        # The next request's transaction is open and waits; the one after it is fetched
        # and queued meanwhile. Neither offset may be committed before their writes.
        await _send(kafka, seminar, "held:second", partition=0)
        await eventually(lambda: _calls(behaviour, "held:second"), what="second in its transaction")
        await _send(kafka, seminar, "third", partition=0)
        consumer = app.state.runtime.consumers[0]
        await eventually(lambda: _held(consumer), until=lambda n: n == 1, what="third queued")
        assert await _committed(namespace, 0) == 1
        assert await _participants(app, seminar) == ["first"]
        behaviour.release("second").set()
        await eventually(
            lambda: _committed(namespace, 0), until=lambda o: o == 3, what="both committed"
        )
        assert await _participants(app, seminar) == ["first", "held:second", "third"]


async def _calls(behaviour: Behaviour, participant_id: str) -> int:
    return behaviour.calls[participant_id]


async def test_records_applied_but_not_committed_are_redelivered_and_absorbed(
    namespace: Namespace, kafka: KafkaProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    seminar = _seminar()
    crashed = probe_app(namespace.settings(ProbeSettings))
    with monkeypatch.context() as patched:
        # As if the process died between each transaction and the commit of its offsets.
        patched.setattr(OffsetCommits, "note", lambda self, ends: None)
        async with running(crashed):
            for participant in ("p1", "p2", "p3"):
                await _send(kafka, seminar, participant, partition=0)
            await eventually(
                lambda: _participants(crashed, seminar), until=lambda p: len(p) == 3, what="three"
            )
    assert await _committed(namespace, 0) is None

    successor = probe_app(namespace.settings(ProbeSettings))
    async with running(successor):
        await _send(kafka, seminar, "p4", partition=0)
        await eventually(
            lambda: _participants(successor, seminar), until=lambda p: len(p) == 4, what="p4"
        )
        await eventually(lambda: _committed(namespace, 0), until=lambda o: o == 4, what="offsets")
        assert await _participants(successor, seminar) == ["p1", "p2", "p3", "p4"]
        assert _counted(successor, "duplicate") == 3, "the three redelivered, absorbed"
        assert _counted(successor, "processed") == 1


async def test_shutdown_applies_what_the_lanes_hold_and_commits_it(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    behaviour = Behaviour()
    app = probe_app(namespace.settings(ProbeSettings), behaviour)
    seminar = _seminar()
    async with running(app):
        consumer = app.state.runtime.consumers[0]
        await _send(kafka, seminar, "held:first", partition=0)
        await eventually(lambda: _calls(behaviour, "held:first"), what="first in its transaction")
        for participant in ("q1", "q2"):
            await _send(kafka, seminar, participant, partition=0)
        await eventually(
            lambda: _held(consumer), until=lambda n: n == 2, what="two queued behind it"
        )

        async def release_once_closing() -> None:
            await eventually(lambda: _closing(consumer), what="shutdown begun")
            behaviour.release("first").set()

        releasing = asyncio.create_task(release_once_closing())
    await releasing
    assert await _stored_participants(namespace, app, seminar) == ["held:first", "q1", "q2"]
    assert await _committed(namespace, 0) == 3


async def test_every_record_is_applied_while_four_producers_write_one_partition(
    namespace: Namespace,
) -> None:
    """The embedded broker can answer a fetch with a batch written after one it does
    not show yet, while several producers write a partition (``offset_gaps``; it lost
    a registration of the season benchmark). Four producers, each a seminar's 750
    requests, all on partition 0, consumed as they are written: every request is
    applied once, each seminar's in its order."""
    behaviour = Behaviour()
    app = probe_app(namespace.settings(ProbeSettings), behaviour, keyed=True)
    seminars = [_seminar() for _ in range(4)]
    per_seminar = 750
    topic = namespace.topic(REGISTRATION_REQUESTS)

    async def produce(seminar_id: str) -> None:
        producer = AIOKafkaProducer(**namespace.kafka_client_options(), linger_ms=0)
        await producer.start()
        try:
            for batch in range(0, per_seminar, 8):  # eight sends in flight, as a relay has
                sent = [
                    await producer.send(
                        topic,
                        envelope_for(
                            RegistrationRequested(
                                seminar_id=seminar_id, participant=Participant(id=f"p{n}")
                            ),
                            source="/platform/teacher-portal",
                            time=utc_now(),
                        ).to_json_bytes(),
                        key=seminar_id.encode(),
                        partition=0,
                    )
                    for n in range(batch, min(batch + 8, per_seminar))
                ]
                await asyncio.gather(*sent)
        finally:
            await producer.stop()

    async with running(app):
        await asyncio.gather(*(produce(seminar) for seminar in seminars))
        for seminar in seminars:
            await eventually(
                lambda seminar=seminar: _participants(app, seminar),  # type: ignore[misc]
                until=lambda p: len(p) >= per_seminar,
                timeout_s=60,
                what=f"every request of {seminar}",
            )
        for seminar in seminars:
            assert await _participants(app, seminar) == [f"p{n}" for n in range(per_seminar)]


async def _stored_participants(namespace: Namespace, app: Any, seminar_id: str) -> list[str]:
    """As stored, read after the app has stopped (its own client is closed)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(namespace.mongodb_uri)
    try:
        db = client[app.state.runtime.settings.database_name]
        doc = await db["effects"].find_one({"_id": seminar_id})
    finally:
        await client.close()
    return list(doc["participants"]) if doc else []


async def _held(consumer: Any) -> int:
    return int(consumer.held_records)


async def _closing(consumer: Any) -> bool:
    return bool(consumer.closing)
