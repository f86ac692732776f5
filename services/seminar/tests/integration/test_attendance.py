"""Rosters projected from registration events, attendance, completion and erasure,
against the real broker and database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, running
from seminarops_shared.events.registration import ParticipantErased

from ..conftest import OPERATOR, PLATFORM, AppFactory, Body, Published, create_seminar_id

pytestmark = pytest.mark.integration


def pid() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


async def _roster(client: httpx.AsyncClient, seminar_id: str) -> dict[str, str]:
    response = await client.get(f"/v1/seminars/{seminar_id}/roster", headers=OPERATOR)
    assert response.status_code == 200, response.text
    return {e["participant_id"]: e["status"] for e in response.json()["entries"]}


async def test_roster_follows_registration_events_whatever_their_order(
    make_app: AppFactory, seminar_body: Body, registrations: Any
) -> None:
    async with running(make_app()) as client:
        seminar_id = await create_seminar_id(client, seminar_body())
        kept, left, waiting, promoted, ignored = (pid() for _ in range(5))
        await registrations.publish(
            registrations.confirmed(seminar_id, kept),
            # Out of order: the cancellation (version 2) arrives before the confirmation.
            registrations.cancelled(seminar_id, left, version=2),
            registrations.confirmed(seminar_id, left, version=1),
            registrations.waitlisted(seminar_id, waiting),
            registrations.waitlisted(seminar_id, promoted),
            registrations.confirmed(seminar_id, promoted, version=2),
            registrations.confirmed(seminar_id, promoted, version=2),  # again, new event id
        )
        # For a seminar this service does not know (yet): kept, never lost.
        await registrations.publish(registrations.confirmed("sem-not-yet-known", ignored))
        roster = await eventually(
            lambda: _roster(client, seminar_id),
            until=lambda r: len(r) == 4 and r.get(promoted) == "confirmed",
            what="roster",
        )
        response = await client.get(f"/v1/seminars/{seminar_id}/roster", headers=OPERATOR)
    assert roster == {
        kept: "confirmed",
        left: "cancelled",
        waiting: "waitlisted",
        promoted: "confirmed",
    }
    assert response.json()["counts"] == {"confirmed": 2, "waitlisted": 1, "cancelled": 1}


async def test_attendance_counts_confirmed_registrants_once_and_completion_carries_them(
    make_app: AppFactory, seminar_body: Body, registrations: Any, published: Published
) -> None:
    async with running(make_app()) as client:
        seminar_id = await create_seminar_id(client, seminar_body(kind="pd_workshop"))
        first, second, waiting, gone, stranger = (pid() for _ in range(5))
        await registrations.publish(
            registrations.confirmed(seminar_id, first),
            registrations.confirmed(seminar_id, second),
            registrations.waitlisted(seminar_id, waiting),
            registrations.confirmed(seminar_id, gone),
            registrations.cancelled(seminar_id, gone, version=2),
        )
        await eventually(
            lambda: _roster(client, seminar_id),
            until=lambda r: len(r) == 4 and r[gone] == "cancelled",
            what="roster",
        )
        path = f"/v1/seminars/{seminar_id}/attendance"
        response = await client.post(
            path,
            json={"participant_ids": [first, waiting, gone, stranger, first]},
            headers=PLATFORM,
        )
        assert response.status_code == 202, response.text
        assert response.json() == {
            "seminar_id": seminar_id,
            "recorded": [first],
            "already_recorded": [],
            "rejected": [waiting, gone, stranger],
            "rejected_reasons": {
                waiting: "waitlisted",
                gone: "cancelled",
                stranger: "not_registered",
            },
            "attendee_count": 1,
        }
        again = await client.post(path, json={"participant_ids": [first, second]}, headers=OPERATOR)
        assert again.json()["recorded"] == [second]
        assert again.json()["already_recorded"] == [first]
        assert again.json()["attendee_count"] == 2
        bad = await client.post(path, json={"participant_ids": ["not valid!"]}, headers=OPERATOR)
        assert bad.status_code == 422
        assert (
            await client.post(path, json={"participant_ids": []}, headers=OPERATOR)
        ).status_code == 422
        unknown = await client.post(
            "/v1/seminars/sem-nope/attendance", json={"participant_ids": [first]}, headers=OPERATOR
        )
        assert unknown.status_code == 404
        completed = await client.post(f"/v1/seminars/{seminar_id}/complete", headers=OPERATOR)
        assert completed.status_code == 202
        assert completed.json()["attendee_count"] == 2
        events = await eventually(
            published,
            until=lambda events: any(e.type == "seminar.completed.v1" for e in events),
            what="completed event",
        )
    assert [e.type for e in events] == [
        "seminar.scheduled.v1",
        "attendance.recorded.v1",
        "attendance.recorded.v1",
        "seminar.completed.v1",
    ]
    assert [e.data["participant_ids"] for e in events[1:3]] == [[first], [second]]
    assert events[1].data["kind"] == "pd_workshop"
    assert events[1].data["year"] == 2025
    completion = events[3].data
    assert sorted(completion["attendee_ids"]) == sorted([first, second])
    assert (completion["kind"], completion["programme"], completion["year"]) == (
        "pd_workshop",
        "etwinning",
        2025,
    )


async def test_thousands_of_ids_in_one_call(
    make_app: AppFactory, seminar_body: Body, published: Published
) -> None:
    app = make_app()
    async with running(app) as client:
        seminar_id = await create_seminar_id(client, seminar_body(capacity=5000))
        # The roster is a projection; fill it directly, as thousands of registration
        # events would (the projection itself is tested above).
        roster = app.state.runtime.mongo.db["roster"]
        confirmed = [f"t{i:05d}" for i in range(3000)]
        await roster.insert_many(
            [
                {
                    "_id": f"{seminar_id}|{p}",
                    "seminar_id": seminar_id,
                    "participant_id": p,
                    "status": "confirmed",
                    "version": 1,
                }
                for p in confirmed
            ]
        )
        strangers = [f"s{i:05d}" for i in range(2000)]
        response = await client.post(
            f"/v1/seminars/{seminar_id}/attendance",
            json={"participant_ids": confirmed + strangers},
            headers=OPERATOR,
        )
        assert response.status_code == 202, response.text
        assert len(response.json()["recorded"]) == 3000
        assert len(response.json()["rejected"]) == 2000
        again = await client.post(
            f"/v1/seminars/{seminar_id}/attendance",
            json={"participant_ids": confirmed[:1500]},
            headers=OPERATOR,
        )
        assert len(again.json()["already_recorded"]) == 1500
        assert again.json()["attendee_count"] == 3000
        completed = await client.post(f"/v1/seminars/{seminar_id}/complete", headers=OPERATOR)
        assert completed.status_code == 202
        events = await eventually(
            lambda: published("attendance.recorded.v1", "seminar.completed.v1"),
            until=lambda events: len(events) == 4,
            what="attendance and completion events",
        )
    recorded = [e for e in events if e.type == "attendance.recorded.v1"]
    assert [len(e.data["participant_ids"]) for e in recorded] == [1000, 1000, 1000]
    assert sorted(p for e in recorded for p in e.data["participant_ids"]) == confirmed
    [completion] = [e for e in events if e.type == "seminar.completed.v1"]
    assert completion.data["attendee_ids"] == confirmed


async def test_attendance_before_the_start_is_refused_and_nothing_stored(
    make_app: AppFactory, seminar_body: Body, registrations: Any, clock: Any
) -> None:
    async with running(make_app(clock=clock)) as client:
        seminar_id = await create_seminar_id(
            client,
            seminar_body(starts_at="2026-02-01T10:00:00Z", ends_at="2026-02-01T11:00:00Z"),
        )
        person = pid()
        await registrations.publish(registrations.confirmed(seminar_id, person))
        await eventually(lambda: _roster(client, seminar_id), what="roster")
        path = f"/v1/seminars/{seminar_id}/attendance"
        early = await client.post(path, json={"participant_ids": [person]}, headers=OPERATOR)
        assert early.status_code == 409
        assert "before the seminar starts" in early.text
        assert (await client.get(f"/v1/seminars/{seminar_id}")).json()["attendee_count"] == 0
        early_completion = await client.post(
            f"/v1/seminars/{seminar_id}/complete", headers=OPERATOR
        )
        assert early_completion.status_code == 409
        clock.now = datetime(2026, 2, 1, 10, 5, tzinfo=UTC)
        on_time = await client.post(path, json={"participant_ids": [person]}, headers=OPERATOR)
        assert on_time.json()["recorded"] == [person]


async def test_erasure_pseudonymises_rosters_and_attendance_and_keeps_counts(
    make_app: AppFactory,
    seminar_body: Body,
    registrations: Any,
    published: Published,
    kafka: KafkaProbe,
) -> None:
    async with running(make_app()) as client:
        seminar_id = await create_seminar_id(client, seminar_body())
        other_seminar = await create_seminar_id(client, seminar_body(title="Another one"))
        erased, kept = pid(), pid()
        await registrations.publish(
            registrations.confirmed(seminar_id, erased),
            registrations.confirmed(seminar_id, kept),
            registrations.confirmed(other_seminar, erased),
        )
        await eventually(
            lambda: _roster(client, seminar_id), until=lambda r: len(r) == 2, what="roster"
        )
        await eventually(lambda: _roster(client, other_seminar), what="other roster")
        response = await client.post(
            f"/v1/seminars/{seminar_id}/attendance",
            json={"participant_ids": [erased, kept]},
            headers=OPERATOR,
        )
        assert response.json()["recorded"] == [erased, kept]
        await kafka.send_event(
            ParticipantErased(participant_id=erased, erased_at=datetime.now(UTC)),
            source="/services/registration",
        )
        roster = await eventually(
            lambda: _roster(client, seminar_id),
            until=lambda r: erased not in r,
            what="erased from the roster",
        )
        [pseudonym] = [p for p in roster if p != kept]
        assert pseudonym.startswith("erased-")
        # A late registration event about the erased person lands on the pseudonym.
        await registrations.publish(registrations.cancelled(other_seminar, erased, version=2))
        other = await eventually(
            lambda: _roster(client, other_seminar),
            until=lambda r: r.get(pseudonym) == "cancelled",
            what="late event applied to the pseudonym",
        )
        assert erased not in other
        again = await client.post(
            f"/v1/seminars/{seminar_id}/attendance",
            json={"participant_ids": [kept]},
            headers=OPERATOR,
        )
        assert again.json()["attendee_count"] == 2
        await client.post(f"/v1/seminars/{seminar_id}/complete", headers=OPERATOR)
        [completion] = await eventually(
            lambda: published("seminar.completed.v1"), what="completion"
        )
    assert sorted(completion.data["attendee_ids"]) == sorted([pseudonym, kept])


async def test_concurrent_attendance_calls_record_everyone_once(
    make_app: AppFactory, seminar_body: Body, published: Published
) -> None:
    app = make_app()
    async with running(app) as client:
        seminar_id = await create_seminar_id(client, seminar_body())
        people = [f"c{i:03d}" for i in range(60)]
        await app.state.runtime.mongo.db["roster"].insert_many(
            [
                {
                    "_id": f"{seminar_id}|{p}",
                    "seminar_id": seminar_id,
                    "participant_id": p,
                    "status": "confirmed",
                    "version": 1,
                }
                for p in people
            ]
        )
        # Five overlapping batches at once (operator and video platform, say).
        batches = [people[i * 10 : i * 10 + 20] for i in range(5)]
        responses = await asyncio.gather(
            *(
                client.post(
                    f"/v1/seminars/{seminar_id}/attendance",
                    json={"participant_ids": batch},
                    headers=OPERATOR,
                )
                for batch in batches
            )
        )
        assert [r.status_code for r in responses] == [202] * 5, [r.text for r in responses]
        recorded = [p for r in responses for p in r.json()["recorded"]]
        seminar = (await client.get(f"/v1/seminars/{seminar_id}")).json()
        events = await eventually(
            lambda: published("attendance.recorded.v1"),
            until=lambda e: sum(len(x.data["participant_ids"]) for x in e) >= len(recorded),
            what="attendance events",
        )
    assert sorted(recorded) == people[:60]
    assert seminar["attendee_count"] == 60
    assert sorted(p for e in events for p in e.data["participant_ids"]) == people[:60]
