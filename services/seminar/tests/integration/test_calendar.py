"""``GET /v1/seminars/{id}/calendar.ics`` over a real reschedule and cancellation, read
back with vobject: a parser independent of the icalendar library that wrote it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from seminarops_devtools.testing.ical import read_calendar
from seminarops_devtools.testing.stack import running

from ..conftest import OPERATOR, AppFactory, Body, create_seminar_id

pytestmark = pytest.mark.integration

BRUSSELS = ZoneInfo("Europe/Brussels")


def _session(start: datetime, hours: float = 2) -> dict[str, str]:
    return {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=hours)).isoformat()}


async def _calendar(client: httpx.AsyncClient, seminar_id: str) -> Any:
    response = await client.get(f"/v1/seminars/{seminar_id}/calendar.ics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    return read_calendar(response.text)


def _events(calendar: Any) -> list[dict[str, Any]]:
    return [
        {
            "uid": event.uid.value,
            "summary": event.summary.value,
            "start": event.dtstart.value,
            "end": event.dtend.value,
            "tzid": event.dtstart.params["X-VOBJ-ORIGINAL-TZID"][0],  # vobject moves TZID here
            "sequence": int(event.sequence.value),
            "status": event.status.value,
        }
        for event in calendar.vevent_list
    ]


async def test_calendar_keeps_uids_grows_sequence_and_shows_the_cancellation(
    make_app: AppFactory, seminar_body: Body
) -> None:
    first = datetime(2026, 10, 20, 16, 0, tzinfo=BRUSSELS)
    second = datetime(2026, 10, 27, 16, 0, tzinfo=BRUSSELS)  # after the clocks go back
    async with running(make_app()) as client:
        seminar_id = await create_seminar_id(
            client,
            seminar_body(
                title="Climate, oceans; and us",
                kind="learning_event",
                starts_at=None,
                ends_at=None,
                sessions=[_session(first), _session(second)],
            ),
        )
        scheduled = await _calendar(client, seminar_id)
        # Capacity alone: a reschedule too (the contract: SEQUENCE grows with each).
        capacity = await client.post(
            f"/v1/seminars/{seminar_id}/reschedule", json={"capacity": 80}, headers=OPERATOR
        )
        assert capacity.status_code == 200
        recounted = await _calendar(client, seminar_id)
        moved_to = second + timedelta(days=1, hours=1)
        moved = await client.post(
            f"/v1/seminars/{seminar_id}/reschedule",
            json={"sessions": [_session(first), _session(moved_to)]},
            headers=OPERATOR,
        )
        assert moved.status_code == 200, moved.text
        rescheduled = await _calendar(client, seminar_id)
        again = await client.post(
            f"/v1/seminars/{seminar_id}/reschedule",
            json={"sessions": [_session(first + timedelta(hours=1)), _session(moved_to)]},
            headers=OPERATOR,
        )
        assert again.status_code == 200
        twice = await _calendar(client, seminar_id)
        cancel = await client.post(f"/v1/seminars/{seminar_id}/cancel", headers=OPERATOR)
        assert cancel.status_code == 200
        cancelled = await _calendar(client, seminar_id)
        unknown = await client.get("/v1/seminars/sem-unknown/calendar.ics")

    uids = [f"{seminar_id}-0@seminar-ops", f"{seminar_id}-1@seminar-ops"]
    before = _events(scheduled)
    assert [e["uid"] for e in before] == uids
    assert [e["summary"] for e in before] == ["Climate, oceans; and us"] * 2
    assert [e["tzid"] for e in before] == ["Europe/Brussels"] * 2
    # The wall-clock times of the seminar's zone, on either side of the DST change.
    assert [e["start"] for e in before] == [first, second]
    assert [e["start"].utcoffset() for e in before] == [timedelta(hours=2), timedelta(hours=1)]
    assert [e["end"] for e in before] == [first + timedelta(hours=2), second + timedelta(hours=2)]
    assert [(e["sequence"], e["status"]) for e in before] == [(0, "CONFIRMED")] * 2
    assert [{**e, "sequence": 0} for e in _events(recounted)] == before
    assert [e["sequence"] for e in _events(recounted)] == [1, 1]
    assert scheduled.vtimezone.tzid.value == "Europe/Brussels"

    after = _events(rescheduled)
    assert [e["uid"] for e in after] == uids
    assert [e["start"] for e in after] == [first, moved_to]
    assert [e["sequence"] for e in after] == [2, 2]
    assert [e["sequence"] for e in _events(twice)] == [3, 3]
    assert [e["start"] for e in _events(twice)] == [first + timedelta(hours=1), moved_to]

    gone = _events(cancelled)
    assert [e["uid"] for e in gone] == uids
    assert [(e["sequence"], e["status"]) for e in gone] == [(4, "CANCELLED")] * 2
    assert unknown.status_code == 404
