"""Requests published by different Kafka clients for the same seminars.

librdkafka (confluent-kafka, kcat, node-rdkafka) partitions a keyed record by CRC32 of
the key by default (``consistent_random``); the Java client, KafkaJS's default and
aiokafka use murmur2. With the same key (the seminar id) the two can pick different
partitions, so one seminar's requests are consumed from two partitions, in no fixed
order between them. Correctness must not depend on it (contract, "Clients"): exactly
``capacity`` confirmed, one registration per participant, each request decided once,
duplicates absorbed. The waiting list is in *decision* order (the order in which the
seminar's seat book hands out ``waitlist_seq``; ``registration.events`` carries the
decisions in that order), which keeps publishing order only within one partition
(docs/clients.md). A cancellation may overtake its request (the two on different
partitions): it is kept and applied when the request is decided, so the outcome is the
one publishing order gives (the envelopes' ``time``).

librdkafka 2.16 (the confluent-kafka wheel) talks to the embedded broker (Tansu 0.6)
with its default settings: no ``api.version.request`` or ``broker.version.fallback``
tweaks are needed.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import KafkaError, Message, Producer

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.clock import utc_now
from seminarops_shared.events import Envelope, Event, envelope_for
from seminarops_shared.events.inbound import RegistrationCancellationRequested
from seminarops_shared.events.topics import REGISTRATION_REQUESTS

from ..conftest import http_body, new_id, requested
from .conftest import (
    database,
    decisions,
    registration_app,
    registrations,
    schedule,
    seat_book,
    statuses,
)

pytestmark = pytest.mark.integration

PARTITIONS = 6
CAPACITY = 4
LIBRDKAFKA_SOURCE = "/platform/partner-portal"
AIOKAFKA_SOURCE = "/platform/teacher-portal"
DECISIONS = {"registration.confirmed.v1", "registration.waitlisted.v1", "registration.rejected.v1"}


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The Java client's (and aiokafka's, KafkaJS's) partition for ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def crc32_partition(key: bytes, partitions: int) -> int:
    """librdkafka's default (``consistent_random``) partition for a non-empty ``key``."""
    return zlib.crc32(key) % partitions


def seminar_on_two_partitions() -> str:
    """A seminar id whose two partitioners disagree (5 ids in 6 do, with 6 partitions)."""
    while True:
        seminar = new_id("sem")
        key = seminar.encode()
        if crc32_partition(key, PARTITIONS) != murmur2_partition(key, PARTITIONS):
            return seminar


