"""The seminar service over HTTP against the real broker and database: scheduling,
refusals (nothing stored), roles, lifecycle, listing."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, running

from ..conftest import OPERATOR, PARTICIPANT, PLATFORM, AppFactory, Body, Published, create_seminar

pytestmark = pytest.mark.integration


def unique() -> str:
    return f"sem-{uuid.uuid4().hex[:12]}"


async def test_schedule_read_and_the_scheduled_event(
    make_app: AppFactory, seminar_body: Body, published: Published, kafka: KafkaProbe
) -> None:
    async with running(make_app()) as client:
        response = await client.post(
            "/v1/seminars",
            json=seminar_body(
                moderator="mod-7",
                host_school_id="school-12",
                open_to_other_schools=False,
                language="EN",
            ),
            headers=OPERATOR,
        )
        assert response.status_code == 201, response.text
        created = response.json()
        seminar_id = created["id"]
        assert seminar_id.startswith("sem-")
        assert response.headers["location"] == f"/v1/seminars/{seminar_id}"
        read = (await client.get(f"/v1/seminars/{seminar_id}")).json()
        [event] = await eventually(
            lambda: published("seminar.scheduled.v1"), what="scheduled event"
        )
        records = await kafka.read_all("seminar.events")
    assert read == created
    assert read["status"] == "scheduled"
    assert read["year"] == 2025
    assert read["language"] == "en"
    assert read["starts_at"] == "2025-03-11T16:00:00+01:00"
    assert read["sessions"] == [
        {"starts_at": "2025-03-11T16:00:00+01:00", "ends_at": "2025-03-11T17:30:00+01:00"}
    ]
    assert event.source == "/services/seminar"
    assert event.subject == seminar_id
    assert records[0].key == seminar_id.encode()
    assert event.data["sessions"] == [
        {"starts_at": "2025-03-11T15:00:00Z", "ends_at": "2025-03-11T16:30:00Z"}
    ]
    assert event.data["kind"] == "online_seminar"
    assert event.data["year"] == 2025
    assert event.data["moderator"] == "mod-7"
    assert event.data["host_school_id"] == "school-12"
    assert event.data["open_to_other_schools"] is False


BAD_INPUT: list[tuple[dict[str, Any], str]] = [
    ({"timezone": "Europe/Atlantis"}, "unknown time zone"),
    ({"ends_at": "2025-03-11T15:00:00+01:00"}, "ends_at must be after starts_at"),
    ({"capacity": -5}, "greater than 0"),
    ({"capacity": 0}, "greater than 0"),
    ({"language": "Klingon"}, "language"),
    ({"kind": "webinar"}, "learning_event"),
    ({"title": ""}, "at least 1 character"),
    ({"starts_at": None}, "give both starts_at and ends_at"),
    ({"capacity": None}, "Field required"),
    ({"starts_at": "yesterday"}, "datetime"),
    ({"colour": "blue"}, "Extra inputs are not permitted"),
    ({"starts_at": "2025-03-30T02:30:00", "ends_at": "2025-03-30T04:00:00"}, "does not exist"),
    (
        {
            "starts_at": None,
            "ends_at": None,
            "sessions": [
                {"starts_at": "2025-03-11T16:00:00Z", "ends_at": "2025-03-11T17:00:00Z"},
                {"starts_at": "2025-03-12T16:00:00Z", "ends_at": "2025-03-12T17:00:00Z"},
            ],
        },
        "exactly one session",
    ),
]


async def test_bad_input_is_422_with_the_reason_and_nothing_is_stored(
    make_app: AppFactory, seminar_body: Body, kafka: KafkaProbe
) -> None:
    async with running(make_app()) as client:
        for overrides, expected in BAD_INPUT:
            seminar_id = unique()
            response = await client.post(
                "/v1/seminars", json=seminar_body(**overrides, id=seminar_id), headers=OPERATOR
            )
            assert response.status_code == 422, (overrides, response.text)
            assert expected in response.text, (overrides, response.text)
            assert (await client.get(f"/v1/seminars/{seminar_id}")).status_code == 404
        assert (await client.get("/v1/seminars")).json()["items"] == []
    assert await kafka.read_all("seminar.events") == []


async def test_malformed_json_is_422_and_nothing_is_stored(
    make_app: AppFactory, seminar_body: Body, published: Published, kafka: KafkaProbe
) -> None:
    async with running(make_app()) as client:
        for raw in [b'{"title": "x", ', b"[]", b""]:
            response = await client.post(
                "/v1/seminars",
                content=raw,
                headers={**OPERATOR, "Content-Type": "application/json"},
            )
            assert response.status_code == 422, raw
        assert (await client.get("/v1/seminars")).json()["items"] == []
    assert await kafka.read_all("seminar.events") == []


async def test_changes_need_the_operator_role_and_reads_need_none(
    make_app: AppFactory, seminar_body: Body
) -> None:
    async with running(make_app()) as client:
        assert (await client.post("/v1/seminars", json=seminar_body())).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (
            await client.post("/v1/seminars", json=seminar_body(), headers=wrong)
        ).status_code == 401
        for headers in (PLATFORM, PARTICIPANT):
            response = await client.post("/v1/seminars", json=seminar_body(), headers=headers)
            assert response.status_code == 403
        created = await create_seminar(client, seminar_body())
        path = f"/v1/seminars/{created['id']}"
        assert (await client.get(path)).status_code == 200
        assert (await client.get(f"{path}/roster")).status_code == 401
        assert (await client.get(f"{path}/roster", headers=PARTICIPANT)).status_code == 403
        assert (await client.get(f"{path}/roster", headers=PLATFORM)).status_code == 200
        assert (await client.post(f"{path}/cancel", headers=PLATFORM)).status_code == 403
        assert (await client.post(f"{path}/complete", headers=PLATFORM)).status_code == 403
        assert (await client.post(f"{path}/start", headers=PARTICIPANT)).status_code == 403
        response = await client.post(
            f"{path}/attendance", json={"participant_ids": ["p1"]}, headers=PARTICIPANT
        )
        assert response.status_code == 403
        assert (await client.get(path)).json()["status"] == "scheduled"


async def test_an_operator_given_id_makes_scheduling_idempotent(
    make_app: AppFactory, seminar_body: Body, published: Published, kafka: KafkaProbe
) -> None:
    seminar_id = unique()
    async with running(make_app()) as client:
        first = await client.post(
            "/v1/seminars", json=seminar_body(id=seminar_id), headers=OPERATOR
        )
        again = await client.post(
            "/v1/seminars", json=seminar_body(id=seminar_id), headers=OPERATOR
        )
        different = await client.post(
            "/v1/seminars", json=seminar_body(id=seminar_id, capacity=51), headers=OPERATOR
        )
        assert (await client.get(f"/v1/seminars/{seminar_id}")).json()["capacity"] == 50
        await eventually(published, what="scheduled event")
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert different.status_code == 409
    assert "different definition" in different.text
    assert len(await published()) == 1


async def test_lifecycle_transitions_and_illegal_ones_change_nothing(
    make_app: AppFactory, seminar_body: Body, published: Published, kafka: KafkaProbe
) -> None:
    async with running(make_app()) as client:
        seminar = await create_seminar(client, seminar_body())
        path = f"/v1/seminars/{seminar['id']}"
        live = await client.post(f"{path}/start", headers=PLATFORM)
        assert live.status_code == 200
        assert live.json()["status"] == "live"
        assert (await client.post(f"{path}/start", headers=OPERATOR)).json()["status"] == "live"
        completed = await client.post(f"{path}/complete", headers=OPERATOR)
        assert completed.status_code == 202
        assert completed.json()["status"] == "completed"
        before = (await client.get(path)).json()
        refusals = [
            await client.post(f"{path}/cancel", json={"reason": "x"}, headers=OPERATOR),
            await client.post(f"{path}/start", headers=OPERATOR),
            await client.post(f"{path}/reschedule", json={"capacity": 10}, headers=OPERATOR),
            await client.post(
                f"{path}/attendance", json={"participant_ids": ["p1"]}, headers=OPERATOR
            ),
        ]
        assert [r.status_code for r in refusals] == [409, 409, 409, 409]
        assert "completed" in refusals[0].json()["detail"]
        assert (await client.get(path)).json() == before
        assert (await client.post(f"{path}/complete", headers=OPERATOR)).status_code == 202

        other = await create_seminar(client, seminar_body())
        other_path = f"/v1/seminars/{other['id']}"
        cancelled = await client.post(
            f"{other_path}/cancel", json={"reason": "moderator ill"}, headers=OPERATOR
        )
        assert cancelled.status_code == 200
        assert cancelled.json()["cancel_reason"] == "moderator ill"
        assert (await client.post(f"{other_path}/complete", headers=OPERATOR)).status_code == 409
        assert (await client.post(f"{other_path}/cancel", headers=OPERATOR)).status_code == 200
        assert (
            await client.post("/v1/seminars/sem-unknown/start", headers=OPERATOR)
        ).status_code == 404
        events = await eventually(
            published,
            until=lambda events: len(events) >= 5,
            what="lifecycle events",
        )
    # Per seminar in order (one partition each); each transition once.
    assert [e.type for e in events if e.subject == seminar["id"]] == [
        "seminar.scheduled.v1",
        "seminar.went_live.v1",
        "seminar.completed.v1",
    ]
    assert [e.type for e in events if e.subject == other["id"]] == [
        "seminar.scheduled.v1",
        "seminar.cancelled.v1",
    ]
    assert len(events) == 5
    [cancel_event] = [e for e in events if e.type == "seminar.cancelled.v1"]
    assert cancel_event.data["reason"] == "moderator ill"
    [completed_event] = [e for e in events if e.type == "seminar.completed.v1"]
    assert completed_event.data["attendee_ids"] == []
    assert completed_event.data["year"] == 2025


async def test_reschedule_emits_old_and_new_values_once(
    make_app: AppFactory, seminar_body: Body, published: Published, kafka: KafkaProbe
) -> None:
    async with running(make_app()) as client:
        seminar = await create_seminar(client, seminar_body())
        path = f"/v1/seminars/{seminar['id']}/reschedule"
        change = {
            "starts_at": "2025-03-12T10:00:00",  # wall-clock time in Brussels
            "ends_at": "2025-03-12T11:30:00",
            "capacity": 80,
            "reason": "moderator travelling",
        }
        moved = await client.post(path, json=change, headers=OPERATOR)
        assert moved.status_code == 200, moved.text
        assert moved.json()["starts_at"] == "2025-03-12T10:00:00+01:00"
        assert moved.json()["capacity"] == 80
        assert moved.json()["status"] == "scheduled"
        assert (await client.post(path, json=change, headers=OPERATOR)).status_code == 200
        bad = await client.post(path, json={"capacity": -1}, headers=OPERATOR)
        assert bad.status_code == 422
        empty = await client.post(path, json={}, headers=OPERATOR)
        assert empty.status_code == 422
        events = await eventually(lambda: published("seminar.rescheduled.v1"), what="rescheduled")
    [event] = events
    assert event.data["old_sessions"] == [
        {"starts_at": "2025-03-11T15:00:00Z", "ends_at": "2025-03-11T16:30:00Z"}
    ]
    assert event.data["new_sessions"] == [
        {"starts_at": "2025-03-12T09:00:00Z", "ends_at": "2025-03-12T10:30:00Z"}
    ]
    assert (event.data["old_capacity"], event.data["new_capacity"]) == (50, 80)
    assert event.data["reason"] == "moderator travelling"


async def test_listing_filters_and_pages(make_app: AppFactory, seminar_body: Body) -> None:
    async with running(make_app()) as client:
        ids = []
        for day in range(1, 8):
            seminar = await create_seminar(
                client,
                seminar_body(
                    starts_at=f"2025-05-{day:02d}T10:00:00",
                    ends_at=f"2025-05-{day:02d}T11:00:00",
                    programme="etwinning_plus" if day % 2 else "etwinning",
                    language="fr" if day == 3 else "en",
                ),
            )
            ids.append(seminar["id"])
        await client.post(f"/v1/seminars/{ids[0]}/cancel", headers=OPERATOR)

        async def all_pages(**params: Any) -> list[str]:
            seen: list[str] = []
            cursor = None
            while True:
                query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
                page = (await client.get("/v1/seminars", params=query)).json()
                seen.extend(item["id"] for item in page["items"])
                cursor = page["next_cursor"]
                if cursor is None:
                    return seen

        assert await all_pages() == ids
        assert await all_pages(programme="etwinning_plus") == ids[0::2]
        assert await all_pages(status="scheduled", programme="etwinning_plus") == ids[2::2]
        assert await all_pages(language="FR") == [ids[2]]
        assert (
            await all_pages(
                starts_from="2025-05-02T10:00:00+02:00", starts_before="2025-05-04T00:00:00Z"
            )
            == ids[1:3]
        )
        assert await all_pages(year=2024) == []
        assert await all_pages(kind="learning_event") == []
        bad = await client.get("/v1/seminars", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 422
        assert (await client.get("/v1/seminars", params={"limit": 0})).status_code == 422
        assert (await client.get("/v1/seminars", params={"status": "nope"})).status_code == 422
        naive = await client.get("/v1/seminars", params={"starts_from": "2025-05-01T00:00:00"})
        assert naive.status_code == 422


async def test_multi_session_learning_event_across_dst(
    make_app: AppFactory, seminar_body: Body, clock: Any
) -> None:
    async with running(make_app(clock=clock)) as client:
        created = await create_seminar(
            client,
            seminar_body(
                kind="learning_event",
                starts_at=None,
                ends_at=None,
                sessions=[
                    {"starts_at": "2026-03-23T18:00:00", "ends_at": "2026-03-23T19:30:00"},
                    {"starts_at": "2026-03-30T18:00:00", "ends_at": "2026-03-30T19:30:00"},
                ],
            ),
        )
    assert [s["starts_at"] for s in created["sessions"]] == [
        "2026-03-23T18:00:00+01:00",
        "2026-03-30T18:00:00+02:00",
    ]
    assert created["ends_at"] == "2026-03-30T19:30:00+02:00"
    assert created["year"] == 2026
    assert timedelta(days=7) - timedelta(hours=1) == (
        datetime.fromisoformat(created["sessions"][1]["starts_at"])
        - datetime.fromisoformat(created["sessions"][0]["starts_at"])
    )
