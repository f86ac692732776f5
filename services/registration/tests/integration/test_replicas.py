"""Two replicas in one consumer group, Kafka and HTTP to both at once: never more
confirmed than capacity. A third run bypasses the turns and seat-book claims
entirely: the invariant rests on the conditional updates and transactions alone."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running

from ..conftest import SEMINAR_SOURCE, http_body, new_id, requested, scheduled
from .conftest import (
    decisions,
    registration_app,
    registrations,
    seat_book,
    statuses,
    without_claims_or_turns,
)

pytestmark = pytest.mark.integration

CAPACITY = 20


@pytest.mark.parametrize("claims", [True, False], ids=["claims", "no-claims"])
async def test_two_replicas_never_overbook(
    namespace: Namespace, kafka: KafkaProbe, claims: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not claims:
        # Writers collide late: only the conditional updates stand between them and an
        # overbooking.
        without_claims_or_turns(monkeypatch)
    seminars = [new_id("sem"), new_id("sem")]
    first = registration_app(namespace)
    second = registration_app(namespace)
    async with running(first) as one, running(second) as two:
        for seminar in seminars:
            await kafka.send_event(scheduled(seminar, CAPACITY), source=SEMINAR_SOURCE)
        for seminar in seminars:
            await eventually(lambda s=seminar: seat_book(first, s), what="seminar known")

        async def kafka_side(seminar: str) -> None:
            for i in range(60):
                await kafka.send_event(requested(seminar, f"k{i}"))

        async def http_side(seminar: str) -> list[int]:
            async def post(i: int) -> int:
                client = one if i % 2 else two
                response = await client.post("/v1/registrations", json=http_body(seminar, f"h{i}"))
                return response.status_code

            return list(await asyncio.gather(*(post(i) for i in range(60))))

        results = await asyncio.gather(
            *(kafka_side(s) for s in seminars), *(http_side(s) for s in seminars)
        )
        for seminar in seminars:
            await eventually(
                lambda s=seminar: statuses(first, s),
                until=lambda c: c.total() == 120,
                timeout_s=60,
                what="every request decided",
            )
        counts = [await statuses(second, s) for s in seminars]
        books = [await seat_book(second, s) for s in seminars]
        docs = [await registrations(first, s) for s in seminars]
        events = [
            await eventually(
                lambda s=seminar: decisions(kafka, s), until=lambda e: len(e) >= 120, what="events"
            )
            for seminar in seminars
        ]
    assert {code for codes in results[2:] for code in codes} == {201}  # type: ignore[union-attr]
    for count, book, regs, published in zip(counts, books, docs, events, strict=True):
        assert count == Counter(confirmed=CAPACITY, waitlisted=120 - CAPACITY)
        assert book is not None
        assert (book["confirmed_count"], book["waitlisted_count"]) == (CAPACITY, 100)
        seqs = sorted(d["waitlist_seq"] for d in regs if d["status"] == "waitlisted")
        assert seqs == list(range(1, 101))
        kinds = Counter(e.type for e in published)
        assert kinds["registration.confirmed.v1"] == CAPACITY
        assert len({e.data["registration_id"] for e in published}) == 120
