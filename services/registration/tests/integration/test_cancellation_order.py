"""A request and its cancellation on different partitions (a producer that does not use
the murmur2 partitioner), consumed in either order, against the real broker and
database. The outcome is the one publishing order gives (the envelopes' ``time``): a
cancellation consumed before its request is kept and applied when the request is
decided; an older cancellation never cancels a request published after it; duplicates
change nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiokafka.partitioner import murmur2
from fastapi import FastAPI

from registration.domain import registration_id
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.clock import utc_now
from seminarops_shared.events import Envelope, Event, envelope_for
from seminarops_shared.events.inbound import RegistrationCancellationRequested
from seminarops_shared.events.topics import REGISTRATION_REQUESTS

from ..conftest import SEMINAR_SOURCE, http_body, new_id, requested, scheduled
from .conftest import (
    database,
    decisions,
    registration_app,
    schedule,
    seat_book,
    statuses,
    without_claims_or_turns,
)

pytestmark = pytest.mark.integration

PARTITIONS = 3  # the namespace's default
PORTAL = "/platform/teacher-portal"
OTHER_PORTAL = "/platform/partner-portal"


def home_partition(seminar_id: str) -> int:
    """The partition of the seminar's records under murmur2 (the requests' here)."""
    return (murmur2(seminar_id.encode()) & 0x7FFFFFFF) % PARTITIONS


def other_partition(seminar_id: str) -> int:
    """Another partition, as a producer with another partitioner would pick."""
    return (home_partition(seminar_id) + 1) % PARTITIONS


def at(data: Event, time: datetime, source: str = PORTAL) -> Envelope:
    return envelope_for(data, source=source, time=time)


def cancellation(seminar_id: str, person: str, time: datetime) -> Envelope:
    return at(
        RegistrationCancellationRequested(seminar_id=seminar_id, participant_id=person),
        time,
        OTHER_PORTAL,
    )


async def send(kafka: KafkaProbe, envelope: Envelope, partition: int) -> None:
    assert envelope.subject is not None
    await kafka.send_envelope(
        envelope, topic=REGISTRATION_REQUESTS, key=envelope.subject, partition=partition
    )


async def kept(app: FastAPI, seminar_id: str) -> list[dict[str, Any]]:
    """Cancellations kept for registrations that do not exist yet."""
    return await database(app)["pending_cancellations"].find({"seminar_id": seminar_id}).to_list()


async def registration(app: FastAPI, seminar_id: str, person: str) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = await database(app)["registrations"].find_one(
        {"_id": registration_id(seminar_id, person)}
    )
    return doc


def story(events: list[Envelope], person: str) -> list[tuple[str, int]]:
    """One person's registration events: (type, version)."""
    return [
        (e.type.removeprefix("registration.").removesuffix(".v1"), e.data["version"])
        for e in events
        if e.data.get("participant_id") == person
    ]


