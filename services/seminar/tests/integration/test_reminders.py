"""Reminders before each session: due at the configured offsets, emitted once each,
surviving a restart, moved by a reschedule, stopped by a cancellation. Time is a fake
clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import running
from seminarops_shared.events import Envelope

from ..conftest import OPERATOR, AppFactory, Body, Published, create_seminar_id

pytestmark = pytest.mark.integration


def _at(moment: datetime, hours: float = 1) -> dict[str, str]:
    return {
        "starts_at": moment.isoformat(),
        "ends_at": (moment + timedelta(hours=hours)).isoformat(),
    }


async def _pending(app: FastAPI, seminar_id: str) -> list[tuple[str, datetime]]:
    jobs = await app.state.runtime.scheduler.pending(seminar_id)
    return [(job.id, job.due_at) for job in jobs]


def _reminders(events: list[Envelope]) -> list[tuple[str | None, int, int]]:
    return [
        (e.subject, e.data["session_index"], e.data["offset_minutes"])
        for e in events
        if e.type == "seminar.reminder_due.v1"
    ]


async def test_reminders_fire_once_survive_a_restart_move_and_stop(
    make_app: AppFactory, seminar_body: Body, published: Published, clock: Any
) -> None:
    start = clock.now  # 2026-01-01 09:00 UTC
    first_session = start + timedelta(hours=27)
    second_session = start + timedelta(days=8, hours=3)
    app = make_app(clock=clock)
    async with running(app) as client:
        steady = await create_seminar_id(
            client,
            seminar_body(
                kind="learning_event",
                starts_at=None,
                ends_at=None,
                sessions=[_at(first_session), _at(second_session)],
            ),
        )
        moved = await create_seminar_id(client, seminar_body(**_at(start + timedelta(hours=30))))
        called_off = await create_seminar_id(
            client, seminar_body(**_at(start + timedelta(hours=26)))
        )
        past = await create_seminar_id(client, seminar_body(**_at(start - timedelta(days=300))))

        assert [job for job, _ in await _pending(app, steady)] == [
            f"reminder:{steady}:0:1440",
            f"reminder:{steady}:0:60",
            f"reminder:{steady}:1:1440",
            f"reminder:{steady}:1:60",
        ]
        assert await _pending(app, past) == []

        response = await client.post(
            f"/v1/seminars/{moved}/reschedule",
            json=_at(start + timedelta(days=3)),
            headers=OPERATOR,
        )
        assert response.status_code == 200
        assert [due for _, due in await _pending(app, moved)] == [
            start + timedelta(days=2),
            start + timedelta(days=3, hours=-1),
        ]
        assert (
            await client.post(f"/v1/seminars/{called_off}/cancel", headers=OPERATOR)
        ).status_code == 200
        assert await _pending(app, called_off) == []

        # 3 h later: the 24 h reminder of the steady seminar's first session is due.
        clock.advance(timedelta(hours=3, seconds=1))
        events = await eventually(
            published,
            until=lambda e: len(_reminders(e)) >= 1,
            what="first reminder",
        )
        assert _reminders(events) == [(steady, 0, 1440)]

    # Restart (a new process over the same database), the clock moves on meanwhile.
    clock.advance(timedelta(hours=23))  # 2026-01-02 11:00:01: the 1 h reminder is due
    restarted = make_app(clock=clock)
    async with running(restarted):
        events = await eventually(
            published,
            until=lambda e: len(_reminders(e)) >= 2,
            what="second reminder after the restart",
        )
        # Past the moved seminar's old times and the cancelled one's: nothing for them.
        clock.advance(timedelta(days=1))  # 2026-01-03 11:00:01: moved seminar's 24 h
        events = await eventually(
            published,
            until=lambda e: len(_reminders(e)) >= 3,
            what="moved seminar's reminder",
        )
        assert await restarted.state.runtime.scheduler.run_due() == 0  # nothing left due
    reminders = _reminders(events)
    # Each once; per seminar in order (seminars may sit on different partitions).
    assert sorted(reminders, key=str) == sorted(
        [(steady, 0, 1440), (steady, 0, 60), (moved, 0, 1440)], key=str
    )
    assert [r for r in reminders if r[0] == steady] == [(steady, 0, 1440), (steady, 0, 60)]
    [last] = [e for e in events if e.type == "seminar.reminder_due.v1" and e.subject == moved]
    assert last.data["session_starts_at"] == "2026-01-04T09:00:00Z"
    assert last.data["timezone"] == "Europe/Brussels"
    assert last.data["title"]


async def test_reminder_offsets_come_from_settings(
    make_app: AppFactory, seminar_body: Body, clock: Any
) -> None:
    app = make_app(clock=clock, reminder_offsets_minutes="120, 15")
    async with running(app) as client:
        seminar_id = await create_seminar_id(
            client, seminar_body(**_at(clock.now + timedelta(hours=5)))
        )
        jobs = await _pending(app, seminar_id)
    assert [job for job, _ in jobs] == [
        f"reminder:{seminar_id}:0:120",
        f"reminder:{seminar_id}:0:15",
    ]
    assert [due for _, due in jobs] == [
        datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
        datetime(2026, 1, 1, 13, 45, tzinfo=UTC),
    ]
