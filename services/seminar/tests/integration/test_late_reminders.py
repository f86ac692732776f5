"""Defect 6: a seminar scheduled inside its reminder lead time got no reminder at all.
Now a session whose every reminder time has passed gets one at once, through the real
scheduler (durable job, due now, run by the service's own poller), and none once it
has started; operators see each seminar's reminders, pending and sent."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import running
from seminarops_shared.events import Envelope

from ..conftest import (
    OPERATOR,
    PARTICIPANT,
    AppFactory,
    Body,
    Published,
    create_seminar_id,
)

pytestmark = pytest.mark.integration


def _at(moment: datetime, hours: float = 1) -> dict[str, str]:
    return {
        "starts_at": moment.isoformat(),
        "ends_at": (moment + timedelta(hours=hours)).isoformat(),
    }


def _reminders_of(events: list[Envelope], seminar_id: str) -> list[tuple[int, int, str]]:
    return [
        (e.data["session_index"], e.data["offset_minutes"], e.data["session_starts_at"])
        for e in events
        if e.type == "seminar.reminder_due.v1" and e.subject == seminar_id
    ]


async def _listed(client: httpx.AsyncClient, seminar_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/seminars/{seminar_id}/reminders", headers=OPERATOR)
    assert response.status_code == 200, response.text
    reminders: list[dict[str, Any]] = response.json()["reminders"]
    return reminders


async def test_a_session_inside_its_lead_time_is_reminded_at_once(
    make_app: AppFactory, seminar_body: Body, published: Published, clock: Any
) -> None:
    now = clock.now  # 2026-01-01 09:00 UTC; offsets 1440 and 60 minutes
    app = make_app(clock=clock)
    async with running(app) as client:
        soon = await create_seminar_id(client, seminar_body(**_at(now + timedelta(minutes=30))))
        started = await create_seminar_id(client, seminar_body(**_at(now - timedelta(minutes=10))))
        later = await create_seminar_id(client, seminar_body(**_at(now + timedelta(hours=3))))
        learning = await create_seminar_id(
            client,
            seminar_body(
                kind="learning_event",
                starts_at=None,
                ends_at=None,
                sessions=[_at(now + timedelta(minutes=20)), _at(now + timedelta(days=7))],
            ),
        )
        events = await eventually(
            published,
            until=lambda e: _reminders_of(e, soon) and _reminders_of(e, learning),
            what="the reminders sent at once",
        )
        assert _reminders_of(events, soon) == [(0, 30, "2026-01-01T09:30:00Z")]
        assert _reminders_of(events, learning) == [(0, 20, "2026-01-01T09:20:00Z")]
        assert _reminders_of(events, started) == []
        assert _reminders_of(events, later) == []

        listed = await _listed(client, soon)
        assert [(r["status"], r["offset_minutes"], r["session_index"]) for r in listed] == [
            ("sent", 30, 0)
        ]
        assert listed[0]["job_id"] == f"reminder:{soon}:0:60"
        assert listed[0]["sent_at"] == "2026-01-01T09:00:00Z"
        assert listed[0]["session_starts_at"] == "2026-01-01T10:30:00+01:00"  # Brussels
        assert await _listed(client, started) == []
        assert [
            (r["status"], r["offset_minutes"], r["due_at"]) for r in await _listed(client, later)
        ] == [("pending", 60, "2026-01-01T11:00:00Z")]

        # Moving the learning event's second session re-plans its reminders: the first
        # session (unchanged, already reminded) is not reminded twice.
        moved = await client.post(
            f"/v1/seminars/{learning}/reschedule",
            json={"sessions": [_at(now + timedelta(minutes=20)), _at(now + timedelta(days=8))]},
            headers=OPERATOR,
        )
        assert moved.status_code == 200, moved.text
        assert await app.state.runtime.scheduler.run_due() == 0
        assert [
            (r["status"], r["session_index"], r["offset_minutes"])
            for r in await _listed(client, learning)
        ] == [("sent", 0, 20), ("pending", 1, 1440), ("pending", 1, 60)]

        # Moving the soon one to another time inside its lead: one for the new time.
        again = await client.post(
            f"/v1/seminars/{soon}/reschedule",
            json=_at(now + timedelta(minutes=45)),
            headers=OPERATOR,
        )
        assert again.status_code == 200
        events = await eventually(
            published,
            until=lambda e: len(_reminders_of(e, soon)) == 2,
            what="the moved seminar's reminder",
        )
        assert _reminders_of(events, soon)[1] == (0, 45, "2026-01-01T09:45:00Z")
        assert _reminders_of(events, learning) == [(0, 20, "2026-01-01T09:20:00Z")]

        unauthenticated = await client.get(f"/v1/seminars/{soon}/reminders")
        participant = await client.get(f"/v1/seminars/{soon}/reminders", headers=PARTICIPANT)
        unknown = await client.get("/v1/seminars/sem-unknown/reminders", headers=OPERATOR)
    assert (unauthenticated.status_code, participant.status_code) == (401, 403)
    assert unknown.status_code == 404
