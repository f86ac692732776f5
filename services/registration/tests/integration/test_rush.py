"""A small registration rush: Kafka and HTTP at once, duplicates, one seminar."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.clock import utc_now
from seminarops_shared.events import envelope_for
from seminarops_shared.events.topics import REGISTRATION_REQUESTS

from ..conftest import http_body, new_id, requested
from .conftest import decisions, registration_app, registrations, schedule, seat_book, statuses

pytestmark = pytest.mark.integration

CAPACITY = 50


async def _send_kafka(
    kafka: KafkaProbe, seminar: str, participants: list[str], twice: set[str]
) -> list[str]:
    order: list[str] = []
    for pid in participants:
        envelope = envelope_for(
            requested(seminar, pid), source="/platform/teacher-portal", time=utc_now()
        )
        await kafka.send_envelope(envelope, topic=REGISTRATION_REQUESTS, key=seminar)
        order.append(pid)
        if pid in twice:  # at-least-once delivery: the very same event again
            await kafka.send_envelope(envelope, topic=REGISTRATION_REQUESTS, key=seminar)
    return order


async def _send_http(
    client: httpx.AsyncClient, seminar: str, participants: list[str]
) -> list[httpx.Response]:
    limit = asyncio.Semaphore(16)

    async def one(pid: str) -> httpx.Response:
        async with limit:
            return await client.post("/v1/registrations", json=http_body(seminar, pid))

    return list(await asyncio.gather(*(one(p) for p in participants)))


async def test_rush_confirms_exactly_capacity_and_waitlists_the_rest_in_order(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    people = [f"p{i:03d}" for i in range(300)]
    by_kafka, by_http = people[:160], people[150:]  # p150..p159 come both ways
    twice = set(by_kafka[:16])
    app = registration_app(namespace)
    async with running(app) as client:
        await schedule(app, kafka, seminar, CAPACITY)
        kafka_order, responses = await asyncio.gather(
            _send_kafka(kafka, seminar, by_kafka, twice), _send_http(client, seminar, by_http)
        )
        counts = await eventually(
            lambda: statuses(app, seminar),
            until=lambda c: c.total() == len(people),
            timeout_s=60,
            what="every request decided",
        )
        docs = await registrations(app, seminar)
        book = await seat_book(app, seminar)
        events = await eventually(
            lambda: decisions(kafka, seminar),
            until=lambda e: len(e) >= len(people),
            timeout_s=30,
            what="every decision published",
        )
    assert counts == Counter(confirmed=CAPACITY, waitlisted=len(people) - CAPACITY)
    assert book is not None
    assert (book["confirmed_count"], book["waitlisted_count"]) == (50, 250)
    # HTTP: 201 for a new registration, 200 for one the Kafka path made first (or vice versa).
    assert {r.status_code for r in responses} <= {200, 201}
    assert sum(r.status_code == 201 for r in responses) >= len(by_http) - 10
    assert all(r.json()["status"] in {"confirmed", "waitlisted"} for r in responses)
    # One registration per participant, one decision event per registration.
    assert sorted(d["participant_id"] for d in docs) == people
    kinds = Counter(e.type for e in events)
    assert kinds == Counter(
        {"registration.confirmed.v1": CAPACITY, "registration.waitlisted.v1": 250}
    )
    assert len({e.data["registration_id"] for e in events}) == len(people)
    # The waiting list is a queue: sequence numbers 1..250, positions as they were then.
    waiting = sorted(
        (d for d in docs if d["status"] == "waitlisted"), key=lambda d: d["waitlist_seq"]
    )
    assert [d["waitlist_seq"] for d in waiting] == list(range(1, 251))
    positions = sorted(e.data["position"] for e in events if e.type.endswith("waitlisted.v1"))
    assert positions == list(range(1, 251))
    # Kafka requests (one partition) keep their send order in the queue and seats.
    rank = {d["participant_id"]: d.get("waitlist_seq", 0) for d in docs}
    kafka_only = [p for p in kafka_order if p not in set(by_http)]
    seqs = [rank[p] for p in kafka_only]
    assert seqs == sorted(seqs)
    # Personal data stays here: no event carries a name or an e-mail address.
    assert not any("email" in e.data or "display_name" in e.data for e in events)
