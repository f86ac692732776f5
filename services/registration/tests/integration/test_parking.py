"""Requests for a seminar not known yet: parked, decided on scheduling, or rejected
after the park timeout (an injected clock moves time)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running

from ..conftest import SEMINAR_SOURCE, http_body, new_id, requested, scheduled
from .conftest import database, decisions, registration_app, seat_book, statuses

pytestmark = pytest.mark.integration


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


async def _parked(app: object, seminar_id: str) -> list[dict[str, object]]:
    return await database(app)["parked_requests"].find({"seminar_id": seminar_id}).to_list()  # type: ignore[arg-type]


async def test_requests_before_the_seminar_are_parked_then_decided_in_arrival_order(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    async with running(app) as client:
        for person in ["k1", "k2"]:
            await kafka.send_event(requested(seminar, person))
        await eventually(lambda: _parked(app, seminar), until=lambda p: len(p) == 2, what="parked")
        pending = await client.post("/v1/registrations", json=http_body(seminar, "h3"))
        repeat = await client.post("/v1/registrations", json=http_body(seminar, "k1"))
        looked_up = await client.get(f"/v1/registrations/{pending.json()['id']}")
        await kafka.send_event(requested(seminar, "k4"))
        await eventually(lambda: _parked(app, seminar), until=lambda p: len(p) == 4, what="4")
        assert await statuses(app, seminar) == Counter()
        await kafka.send_event(scheduled(seminar, 2), source=SEMINAR_SOURCE)
        counts = await eventually(
            lambda: statuses(app, seminar), until=lambda c: c.total() == 4, what="decided"
        )
        events = await eventually(
            lambda: decisions(kafka, seminar), until=lambda e: len(e) >= 4, what="events"
        )
        left = await _parked(app, seminar)
        jobs = await database(app)["scheduled_jobs"].find({"group": seminar}).to_list()
    assert (pending.status_code, pending.json()["status"]) == (202, "pending")
    assert (repeat.status_code, repeat.json()["status"]) == (202, "pending")
    assert looked_up.json()["status"] == "pending"
    assert counts == Counter(confirmed=2, waitlisted=2)
    assert [(e.type.split(".")[1], e.data["participant_id"]) for e in events] == [
        ("confirmed", "k1"),
        ("confirmed", "k2"),
        ("waitlisted", "h3"),
        ("waitlisted", "k4"),
    ]
    assert events[2].data["source"] == "/services/registration/http"
    assert (left, jobs) == ([], [])


async def test_parked_requests_are_rejected_after_the_timeout_and_can_ask_again(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    clock = FakeClock()
    app = registration_app(namespace, clock=clock, park_timeout_s=3600)
    async with running(app) as client:
        await kafka.send_event(requested(seminar, "early"))
        await eventually(lambda: _parked(app, seminar), until=lambda p: len(p) == 1, what="parked")
        clock.advance(timedelta(minutes=30))
        await kafka.send_event(requested(seminar, "later"))
        await eventually(lambda: _parked(app, seminar), until=lambda p: len(p) == 2, what="2")
        clock.advance(timedelta(minutes=31))  # early: 61 min parked; later: 31 min
        first = await eventually(
            lambda: statuses(app, seminar), until=lambda c: c["rejected"] == 1, what="early out"
        )
        still = await _parked(app, seminar)
        clock.advance(timedelta(minutes=30))  # later: 61 min parked
        second = await eventually(
            lambda: statuses(app, seminar), until=lambda c: c["rejected"] == 2, what="later out"
        )
        # The seminar shows up after all: a new request is decided, not answered "rejected".
        await kafka.send_event(scheduled(seminar, 5), source=SEMINAR_SOURCE)
        await eventually(
            lambda: seat_book(app, seminar), until=lambda b: b and b["status"] == "open"
        )
        again = await client.post("/v1/registrations", json=http_body(seminar, "early"))
        events = await eventually(
            lambda: decisions(kafka, seminar), until=lambda e: len(e) >= 3, what="events"
        )
    assert first == Counter(rejected=1)
    assert [p["participant"]["id"] for p in still] == ["later"]  # type: ignore[index]
    assert second == Counter(rejected=2)
    assert [(e.type, e.data.get("reason"), e.data["version"]) for e in events] == [
        ("registration.rejected.v1", "seminar_unknown", 1),
        ("registration.rejected.v1", "seminar_unknown", 1),
        ("registration.confirmed.v1", None, 2),
    ]
    assert [e.data["participant_id"] for e in events] == ["early", "later", "early"]
    assert (again.status_code, again.json()["status"]) == (201, "confirmed")
