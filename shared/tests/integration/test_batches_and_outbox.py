"""Batch handlers in the shared pipeline, and the outbox that stores one document per
transaction, against the real broker and database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi import FastAPI

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.clock import utc_now
from seminarops_shared.events import Event, ReceivedEvent
from seminarops_shared.events.inbound import Participant, RegistrationRequested
from seminarops_shared.events.registration import RegistrationConfirmed
from seminarops_shared.events.topics import REGISTRATION_EVENTS, REGISTRATION_REQUESTS
from seminarops_shared.kafka import PermanentError
from seminarops_shared.outbox import OUTBOX
from seminarops_shared.service import Runtime, create_service_app
from seminarops_shared.subscriptions import Subscription
from seminarops_shared.unit_of_work import UnitOfWork

from .probe_service import ProbeSettings

pytestmark = pytest.mark.integration


class BatchProbe:
    """A batch handler: records every call's batch, writes one document per event with
    ONE insert, emits one event per event; ``rule-breaker*`` participants break a rule."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.effects: Any = None  # the service's `effects` collection, set up at start

    async def handle(self, events: Sequence[ReceivedEvent], uow: UnitOfWork) -> None:
        ids = []
        for event in events:
            data = event.data
            assert isinstance(data, RegistrationRequested)
            ids.append(data.participant.id)
        self.calls.append(ids)
        if any(i.startswith("rule-breaker") for i in ids):
            raise PermanentError("a participant breaks a rule")
        await self.effects.insert_many([{"participant": i} for i in ids], session=uow.session)
        for event in events:
            data = event.data
            assert isinstance(data, RegistrationRequested)
            uow.emit(
                RegistrationConfirmed(
                    registration_id=f"{data.seminar_id}:{data.participant.id}",
                    seminar_id=data.seminar_id,
                    participant_id=data.participant.id,
                    version=1,
                    requested_at=event.envelope.time,
                )
            )


class IdempotentProbe:
    """A batch handler idempotent by natural key (the participant): one effect per
    participant whatever repeats; returns the ids of the events that changed nothing."""

    def __init__(self) -> None:
        self.effects: Any = None

    async def handle(self, events: Sequence[ReceivedEvent], uow: UnitOfWork) -> list[str]:
        unchanged = []
        for event in events:
            data = event.data
            assert isinstance(data, RegistrationRequested)
            key = {"_id": data.participant.id}
            if await self.effects.find_one(key, session=uow.session) is None:
                await self.effects.insert_one({**key, "event": event.id}, session=uow.session)
            else:
                unchanged.append(event.id)
        return unchanged


def batch_probe_app(
    settings: ProbeSettings,
    probe: BatchProbe | IdempotentProbe,
    *,
    idempotent: Sequence[type[Event]] = (),
) -> FastAPI:
    async def setup(runtime: Runtime) -> Runtime:
        probe.effects = runtime.mongo.db["effects"]
        runtime.consume(
            Subscription.batched(
                [REGISTRATION_REQUESTS],
                probe.handle,
                types=[RegistrationRequested],
                idempotent=idempotent,
            )
        )
        return runtime

    return create_service_app(
        settings, title="batch probe", description="batch handler probe", routers=[], setup=setup
    )


def _request(seminar_id: str, participant_id: str) -> RegistrationRequested:
    return RegistrationRequested(seminar_id=seminar_id, participant=Participant(id=participant_id))


async def _effects(app: FastAPI) -> list[str]:
    runtime: Runtime = app.state.runtime
    return [d["participant"] async for d in runtime.mongo.db["effects"].find().sort("_id", 1)]