def librdkafka_publish(bootstrap_servers: str, topic: str, records: list[Envelope]) -> list[int]:
    """Publish with confluent-kafka's defaults (partitioner ``consistent_random``), key =
    subject (the seminar id), in order; returns the partition of each record. Blocking:
    run it in a thread."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "client.id": "test-librdkafka",
            "acks": "all",
            # The embedded broker: no idempotent producer (on real Kafka: true).
            "enable.idempotence": False,
            "linger.ms": 5,
        }
    )
    partitions: list[int] = [-1] * len(records)
    errors: list[KafkaError] = []

    def delivered(index: int) -> Any:
        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                errors.append(error)
            else:
                partitions[index] = message.partition()

        return report

    try:
        for index, envelope in enumerate(records):
            assert envelope.subject is not None
            producer.produce(
                topic,
                key=envelope.subject.encode(),
                value=envelope.to_json_bytes(),
                on_delivery=delivered(index),
            )
            producer.poll(0)
        assert producer.flush(30) == 0, "librdkafka did not deliver everything"
    finally:
        producer.close()
    assert not errors, errors
    return partitions


def envelope(data: Event, source: str) -> Envelope:
    return envelope_for(data, source=source, time=utc_now())


async def test_requests_for_one_seminar_over_two_partitioners_and_http(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminars = [seminar_on_two_partitions(), seminar_on_two_partitions()]
    topic = namespace.topic(REGISTRATION_REQUESTS)
    # Per seminar: six people through librdkafka, five through aiokafka, four over HTTP.
    # l0 and l1 are delivered twice by librdkafka; a0's very event also by librdkafka and
    # l2's also by aiokafka (the same event id on two partitions); l5 also asks over HTTP.
    rd_people = [f"l{i}" for i in range(6)]
    aio_people = [f"a{i}" for i in range(5)]
    http_people = [f"h{i}" for i in range(4)]
    everyone = sorted(rd_people + aio_people + http_people)
    rd_records: list[Envelope] = []
    aio_records: list[Envelope] = []
    for person in range(6):  # the seminars' requests interleaved, as a busy client would
        for seminar in seminars:
            if person < len(rd_people):
                sent = envelope(requested(seminar, rd_people[person]), LIBRDKAFKA_SOURCE)
                rd_records += [sent, sent] if person < 2 else [sent]
                if person == 2:
                    aio_records.append(sent)
            if person < len(aio_people):
                sent = envelope(requested(seminar, aio_people[person]), AIOKAFKA_SOURCE)
                aio_records.append(sent)
                if person == 0:
                    rd_records.append(sent)
    # Whose requests came on one partition only, each stream in publishing order.
    crossed = {"a0", "l2", "l5"}
    streams = {
        "librdkafka": [p for p in rd_people if p not in crossed],
        "aiokafka": [p for p in aio_people if p not in crossed],
        "http": http_people,
    }

    async def aiokafka_publish() -> None:
        for sent in aio_records:
            assert sent.subject is not None
            await kafka.send_envelope(sent, topic=REGISTRATION_REQUESTS, key=sent.subject)

    async def http_publish(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await client.post("/v1/registrations", json=http_body(seminar, person))
            for seminar in seminars
            for person in [*http_people, "h0", "l5"]
        ]

    app = registration_app(namespace, kafka=namespace.kafka(partitions=PARTITIONS))
    async with running(app) as client:
        for seminar in seminars:
            await schedule(app, kafka, seminar, CAPACITY)
        rd_partitions, _, responses = await asyncio.gather(
            asyncio.to_thread(
                librdkafka_publish, namespace.kafka_bootstrap_servers, topic, rd_records
            ),
            aiokafka_publish(),
            http_publish(client),
        )
        for seminar in seminars:
            await eventually(
                lambda s=seminar: statuses(app, s),
                until=lambda c: c.total() == len(everyone),
                what=f"every request for {seminar} decided",
            )
        decided = {s: await registrations(app, s) for s in seminars}
        inbound = await kafka.read_all(REGISTRATION_REQUESTS)

        # Cancellations of decided registrations (those that overtake their requests:
        # the next test): the first confirmed one through librdkafka (and the same event
        # again through aiokafka), a waitlisted one through aiokafka, another one over
        # HTTP. Neither is the head of the queue, which is promoted into the freed seat.
        plans: dict[str, dict[str, str]] = {}
        rd_cancels: list[Envelope] = []
        for seminar in seminars:
            queue = _queue(decided[seminar])
            confirmed = sorted(d["participant_id"] for d in decided[seminar] if not _seq(d))
            plans[seminar] = {
                "librdkafka": confirmed[0],
                "aiokafka": queue[-1],
                "http": queue[-3],
                "head": queue[0],
            }
            cancel = envelope(
                RegistrationCancellationRequested(seminar_id=seminar, participant_id=confirmed[0]),
                LIBRDKAFKA_SOURCE,
            )
            rd_cancels.append(cancel)
            await kafka.send_envelope(cancel, topic=REGISTRATION_REQUESTS, key=seminar)
            await kafka.send_event(
                RegistrationCancellationRequested(seminar_id=seminar, participant_id=queue[-1]),
                source=AIOKAFKA_SOURCE,
            )
        cancel_partitions = await asyncio.to_thread(
            librdkafka_publish, namespace.kafka_bootstrap_servers, topic, rd_cancels
        )
        http_cancels = []
        for seminar in seminars:
            reg_id = next(
                d["_id"] for d in decided[seminar] if d["participant_id"] == plans[seminar]["http"]
            )
            http_cancels.append(await client.post(f"/v1/registrations/{reg_id}/cancel"))

        final: dict[str, Counter[str]] = {}
        for seminar in seminars:
            final[seminar] = await eventually(
                lambda s=seminar: statuses(app, s),
                until=lambda c: c["cancelled"] == 3,
                what=f"cancellations for {seminar} applied",
            )
        after = {s: await registrations(app, s) for s in seminars}
        books = {s: await seat_book(app, s) for s in seminars}
        waiting = {
            s: (
                await client.get(f"/v1/seminars/{s}/registrations", params={"status": "waitlisted"})
            ).json()
            for s in seminars
        }
        # 15 decisions, 3 cancellations and 1 promotion per seminar.
        events = {
            s: await eventually(
                lambda s=s: decisions(kafka, s),
                until=lambda e: len({x.id for x in e}) >= len(everyone) + 4,
                what=f"events of {s} published",
            )
            for s in seminars
        }

    # The clients really disagree: each seminar's requests came on two partitions.
    on_partitions: dict[str, set[int]] = defaultdict(set)
    for record in inbound:
        on_partitions[Envelope.from_json_bytes(record.value or b"").subject or ""].add(
            record.partition
        )
    for seminar in seminars:
        key = seminar.encode()
        rd_expected = crc32_partition(key, PARTITIONS)
        aio_expected = murmur2_partition(key, PARTITIONS)
        assert rd_expected != aio_expected
        assert {
            p for p, r in zip(rd_partitions, rd_records, strict=True) if r.subject == seminar
        } == {rd_expected}
        assert on_partitions[seminar] == {rd_expected, aio_expected}
    assert set(cancel_partitions) == {crc32_partition(s.encode(), PARTITIONS) for s in seminars}

    # HTTP: a new registration is 201; a repeat (h0 again, or l5 whose Kafka request
    # may have been decided first) answers with the existing one.
    assert {r.status_code for r in responses} <= {200, 201}
    assert all(r.json()["status"] in {"confirmed", "waitlisted"} for r in responses)
    by_id: dict[str, set[str]] = defaultdict(set)
    for response in responses:
        by_id[response.json()["id"]].add(response.json()["status"])
    assert len(by_id) == len(seminars) * (len(http_people) + 1)
    assert all(r.status_code == 200 for r in http_cancels)
    assert all(r.json()["status"] == "cancelled" for r in http_cancels)

    for seminar in seminars:
        docs, plan, book = after[seminar], plans[seminar], books[seminar]
        # No participant twice; exactly capacity confirmed (the freed seat refilled).
        assert sorted(d["participant_id"] for d in docs) == everyone
        assert final[seminar] == Counter(confirmed=CAPACITY, waitlisted=8, cancelled=3)
        assert book is not None
        assert (book["confirmed_count"], book["waitlisted_count"]) == (CAPACITY, 8)
        status = {d["participant_id"]: d["status"] for d in docs}
        assert status[plan["librdkafka"]] == status[plan["aiokafka"]] == "cancelled"
        assert status[plan["http"]] == "cancelled"
        assert status[plan["head"]] == "confirmed"

        # Every request decided exactly once, whatever client or path, however often.
        published = list({e.id: e for e in events[seminar]}.values())
        decided_once = Counter(e.data["registration_id"] for e in published if e.type in DECISIONS)
        assert set(decided_once.values()) == {1}
        assert set(decided_once) == {d["_id"] for d in docs}
        kinds = Counter(e.type for e in published)
        assert kinds == Counter(
            {
                "registration.confirmed.v1": CAPACITY,
                "registration.waitlisted.v1": len(everyone) - CAPACITY,
                "registration.cancelled.v1": 3,
                "registration.promoted.v1": 1,
            }
        )
        promoted = [e.data["participant_id"] for e in published if e.type.endswith("promoted.v1")]
        assert promoted == [plan["head"]]

        # The waiting list is in decision order: waitlist_seq 1..n handed out by the
        # seat book, the order of the waitlisted decisions on registration.events, and
        # each decision's announced position.
        queue = _queue(decided[seminar])
        assert [_seq(d) for d in sorted(decided[seminar], key=_seq) if _seq(d)] == list(
            range(1, len(everyone) - CAPACITY + 1)
        )
        waitlisted = [e for e in published if e.type == "registration.waitlisted.v1"]
        assert [e.data["participant_id"] for e in waitlisted] == queue
        assert [e.data["position"] for e in waitlisted] == list(range(1, len(queue) + 1))
        # Publishing order is kept only within one partition (one client's stream, or
        # the HTTP calls made one after another): seats first, then the queue in order.
        rank = {d["participant_id"]: _seq(d) for d in decided[seminar]}
        for stream, people in streams.items():
            ranks = [rank[p] for p in people]
            assert ranks == sorted(ranks), (stream, people, ranks)
        # The list operators read: the queue without those who left, in the same order.
        listed = [r["participant_id"] for r in waiting[seminar]["registrations"]]
        assert listed == [p for p in queue if status[p] == "waitlisted"]
        assert waiting[seminar]["waitlisted"] == len(listed) == 8


async def test_cancellations_that_overtake_their_requests_on_another_partition(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    """Requests through aiokafka (murmur2), cancellations through librdkafka (CRC32): the
    two land on different partitions. o0 and o1's cancellations are consumed before
    their requests (published first, with a later ``time``); r0 and r1's race theirs;
    s0's cancellation was published before its request (a stale one) and does not
    cancel it."""
    seminar = seminar_on_two_partitions()
    topic = namespace.topic(REGISTRATION_REQUESTS)
    people = ["o0", "o1", "r0", "r1", "s0", "k0", "k1"]
    # Publishing times a second apart (the order compares milliseconds, and a tie
    # goes to the cancellation).
    now = utc_now()
    stale = envelope_for(
        RegistrationCancellationRequested(seminar_id=seminar, participant_id="s0"),
        source=LIBRDKAFKA_SOURCE,
        time=now - timedelta(seconds=1),
    )
    asks = {
        p: envelope_for(requested(seminar, p), source=AIOKAFKA_SOURCE, time=now) for p in people
    }
    cancels = {
        p: envelope_for(
            RegistrationCancellationRequested(seminar_id=seminar, participant_id=p),
            source=LIBRDKAFKA_SOURCE,
            time=now + timedelta(seconds=1),
        )
        for p in ["o0", "o1", "r0", "r1"]
    }
    cancelled = set(cancels)

    async def aiokafka_publish(records: list[Envelope]) -> None:
        for sent in records:
            await kafka.send_envelope(sent, topic=REGISTRATION_REQUESTS, key=seminar)

    async def kept() -> list[dict[str, Any]]:
        return await database(app)["pending_cancellations"].find({"seminar_id": seminar}).to_list()

    app = registration_app(namespace, kafka=namespace.kafka(partitions=PARTITIONS))
    async with running(app):
        await schedule(app, kafka, seminar, CAPACITY)
        overtaking = [cancels["o0"], cancels["o1"], stale]
        await asyncio.to_thread(
            librdkafka_publish, namespace.kafka_bootstrap_servers, topic, overtaking
        )
        await eventually(kept, until=lambda k: len(k) == 3, what="cancellations kept first")
        await asyncio.gather(
            aiokafka_publish([asks[p] for p in people]),
            asyncio.to_thread(
                librdkafka_publish,
                namespace.kafka_bootstrap_servers,
                topic,
                [cancels["r0"], cancels["r1"], cancels["o0"]],  # o0's again, too
            ),
        )
        final = await eventually(
            lambda: statuses(app, seminar),
            until=lambda c: c.total() == len(people) and c["cancelled"] == len(cancelled),
            what="every request decided and every cancellation applied",
        )
        # A marker after everything on both partitions: the duplicate was consumed.
        await aiokafka_publish([envelope(requested(seminar, "marker"), AIOKAFKA_SOURCE)])
        await asyncio.to_thread(
            librdkafka_publish,
            namespace.kafka_bootstrap_servers,
            topic,
            [
                envelope(
                    RegistrationCancellationRequested(seminar_id=seminar, participant_id="nobody"),
                    LIBRDKAFKA_SOURCE,
                )
            ],
        )
        await eventually(
            lambda: statuses(app, seminar),
            until=lambda c: c.total() == len(people) + 1,
            what="marker decided",
        )
        left = await eventually(kept, until=lambda k: len(k) == 1, what="marker kept")
        docs = await registrations(app, seminar)
        book = await seat_book(app, seminar)
        events = await eventually(
            lambda: decisions(kafka, seminar),
            until=lambda e: len({x.id for x in e}) >= len(people) + 1 + len(cancelled),
            what="events published",
        )

    status = {d["participant_id"]: d["status"] for d in docs}
    assert {p for p, s in status.items() if s == "cancelled"} == cancelled
    assert final == Counter(confirmed=CAPACITY - 1, cancelled=len(cancelled))
    assert status["s0"] == "confirmed"  # the stale cancellation came before its request
    assert book is not None
    # 3 active of 7, plus the marker: all seated, nobody waiting while a seat is free.
    assert (book["confirmed_count"], book["waitlisted_count"]) == (CAPACITY, 0)
    assert book["pending_cancellations_count"] == 1
    assert [k["participant_id"] for k in left] == ["nobody"]
    published = list({e.id: e for e in events}.values())
    decided_once = Counter(e.data["participant_id"] for e in published if e.type in DECISIONS)
    assert decided_once == Counter([*people, "marker"])
    cancellations = Counter(
        e.data["participant_id"] for e in published if e.type == "registration.cancelled.v1"
    )
    assert cancellations == Counter(cancelled)


def _seq(doc: dict[str, Any]) -> int:
    """The doc's place in the queue (0 for a seat)."""
    return int(doc.get("waitlist_seq") or 0)


def _queue(docs: list[dict[str, Any]]) -> list[str]:
    """Waitlisted participants by ``waitlist_seq``."""
    return [d["participant_id"] for d in sorted(docs, key=_seq) if _seq(d)]