async def test_a_cancellation_consumed_before_its_request_cancels_it_and_duplicates_change_nothing(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    home, other = home_partition(seminar), other_partition(seminar)
    published = utc_now()
    ask = at(requested(seminar, "x"), published)
    cancel = cancellation(seminar, "x", published + timedelta(seconds=1))
    app = registration_app(namespace)
    async with running(app):
        await schedule(app, kafka, seminar, 1)
        # The cancellation (published after the request) overtakes it on another
        # partition: it is consumed first, finds nothing, and is kept.
        await send(kafka, cancel, other)
        held = await eventually(
            lambda: kept(app, seminar), until=lambda k: len(k) == 1, what="cancellation kept"
        )
        waiting_book = await seat_book(app, seminar)
        await send(kafka, ask, home)
        await kafka.send_event(requested(seminar, "y"), source=PORTAL)  # after x, same partition
        settled = await eventually(
            lambda: statuses(app, seminar),
            until=lambda c: c == Counter(cancelled=1, confirmed=1),
            what="x cancelled when decided, y in the freed seat",
        )
        before = await eventually(
            lambda: decisions(kafka, seminar),
            until=lambda e: (
                story(e, "x") == [("confirmed", 1), ("cancelled", 2)]
                and story(e, "y")[-1:] in ([("confirmed", 1)], [("promoted", 2)])
            ),
            what="events published",
        )

        # Both events again, on both partitions: nothing changes. A marker after them on
        # each partition tells when they were consumed.
        for partition in (home, other):
            await send(kafka, cancel, partition)
            await send(kafka, ask, partition)
        await send(kafka, at(requested(seminar, "marker"), utc_now()), home)
        await send(kafka, cancellation(seminar, "nobody", utc_now()), other)
        await eventually(
            lambda: statuses(app, seminar), until=lambda c: c.total() == 3, what="home marker"
        )
        await eventually(
            lambda: kept(app, seminar), until=lambda k: len(k) == 1, what="other marker"
        )
        after = await eventually(
            lambda: decisions(kafka, seminar),
            until=lambda e: bool(story(e, "marker")),
            what="marker decided",
        )
        final = await statuses(app, seminar)
        book = await seat_book(app, seminar)
        x = await registration(app, seminar, "x")
        left = await kept(app, seminar)

    assert held[0]["_id"] == registration_id(seminar, "x")
    assert held[0]["event_id"] == cancel.id
    assert waiting_book is not None
    assert waiting_book["pending_cancellations_count"] == 1
    assert settled == Counter(cancelled=1, confirmed=1)
    # x took the seat, and its cancellation freed it in the same transaction.
    assert story(before, "x") == [("confirmed", 1), ("cancelled", 2)]
    cancelled = next(e for e in before if e.type == "registration.cancelled.v1")
    assert (cancelled.data["previous_status"], cancelled.data["reason"]) == (
        "confirmed",
        "participant_request",
    )
    # The duplicates changed nothing: the one new event is the marker's.
    assert [e.id for e in after[: len(before)]] == [e.id for e in before]
    assert story(after, "x") == story(before, "x")
    assert [e.data["participant_id"] for e in after[len(before) :]] == ["marker"]
    assert final == Counter(cancelled=1, confirmed=1, waitlisted=1)
    assert book is not None
    assert (book["confirmed_count"], book["waitlisted_count"]) == (1, 1)
    assert x is not None
    assert (x["status"], x["version"]) == ("cancelled", 2)
    # Only the marker's cancellation (for nobody) is still kept.
    assert [k["participant_id"] for k in left] == ["nobody"]
    assert book["pending_cancellations_count"] == 1


async def test_a_cancellation_kept_for_an_unknown_seminar_frees_the_seat_for_the_queue(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    published = utc_now()
    app = registration_app(namespace)
    async with running(app):
        await send(
            kafka,
            cancellation(seminar, "x", published + timedelta(seconds=1)),
            other_partition(seminar),
        )
        await eventually(lambda: kept(app, seminar), until=lambda k: len(k) == 1, what="kept")
        # Both requests are parked until the seminar is known, then decided together.
        await send(kafka, at(requested(seminar, "x"), published), home_partition(seminar))
        await send(
            kafka,
            at(requested(seminar, "y"), published + timedelta(seconds=2)),
            home_partition(seminar),
        )
        await eventually(
            lambda: database(app)["parked_requests"].count_documents({"seminar_id": seminar}),
            until=lambda n: n == 2,
            what="parked",
        )
        await kafka.send_event(scheduled(seminar, 1), source=SEMINAR_SOURCE)
        events = await eventually(
            lambda: decisions(kafka, seminar), until=lambda e: len(e) >= 4, what="decided"
        )
        final = await statuses(app, seminar)
        book = await seat_book(app, seminar)
        left = await kept(app, seminar)
    assert [
        (e.type.split(".")[1], e.data["participant_id"], e.data["version"]) for e in events
    ] == [
        ("confirmed", "x", 1),
        ("waitlisted", "y", 1),
        ("cancelled", "x", 2),
        ("promoted", "y", 2),
    ]
    assert final == Counter(cancelled=1, confirmed=1)
    assert book is not None
    assert (book["confirmed_count"], book["waitlisted_count"]) == (1, 0)
    assert (book["pending_cancellations_count"], left) == (0, [])


async def test_a_request_published_after_a_cancellation_stays_registered_in_either_order(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    home, other = home_partition(seminar), other_partition(seminar)
    t0 = utc_now() - timedelta(minutes=1)
    app = registration_app(namespace)
    async with running(app) as client:
        await schedule(app, kafka, seminar, 5)

        # a: the older cancellation is consumed first and kept; the request after it is
        # a new registration: confirmed, and the cancellation is dropped.
        await send(kafka, cancellation(seminar, "a", t0), other)
        await eventually(lambda: kept(app, seminar), until=lambda k: len(k) == 1, what="a kept")
        await send(kafka, at(requested(seminar, "a"), t0 + timedelta(seconds=1)), home)

        # b: the same two consumed the other way round: the cancellation, published
        # first, comes late and does not cancel the later request.
        await send(kafka, at(requested(seminar, "b"), t0 + timedelta(seconds=1)), home)
        await eventually(lambda: registration(app, seminar, "b"), until=bool, what="b decided")
        await send(kafka, cancellation(seminar, "b", t0), other)

        # h: over HTTP (decided now, after the kept cancellation); a cancellation over
        # HTTP of what is only kept finds no registration.
        await send(kafka, cancellation(seminar, "h", t0), other)
        await eventually(
            lambda: kept(app, seminar),
            until=lambda k: "h" in {d["participant_id"] for d in k},
            what="h kept",
        )
        missing = await client.delete(f"/v1/registrations/{registration_id(seminar, 'h')}")
        via_http = await client.post("/v1/registrations", json=http_body(seminar, "h"))

        # c: request (t1), cancellation (t2), the request again (t3), the repeat consumed
        # before the cancellation. In publishing order the repeat registers c again
        # after the cancellation, so the late cancellation changes nothing.
        await send(kafka, at(requested(seminar, "c"), t0 + timedelta(seconds=1)), home)
        await send(kafka, at(requested(seminar, "c"), t0 + timedelta(seconds=3)), home)
        await send(kafka, at(requested(seminar, "marker"), utc_now()), home)  # after both
        await eventually(
            lambda: registration(app, seminar, "marker"), until=bool, what="c's repeat consumed"
        )
        await send(kafka, cancellation(seminar, "c", t0 + timedelta(seconds=2)), other)

        # A marker after both cancellations on their partition: once it is kept,
        # they were consumed.
        await send(kafka, cancellation(seminar, "marker2", utc_now()), other)
        await eventually(
            lambda: kept(app, seminar),
            until=lambda k: "marker2" in {d["participant_id"] for d in k},
            what="cancellations consumed",
        )
        final = await statuses(app, seminar)
        b = await registration(app, seminar, "b")
        a = await registration(app, seminar, "a")
        left = await kept(app, seminar)
        book = await seat_book(app, seminar)
        events = await eventually(
            lambda: decisions(kafka, seminar), until=lambda e: len(e) >= 5, what="events"
        )

    assert final == Counter(confirmed=5)
    assert a is not None
    assert (a["status"], a["version"]) == ("confirmed", 1)
    assert b is not None
    assert (b["status"], b["version"]) == ("confirmed", 1)
    assert missing.status_code == 404
    assert (via_http.status_code, via_http.json()["status"]) == (201, "confirmed")
    assert [d["participant_id"] for d in left] == ["marker2"]
    assert book is not None
    assert (book["confirmed_count"], book["pending_cancellations_count"]) == (5, 1)
    assert Counter(e.type for e in events) == Counter({"registration.confirmed.v1": 5})
    assert story(events, "c") == [("confirmed", 1)]


async def test_a_seat_book_written_before_kept_cancellations_existed_still_changes(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    async with running(app):
        # A book as the previous version wrote it: no pending_cancellations_count.
        await database(app)["seminars"].insert_one(
            {
                "_id": seminar,
                "status": "open",
                "capacity": 2,
                "confirmed_count": 0,
                "waitlisted_count": 0,
                "next_waitlist_seq": 1,
                "parked_count": 0,
                "next_park_seq": 1,
                "park_round": 0,
                "updated_at": utc_now(),
            }
        )
        await kafka.send_event(requested(seminar, "a"), source=PORTAL)
        await kafka.send_event(
            RegistrationCancellationRequested(seminar_id=seminar, participant_id="b"),
            source=OTHER_PORTAL,
        )
        counts = await eventually(
            lambda: statuses(app, seminar), until=lambda c: c.total() == 1, what="decided"
        )
        await eventually(lambda: kept(app, seminar), until=lambda k: len(k) == 1, what="kept")
        book = await seat_book(app, seminar)
    assert counts == Counter(confirmed=1)
    assert book is not None
    assert (book["confirmed_count"], book["pending_cancellations_count"]) == (1, 1)


async def test_two_replicas_racing_requests_and_cancellations_lose_none(
    namespace: Namespace, kafka: KafkaProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests on one partition, their cancellations on another, published at once to
    two replicas (which mostly split the partitions between them), without turns or
    seat-book claims: keeping a cancellation and deciding its request both write the
    seat book, so they never commit without seeing each other."""

    without_claims_or_turns(monkeypatch)
    seminar = new_id("sem")
    home, other = home_partition(seminar), other_partition(seminar)
    people = [f"p{i:02}" for i in range(30)]
    leaving = set(people[::3] + people[1::3])  # 20 of 30
    now = utc_now()
    asks = [at(requested(seminar, p), now) for p in people]
    cancels = [cancellation(seminar, p, now + timedelta(seconds=1)) for p in sorted(leaving)]
    first, second = registration_app(namespace), registration_app(namespace)
    async with running(first), running(second):
        await schedule(first, kafka, seminar, 5)

        async def publish(records: list[Envelope], partition: int) -> None:
            for record in records:
                await send(kafka, record, partition)

        await asyncio.gather(publish(asks, home), publish(cancels, other))
        final = await eventually(
            lambda: statuses(first, seminar),
            until=lambda c: c.total() == len(people) and c["cancelled"] == len(leaving),
            timeout_s=60,
            what="every request decided and every cancellation applied",
        )
        book = await seat_book(first, seminar)
        left = await kept(first, seminar)
    assert final == Counter(cancelled=20, confirmed=5, waitlisted=5)
    assert book is not None
    assert (book["confirmed_count"], book["waitlisted_count"]) == (5, 5)
    assert (book["pending_cancellations_count"], left) == (0, [])
