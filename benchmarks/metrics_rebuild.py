"""How long does ``python -m metrics rebuild`` take for N events?

Publishes N realistic events (seminars over four years, registrations with waitlists,
cancellations and promotions, attendance, completions, evaluations, a few erasures) to
a fresh namespace's ``seminar.events``, ``registration.events`` and ``feedback.events``,
each with its owner's ``source``, then times the rebuild (read from the earliest
offset, fold, write a fresh projection set, switch) and prints the result.

    .venv/bin/python benchmarks/metrics_rebuild.py --events 100000

Broker and database: ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI`` (default: the
local ones). The namespace's topics and database are removed afterwards unless
``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner
from pydantic import SecretStr

from metrics.rebuild import rebuild
from metrics.settings import MetricsSettings
from seminarops_shared.events import Event, envelope_for
from seminarops_shared.events.feedback import EvaluationSubmitted
from seminarops_shared.events.registration import (
    ParticipantErased,
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationPromoted,
    RegistrationStatus,
    RegistrationWaitlisted,
)
from seminarops_shared.events.seminar import (
    AttendanceRecorded,
    SeminarCompleted,
    SeminarScheduled,
    SessionTimes,
)
from seminarops_shared.events.topics import (
    ALL_TOPICS,
    FEEDBACK_EVENTS,
    REGISTRATION_EVENTS,
    SEMINAR_EVENTS,
)
from seminarops_shared.events.vocabulary import Kind, Programme, Rating
from seminarops_shared.service import ensure_topics, service_source
from seminarops_shared.settings import KafkaSettings, MongoSettings

COUNTRIES = [
    "FR",
    "DE",
    "IT",
    "ES",
    "PL",
    "PT",
    "RO",
    "GR",
    "SE",
    "FI",
    "AT",
    "BE",
    "NL",
    "CZ",
    "TR",
    "UA",
]
RATINGS = (
    [Rating.EXCELLENT] * 5 + [Rating.VERY_GOOD] * 3 + [Rating.GOOD] * 2 + [Rating.FAIR, Rating.POOR]
)


def realistic_events(count: int, *, seed: int = 7) -> Iterator[Event]:
    """About 65 events per seminar until ``count`` is reached."""
    rng = random.Random(seed)
    teachers = [f"t{i:06d}" for i in range(max(1000, count // 5))]
    profile = {t: (rng.choice(COUNTRIES), f"school-{rng.randrange(3000):04d}") for t in teachers}
    produced = 0
    n = 0
    while produced < count:
        n += 1
        seminar = f"bench-s{n:05d}"
        year = 2022 + n % 4
        kind = rng.choice(list(Kind))
        programme = rng.choice(list(Programme))
        starts = datetime(year, 1 + n % 12, 1 + n % 27, 15, tzinfo=UTC)
        capacity = rng.randint(25, 40)
        batch: list[Event] = [
            SeminarScheduled(
                seminar_id=seminar,
                title=f"Benchmark seminar {n}",
                kind=kind,
                programme=programme,
                language="en",
                timezone="Europe/Brussels",
                sessions=[SessionTimes(starts_at=starts, ends_at=starts + timedelta(hours=1))],
                capacity=capacity,
                year=year,
                host_school_id=f"school-{rng.randrange(3000):04d}",
                open_to_other_schools=rng.random() < 0.8,
            )
        ]
        people = rng.sample(teachers, capacity + rng.randint(0, 8))
        confirmed = people[:capacity]
        waitlisted = people[capacity:]

        def base(p: str, version: int, seminar: str = seminar) -> dict[str, Any]:
            country, school = profile[p]
            return {
                "registration_id": f"{seminar}:{p}",
                "seminar_id": seminar,
                "participant_id": p,
                "country": country,
                "school_id": school,
                "version": version,
            }

        requested = starts - timedelta(days=30)
        batch += [RegistrationConfirmed(**base(p, 1), requested_at=requested) for p in confirmed]
        batch += [
            RegistrationWaitlisted(**base(p, 1), requested_at=requested, position=i + 1)
            for i, p in enumerate(waitlisted)
        ]
        cancelled = rng.sample(confirmed, min(3, len(confirmed)))
        batch += [
            RegistrationCancelled(
                **base(p, 2),
                previous_status=RegistrationStatus.CONFIRMED,
                reason="participant_request",
            )
            for p in cancelled
        ]
        promoted = waitlisted[: len(cancelled)]
        batch += [RegistrationPromoted(**base(p, 2)) for p in promoted]
        seated = [p for p in confirmed if p not in cancelled] + promoted
        attendees = [p for p in seated if rng.random() < 0.8]
        half = len(attendees) // 2
        for part in (attendees[:half], attendees[half:]):
            batch.append(
                AttendanceRecorded(
                    seminar_id=seminar,
                    kind=kind,
                    programme=programme,
                    year=year,
                    participant_ids=part,
                )
            )
        batch.append(
            SeminarCompleted(
                seminar_id=seminar,
                kind=kind,
                programme=programme,
                year=year,
                attendee_ids=attendees,
            )
        )
        batch += [
            EvaluationSubmitted(
                seminar_id=seminar,
                evaluation_id=f"{seminar}:ev:{p}",
                kind=kind,
                programme=programme,
                year=year,
                overall=rng.choice(RATINGS),
                form_id="standard",
                form_version=1,
                participant_id=p,
            )
            for p in attendees
            if rng.random() < 0.55
        ]
        if n % 50 == 0:
            batch.append(
                ParticipantErased(participant_id=rng.choice(attendees or people), erased_at=starts)
            )
        yield from batch[: count - produced]
        produced += min(len(batch), count - produced)


async def publish(kafka: KafkaSettings, events: Iterator[Event], *, partitions: int) -> int:
    """Publish with the default (murmur2) partitioner's choice of partition, one record
    in flight per partition and all partitions in parallel.

    The embedded Tansu broker acknowledges but loses records when several batches for
    one partition are in flight at once (measured: 4947 of 5000 with a default
    producer); one at a time per partition it keeps them all. The count is verified
    against the end offsets afterwards.
    """
    partitioner = DefaultPartitioner()
    all_partitions = list(range(partitions))
    now = datetime.now(UTC)
    lanes: dict[tuple[str, int], list[tuple[bytes, bytes]]] = defaultdict(list)
    for data in events:
        owner = data.topic.split(".")[0]
        value = envelope_for(data, source=service_source(owner), time=now).to_json_bytes()
        key = data.key.encode()
        partition = partitioner(key, all_partitions, all_partitions)
        lanes[(kafka.topic(data.topic), partition)].append((key, value))
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=0)
    await producer.start()
    try:

        async def lane(topic: str, partition: int, records: list[tuple[bytes, bytes]]) -> None:
            for key, value in records:
                await producer.send_and_wait(topic, value, key=key, partition=partition)

        await asyncio.gather(*(lane(t, p, records) for (t, p), records in lanes.items()))
    finally:
        await producer.stop()
    return sum(len(records) for records in lanes.values())


async def stored_records(kafka: KafkaSettings) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()
        tps = [
            TopicPartition(kafka.topic(t), p)
            for t in (SEMINAR_EVENTS, REGISTRATION_EVENTS, FEEDBACK_EVENTS)
            for p in sorted(consumer.partitions_for_topic(kafka.topic(t)) or ())
        ]
        ends = await consumer.end_offsets(tps)
        begins = await consumer.beginning_offsets(tps)
        return sum(ends[tp] - begins[tp] for tp in tps)
    finally:
        await consumer.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--keep", action="store_true", help="keep the namespace's topics and database"
    )
    args = parser.parse_args()

    prefix = f"bench{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        topic_prefix=f"{prefix}.",
        partitions=args.partitions,
    )
    mongo = MongoSettings(
        uri=SecretStr(
            os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
        ),
        database_prefix=f"{prefix}_",
    )
    settings = MetricsSettings(kafka=kafka, mongo=mongo, log_level="WARNING")
    await ensure_topics(settings)
    try:
        started = time.perf_counter()
        sent = await publish(kafka, realistic_events(args.events), partitions=args.partitions)
        publish_s = time.perf_counter() - started
        stored = await stored_records(kafka)
        print(f"published {sent} events in {publish_s:.1f} s ({prefix}); the broker holds {stored}")
        if stored != sent:
            raise SystemExit(f"the broker lost {sent - stored} of {sent} records")

        started = time.perf_counter()
        result = await rebuild(settings)
        rebuild_s = time.perf_counter() - started
        print(json.dumps(result.as_dict(), indent=2))
        print(
            f"rebuild of {result.events_applied} events: {rebuild_s:.1f} s "
            f"({result.events_applied / rebuild_s:,.0f} events/s) "
            f"[read+fold {result.seconds['read_and_fold']} s, "
            f"write+index {result.seconds['write_and_index']} s]"
        )
    finally:
        if not args.keep:
            from pymongo import AsyncMongoClient

            client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
                mongo.uri.get_secret_value()
            )
            await client.drop_database(settings.database_name)
            await client.close()
            admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
            await admin.start()
            try:
                await admin.delete_topics([kafka.topic(t) for t in ALL_TOPICS])
            finally:
                await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
