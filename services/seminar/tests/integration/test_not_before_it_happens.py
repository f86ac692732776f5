"""Defect 2: a seminar dated months ahead could go live, be attended and completed
today, then count as a participation of its future year. The lifecycle now refuses
what cannot have happened yet (409), by the service's own clock, and still takes a
past season in at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import running

from ..conftest import OPERATOR, PLATFORM, AppFactory, Body, Published, create_seminar_id

pytestmark = pytest.mark.integration

FIRST = datetime(2026, 9, 15, 14, 0, tzinfo=UTC)  # 16:00 in Brussels, months after the clock
SECOND = FIRST + timedelta(days=7)


async def test_a_future_seminar_cannot_run_before_its_sessions(
    make_app: AppFactory,
    seminar_body: Body,
    registrations: Any,
    published: Published,
    clock: Any,
) -> None:
    person = f"p-{uuid.uuid4().hex[:10]}"
    async with running(make_app(clock=clock)) as client:
        seminar_id = await create_seminar_id(
            client,
            seminar_body(
                kind="learning_event",
                starts_at=None,
                ends_at=None,
                sessions=[
                    {"starts_at": f.isoformat(), "ends_at": (f + timedelta(hours=2)).isoformat()}
                    for f in (FIRST, SECOND)
                ],
            ),
        )
        path = f"/v1/seminars/{seminar_id}"
        await registrations.publish(registrations.confirmed(seminar_id, person))
        attended = {"participant_ids": [person]}
        before = (await client.get(path)).json()

        # Today (1 January): nothing of it can have happened.
        refused = [
            await client.post(f"{path}/start", headers=PLATFORM),
            await client.post(f"{path}/attendance", json=attended, headers=OPERATOR),
            await client.post(f"{path}/complete", headers=OPERATOR),
        ]
        assert [r.status_code for r in refused] == [409, 409, 409]
        assert "cannot start before 2026-09-15T15:00:00+02:00" in refused[0].json()["detail"]
        assert "before the seminar starts" in refused[1].json()["detail"]
        assert "last session starts at 2026-09-22T16:00:00+02:00" in refused[2].json()["detail"]
        assert (await client.get(path)).json() == before

        # 61 minutes before the first session: still too early; 60: the room opens.
        clock.now = FIRST - timedelta(minutes=61)
        assert (await client.post(f"{path}/start", headers=PLATFORM)).status_code == 409
        clock.now = FIRST - timedelta(minutes=60)
        live = await client.post(f"{path}/start", headers=PLATFORM)
        assert live.status_code == 200, live.text
        assert live.json()["status"] == "live"
        early = await client.post(f"{path}/attendance", json=attended, headers=OPERATOR)
        assert early.status_code == 409

        clock.now = FIRST + timedelta(minutes=5)
        await eventually(
            lambda: client.get(f"{path}/roster", headers=OPERATOR),
            until=lambda r: r.json()["counts"]["confirmed"] == 1,
            what="the roster",
        )
        on_time = await client.post(f"{path}/attendance", json=attended, headers=OPERATOR)
        assert on_time.status_code == 202, on_time.text
        assert on_time.json()["recorded"] == [person]
        # Between the sessions: the second one has not started, so it is not over.
        clock.now = SECOND - timedelta(minutes=1)
        assert (await client.post(f"{path}/complete", headers=OPERATOR)).status_code == 409
        clock.now = SECOND
        completed = await client.post(f"{path}/complete", headers=OPERATOR)
        assert completed.status_code == 202, completed.text

        events = await eventually(
            published,
            until=lambda e: any(x.type == "seminar.completed.v1" for x in e),
            what="completion",
        )
    mine = [e for e in events if e.subject == seminar_id]
    assert [e.type for e in mine] == [
        "seminar.scheduled.v1",
        "seminar.went_live.v1",
        "attendance.recorded.v1",
        "seminar.completed.v1",
    ]
    assert mine[-1].data["year"] == 2026
    assert mine[-1].data["attendee_ids"] == [person]


async def test_a_past_season_is_scheduled_attended_and_completed_at_once(
    make_app: AppFactory, seminar_body: Body, registrations: Any, clock: Any
) -> None:
    person = f"p-{uuid.uuid4().hex[:10]}"
    async with running(make_app(clock=clock)) as client:
        seminar_id = await create_seminar_id(
            client,
            seminar_body(starts_at="2024-05-02T15:00:00Z", ends_at="2024-05-02T16:00:00Z"),
        )
        path = f"/v1/seminars/{seminar_id}"
        await registrations.publish(registrations.confirmed(seminar_id, person))
        await eventually(
            lambda: client.get(f"{path}/roster", headers=OPERATOR),
            until=lambda r: r.json()["counts"]["confirmed"] == 1,
            what="the roster",
        )
        attended = await client.post(
            f"{path}/attendance", json={"participant_ids": [person]}, headers=OPERATOR
        )
        assert attended.status_code == 202
        assert attended.json()["recorded"] == [person]
        completed = await client.post(f"{path}/complete", headers=OPERATOR)
        assert completed.status_code == 202
        assert completed.json()["year"] == 2024