async def test_a_batch_handler_gets_the_fresh_events_of_a_poll_in_one_call_and_in_order(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = f"sem-{uuid.uuid4().hex[:8]}"
    people = [f"p{n:02d}" for n in range(20)]
    # Published before the consumer starts: its first poll sees all of them.
    envelopes = [await kafka.send_event(_request(seminar, p)) for p in people]
    # The same event id again: a duplicate, skipped by the processed-event markers.
    await kafka.send_envelope(envelopes[3], topic=REGISTRATION_REQUESTS, key=seminar)
    probe = BatchProbe()
    app = batch_probe_app(namespace.settings(ProbeSettings), probe)
    async with running(app):
        await eventually(lambda: _effects(app), until=lambda e: len(e) >= 20, what="effects")
        published = await eventually(
            lambda: kafka.events(REGISTRATION_EVENTS), until=lambda e: len(e) >= 20
        )
        assert sorted(await _effects(app)) == people
    handled = [p for call in probe.calls for p in call]
    assert handled == people  # each once, in partition order
    assert len(probe.calls) < len(people)  # batches, not one call per event
    assert [e.data["participant_id"] for e in published] == people


async def test_a_failing_batch_falls_back_to_one_event_per_transaction(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = f"sem-{uuid.uuid4().hex[:8]}"
    people = ["a", "b", "rule-breaker", "c"]
    for p in people:
        await kafka.send_event(_request(seminar, p))
    probe = BatchProbe()
    app = batch_probe_app(namespace.settings(ProbeSettings), probe)
    async with running(app):
        await eventually(lambda: _effects(app), until=lambda e: len(e) >= 3, what="effects")
        dead = await eventually(
            lambda: kafka.read_all(f"{REGISTRATION_REQUESTS}.dlq"), what="dead letter"
        )
        assert sorted(await _effects(app)) == ["a", "b", "c"]
    assert len(dead) == 1
    assert dict(dead[0].headers)["x-dlq-reason-kind"] == b"rule_violation"
    # The neighbours were applied on their own, each exactly once.
    assert [call for call in probe.calls if len(call) == 1].count(["a"]) == 1


async def test_a_transaction_stores_its_events_as_one_outbox_document_published_in_order(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    app = batch_probe_app(namespace.settings(ProbeSettings), BatchProbe())
    seminar = f"sem-{uuid.uuid4().hex[:8]}"
    async with running(app):
        runtime: Runtime = app.state.runtime
        runtime.relay.round_records = 10_000

        # A relay that cannot publish: the entries stay, and are read back later.
        real_publish_many = runtime.publisher.publish_many

        async def broker_down(*_args: object, **_kwargs: object) -> None:
            raise TimeoutError("broker unreachable")

        runtime.publisher.publish_many = broker_down  # type: ignore[method-assign]

        async def emit(uow: UnitOfWork) -> None:
            for n in range(5):
                uow.emit(
                    RegistrationConfirmed(
                        registration_id=f"{seminar}:t{n}",
                        seminar_id=seminar,
                        participant_id=f"t{n}",
                        version=1,
                        requested_at=utc_now(),
                    )
                )

        await runtime.uow.run(emit)
        docs = await runtime.mongo.db[OUTBOX].find().to_list()
        assert len(docs) == 1
        assert [r["key"] for r in docs[0]["records"]] == [seminar] * 5
        assert docs[0]["count"] == 5
        assert await runtime.outbox.backlog() == 5

        runtime.publisher.publish_many = real_publish_many  # type: ignore[method-assign]
        runtime.outbox.notify()
        published = await eventually(
            lambda: kafka.events(REGISTRATION_EVENTS), until=lambda e: len(e) >= 5
        )
        await eventually(runtime.outbox.backlog, until=lambda n: n == 0, what="outbox drained")
    assert [e.data["participant_id"] for e in published] == [f"t{n}" for n in range(5)]


async def test_idempotent_types_take_no_marker_and_their_repeats_count_as_duplicates(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = f"sem-{uuid.uuid4().hex[:8]}"
    people = ["a", "b", "c"]
    envelopes = [await kafka.send_event(_request(seminar, p)) for p in people]
    # The same event again, and a new event repeating a participant.
    await kafka.send_envelope(envelopes[1], topic=REGISTRATION_REQUESTS, key=seminar)
    await kafka.send_event(_request(seminar, "a"))
    await kafka.send_event(_request(seminar, "d"))
    app = batch_probe_app(
        namespace.settings(ProbeSettings), IdempotentProbe(), idempotent=[RegistrationRequested]
    )

    async def outcomes() -> dict[str, float]:
        from prometheus_client import generate_latest

        counted: dict[str, float] = {}
        for line in generate_latest(app.state.metrics.registry).decode().splitlines():
            if line.startswith("seminarops_events_processed_total"):
                outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
                counted[outcome] = counted.get(outcome, 0) + float(line.rsplit(" ", 1)[1])
        return counted

    async with running(app):
        counted = await eventually(
            outcomes, until=lambda c: sum(c.values()) >= 6, what="six events counted"
        )
        runtime: Runtime = app.state.runtime
        effects = sorted([d["_id"] async for d in runtime.mongo.db["effects"].find()])
        markers = await runtime.mongo.db["processed_events"].count_documents({})
    assert effects == ["a", "b", "c", "d"]
    assert markers == 0
    assert counted == {"processed": 4, "duplicate": 2}


async def test_a_failing_publish_loses_no_outbox_entry_and_keeps_their_order(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    app = batch_probe_app(namespace.settings(ProbeSettings), BatchProbe())
    seminar = f"sem-{uuid.uuid4().hex[:8]}"
    async with running(app):
        runtime: Runtime = app.state.runtime
        real_publish_many = runtime.publisher.publish_many
        broker_down = False

        async def publish_many(records: Any) -> None:
            if broker_down:
                raise TimeoutError("broker unreachable")
            await real_publish_many(records)

        runtime.publisher.publish_many = publish_many  # type: ignore[method-assign]

        async def committed(*names: str) -> None:
            async def emit(uow: UnitOfWork) -> None:
                for name in names:
                    uow.emit(
                        RegistrationConfirmed(
                            registration_id=f"{seminar}:{name}",
                            seminar_id=seminar,
                            participant_id=name,
                            version=1,
                            requested_at=utc_now(),
                        )
                    )

            await runtime.uow.run(emit)

        await committed("a0", "a1")
        await eventually(lambda: kafka.events(REGISTRATION_EVENTS), until=lambda e: len(e) == 2)
        await eventually(runtime.outbox.backlog, until=lambda n: n == 0, what="a deleted")
        broker_down = True
        await committed("b0", "b1")
        await committed("c0", "c1")
        await eventually(
            lambda: _value(runtime.relay.healthy), until=lambda ok: not ok, what="relay failed"
        )
        assert await runtime.outbox.backlog() == 4, "kept while the broker is down"
        broker_down = False
        published = await eventually(
            lambda: kafka.events(REGISTRATION_EVENTS), until=lambda e: len(e) >= 6
        )
        await eventually(runtime.outbox.backlog, until=lambda n: n == 0, what="outbox drained")
    names = [e.data["participant_id"] for e in published]
    assert list(dict.fromkeys(names)) == ["a0", "a1", "b0", "b1", "c0", "c1"]
    assert names.count("a0") == names.count("a1") == 1, "published and deleted: not sent again"


async def _value(value: bool) -> bool:
    return value
