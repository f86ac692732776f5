"""Registration flows against the real broker and database: duplicates, cancellation
and promotion, capacity changes, seminar cancellation and completion, erasure."""

from __future__ import annotations

from collections import Counter

import pytest

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.events.inbound import (
    ParticipantErasureRequested,
    RegistrationCancellationRequested,
)
from seminarops_shared.events.seminar import (
    SeminarCancelled,
    SeminarCompleted,
    SeminarRescheduled,
)
from seminarops_shared.events.topics import REGISTRATION_EVENTS, REGISTRATION_REQUESTS
from seminarops_shared.privacy import is_pseudonym

from ..conftest import SEMINAR_SOURCE, http_body, new_id, requested, scheduled
from .conftest import database, decisions, registration_app, schedule, seat_book, statuses

pytestmark = pytest.mark.integration


def _types(events: list[object]) -> list[str]:
    return [e.type for e in events]  # type: ignore[attr-defined]


async def test_duplicates_from_any_source_or_path_are_one_registration(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    async with running(app) as client:
        await schedule(app, kafka, seminar, 5)
        first = await kafka.send_event(requested(seminar, "anna"), source="/platform/portal")
        await kafka.send_envelope(first, topic=REGISTRATION_REQUESTS, key=seminar)  # redelivery
        await kafka.send_event(requested(seminar, "anna"), source="/platform/partner-x")
        await eventually(lambda: statuses(app, seminar), what="anna decided")
        again = await client.post("/v1/registrations", json=http_body(seminar, "anna"))
        new = await client.post("/v1/registrations", json=http_body(seminar, "bert"))
        repeat = await client.post("/v1/registrations", json=http_body(seminar, "bert"))
        # A marker after the duplicates on the same partition: once it is decided,
        # everything before it was seen.
        await kafka.send_event(requested(seminar, "marker"))
        await eventually(
            lambda: statuses(app, seminar), until=lambda c: c.total() == 3, what="marker"
        )
        events = await eventually(
            lambda: decisions(kafka, seminar), until=lambda e: len(e) >= 3, what="events"
        )
        docs = await database(app)["registrations"].find({"seminar_id": seminar}).to_list()
    assert (again.status_code, again.json()["status"]) == (200, "confirmed")
    assert (new.status_code, repeat.status_code) == (201, 200)
    assert new.json()["id"] == repeat.json()["id"]
    assert sorted(d["participant_id"] for d in docs) == ["anna", "bert", "marker"]
    anna = next(d for d in docs if d["participant_id"] == "anna")
    assert anna["source"] == "/platform/portal"  # the first request made it
    assert again.json()["id"] == anna["_id"]
    assert _types(events) == ["registration.confirmed.v1"] * 3
    assert {e.data["version"] for e in events} == {1}


async def test_cancellation_promotes_the_head_of_the_waiting_list(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    async with running(app) as client:
        await schedule(app, kafka, seminar, 2)
        for person in ["a", "b", "c", "d", "e"]:
            await kafka.send_event(requested(seminar, person))
        await eventually(
            lambda: statuses(app, seminar), until=lambda c: c.total() == 5, what="decided"
        )
        # A confirmed one cancels over Kafka: c (head of the queue) is promoted.
        await kafka.send_event(
            RegistrationCancellationRequested(seminar_id=seminar, participant_id="a")
        )
        await eventually(
            lambda: statuses(app, seminar),
            until=lambda c: c["cancelled"] == 1,
            what="a cancelled",
        )
        # A waitlisted one cancels over HTTP: nobody is promoted, e is still second.
        d_id = (await client.post("/v1/registrations", json=http_body(seminar, "d"))).json()["id"]
        cancelled = await client.delete(f"/v1/registrations/{d_id}")
        again = await client.post(f"/v1/registrations/{d_id}/cancel")
        listing = (await client.get(f"/v1/seminars/{seminar}/registrations")).json()
        waiting = (
            await client.get(
                f"/v1/seminars/{seminar}/registrations", params={"status": "waitlisted"}
            )
        ).json()
        events = await eventually(
            lambda: decisions(kafka, seminar), until=lambda e: len(e) >= 8, what="events"
        )
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")  # idempotent
    by_person = {r["participant_id"]: r for r in listing["registrations"]}
    assert {p: r["status"] for p, r in by_person.items()} == {
        "a": "cancelled",
        "b": "confirmed",
        "c": "confirmed",
        "d": "cancelled",
        "e": "waitlisted",
    }
    assert (listing["capacity"], listing["confirmed"], listing["waitlisted"]) == (2, 2, 1)
    assert [r["participant_id"] for r in waiting["registrations"]] == ["e"]
    assert by_person["c"]["display_name"] == "Teacher c"  # personal data, for operators
    tail = [(e.type, e.data["participant_id"], e.data["version"]) for e in events[5:]]
    assert tail == [
        ("registration.cancelled.v1", "a", 2),
        ("registration.promoted.v1", "c", 2),
        ("registration.cancelled.v1", "d", 2),
    ]
    assert events[5].data["previous_status"] == "confirmed"


async def test_capacity_increase_promotes_and_decrease_unconfirms_nobody(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    times = scheduled(seminar, 1).sessions
    async with running(app):
        await kafka.send_event(scheduled(seminar, 2), source=SEMINAR_SOURCE)
        for person in ["a", "b", "c", "d", "e"]:
            await kafka.send_event(requested(seminar, person))
        await eventually(
            lambda: statuses(app, seminar), until=lambda c: c.total() == 5, what="decided"
        )

        async def resize(old: int, new: int) -> None:
            await kafka.send_event(
                SeminarRescheduled(
                    seminar_id=seminar,
                    old_sessions=times,
                    new_sessions=times,
                    old_capacity=old,
                    new_capacity=new,
                    year=2026,
                ),
                source=SEMINAR_SOURCE,
            )

        await resize(2, 4)
        grown = await eventually(
            lambda: statuses(app, seminar), until=lambda c: c["confirmed"] == 4, what="grown"
        )
        await resize(4, 1)
        await kafka.send_event(requested(seminar, "f"))
        shrunk = await eventually(
            lambda: statuses(app, seminar), until=lambda c: c.total() == 6, what="f decided"
        )
        book = await seat_book(app, seminar)
        events = await eventually(
            lambda: decisions(kafka, seminar), until=lambda e: len(e) >= 8, what="events"
        )
    assert grown == Counter(confirmed=4, waitlisted=1)
    assert shrunk == Counter(confirmed=4, waitlisted=2)
    assert book is not None
    assert (book["capacity"], book["confirmed_count"]) == (1, 4)
    promoted = [e.data["participant_id"] for e in events if e.type == "registration.promoted.v1"]
    assert promoted == ["c", "d"]


async def test_cancelled_seminar_cancels_registrations_and_rejects_new_requests(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar, closed = new_id("sem"), new_id("sem")
    app = registration_app(namespace)
    async with running(app) as client:
        await kafka.send_event(scheduled(seminar, 1), source=SEMINAR_SOURCE)
        await kafka.send_event(scheduled(closed, 1), source=SEMINAR_SOURCE)
        for person in ["a", "b"]:
            await kafka.send_event(requested(seminar, person))
        await kafka.send_event(requested(closed, "a"))
        await eventually(
            lambda: statuses(app, seminar), until=lambda c: c.total() == 2, what="decided"
        )
        await eventually(lambda: statuses(app, closed), what="decided")
        await kafka.send_event(SeminarCancelled(seminar_id=seminar), source=SEMINAR_SOURCE)
        await kafka.send_event(
            SeminarCompleted(
                seminar_id=closed,
                kind="online_seminar",
                programme="etwinning",
                year=2026,
                attendee_ids=["a"],
            ),
            source=SEMINAR_SOURCE,
        )
        after_cancel = await eventually(
            lambda: statuses(app, seminar), until=lambda c: c["cancelled"] == 2, what="cancelled"
        )
        await eventually(
            lambda: seat_book(app, closed), until=lambda b: b and b["status"] == "closed"
        )
        late = await client.post("/v1/registrations", json=http_body(seminar, "c"))
        too_late = await client.post("/v1/registrations", json=http_body(closed, "c"))
        a_id = (await client.post("/v1/registrations", json=http_body(closed, "a"))).json()["id"]
        refused = await client.delete(f"/v1/registrations/{a_id}")
        events = await eventually(
            lambda: decisions(kafka, seminar), until=lambda e: len(e) >= 5, what="events"
        )
    assert after_cancel == Counter(cancelled=2)
    assert (late.status_code, late.json()) == (
        201,
        {
            "id": late.json()["id"],
            "status": "rejected",
            "position": None,
            "reason": "seminar_cancelled",
        },
    )
    assert too_late.json()["reason"] == "seminar_closed"
    assert refused.status_code == 409
    cancelled = [e for e in events if e.type == "registration.cancelled.v1"]
    assert {
        (e.data["participant_id"], e.data["previous_status"], e.data["reason"]) for e in cancelled
    } == {
        ("a", "confirmed", "seminar_cancelled"),
        ("b", "waitlisted", "seminar_cancelled"),
    }
    assert events[-1].type == "registration.rejected.v1"


async def test_erasure_forgets_the_person_and_keeps_the_counts(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    async with running(app) as client:
        await kafka.send_event(scheduled(seminar, 5), source=SEMINAR_SOURCE)
        for person in ["forget-me", "keep-me"]:
            await kafka.send_event(requested(seminar, person))
        await eventually(
            lambda: statuses(app, seminar), until=lambda c: c.total() == 2, what="decided"
        )
        await kafka.send_event(ParticipantErasureRequested(participant_id="forget-me"))
        erased = await eventually(
            lambda: kafka.events(REGISTRATION_EVENTS),
            until=lambda e: any(x.type == "participant.erased.v1" for x in e),
            what="erasure announced",
        )
        mine = (await client.get("/v1/participants/forget-me/registrations")).json()
        theirs = (await client.get("/v1/participants/keep-me/registrations")).json()
        via_http = await client.post("/v1/participants/keep-me/erase")
        docs = await database(app)["registrations"].find({"seminar_id": seminar}).to_list()
        counts = await statuses(app, seminar)
    [announcement] = [e for e in erased if e.type == "participant.erased.v1"]
    assert announcement.data["participant_id"] == "forget-me"
    assert announcement.subject == "forget-me"
    assert mine["registrations"] == []
    assert theirs["registrations"][0]["email"] == "keep-me@school.example"
    assert via_http.status_code == 202
    assert via_http.json()["registrations_anonymised"] == 1
    assert counts == Counter(confirmed=2)
    for doc in docs:
        assert is_pseudonym(doc["participant_id"])
        assert "email" not in doc
        assert "display_name" not in doc
