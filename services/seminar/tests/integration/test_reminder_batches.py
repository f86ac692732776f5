"""Reminders are planned in one write per seminar (and per import chunk), against the
real database: ``Scheduler.schedule_many`` stores exactly what ``schedule`` stores,
and an imported season's future seminars get every reminder."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from seminarops_devtools.testing.stack import running
from seminarops_shared.scheduler import SCHEDULED_JOBS, Job, Scheduler
from seminarops_shared.unit_of_work import UnitOfWorkFactory

from ..conftest import OPERATOR, AppFactory

pytestmark = pytest.mark.integration

CSV = {**OPERATOR, "Content-Type": "text/csv"}


async def test_schedule_many_stores_what_schedule_stores_and_clears_leases(
    make_app: AppFactory, clock: Any
) -> None:
    app = make_app(clock=clock)
    async with running(app):
        runtime = app.state.runtime
        scheduler: Scheduler = runtime.scheduler
        uow: UnitOfWorkFactory = runtime.uow
        jobs = runtime.mongo.db[SCHEDULED_JOBS]
        group = f"g-{uuid.uuid4().hex[:8]}"
        due = clock.now + timedelta(days=30)
        payload = {"seminar_id": "sem-x", "session_index": 0}
        async with uow.begin() as unit:
            await scheduler.schedule(
                unit,
                job_id=f"{group}:one",
                kind="test.job",
                group=group,
                due_at=due,
                payload=payload,
            )
            await scheduler.schedule_many(
                unit, [Job(f"{group}:two", "test.job", group, due, payload)]
            )
            await scheduler.schedule_many(unit, [])  # nothing to write
        one = await jobs.find_one({"_id": f"{group}:one"}, {"_id": 0})
        two = await jobs.find_one({"_id": f"{group}:two"}, {"_id": 0})
        assert one == two == {"kind": "test.job", "group": group, "due_at": due, "payload": payload}

        # A job some replica holds, planned again: moved, and free for any replica.
        await jobs.update_many(
            {"group": group}, {"$set": {"lease_owner": "x", "lease_until": clock.now}}
        )
        later = due + timedelta(hours=1)
        async with uow.begin() as unit:
            await scheduler.schedule_many(
                unit,
                [
                    Job(f"{group}:one", "test.job", group, later, {}),
                    Job(f"{group}:two", "test.job", group, later, payload),
                ],
            )
        stored = [doc async for doc in jobs.find({"group": group}, {"_id": 0}).sort("payload", 1)]
    assert stored == [
        {"kind": "test.job", "group": group, "due_at": later, "payload": {}},
        {"kind": "test.job", "group": group, "due_at": later, "payload": payload},
    ]


async def test_an_imported_season_gets_every_future_reminder(
    make_app: AppFactory, clock: Any
) -> None:
    prefix = f"rem-{uuid.uuid4().hex[:8]}"
    start = datetime(2026, 3, 2, 16, 0)  # noqa: DTZ001 - wall-clock time in Brussels
    rows = [
        f"{prefix}-{i},Seminar {i},online_seminar,etwinning,"
        f"{(start + timedelta(days=i)).isoformat()},"
        f"{(start + timedelta(days=i, hours=1)).isoformat()},,Europe/Brussels,30,en"
        for i in range(3)
    ]
    rows.append(
        f"{prefix}-past,Past,online_seminar,etwinning,2025-03-02T16:00,2025-03-02T17:00,,"
        "Europe/Brussels,30,en"
    )
    season = "\n".join(
        ["id,title,kind,programme,starts_at,ends_at,sessions,timezone,capacity,language", *rows]
    )
    app = make_app(clock=clock)
    async with running(app) as client:
        response = await client.post("/v1/seminars/import", content=season.encode(), headers=CSV)
        assert response.status_code == 200, response.text
        assert response.json()["created"] == 4
        scheduler: Scheduler = app.state.runtime.scheduler
        planned = {
            seminar_id: [(job.id, job.due_at) for job in await scheduler.pending(seminar_id)]
            for seminar_id in (f"{prefix}-{key}" for key in (0, 1, 2, "past"))
        }
    brussels_offset = timedelta(hours=1)  # CET in March before the switch
    for i in range(3):
        seminar_id = f"{prefix}-{i}"
        starts = (start + timedelta(days=i) - brussels_offset).replace(tzinfo=UTC)
        assert planned[seminar_id] == [
            (f"reminder:{seminar_id}:0:1440", starts - timedelta(days=1)),
            (f"reminder:{seminar_id}:0:60", starts - timedelta(hours=1)),
        ]
    assert planned[f"{prefix}-past"] == []
