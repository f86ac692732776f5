"""The issue's "done when": a completed seminar with 400 attendees, 250 evaluations,
duplicates, non-attendees and latecomers; stored responses, rate and events exact."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from seminarops_devtools.testing.stack import running

if TYPE_CHECKING:
    from conftest import Harness

pytestmark = pytest.mark.integration

RATINGS = ["excellent", "very_good", "good", "fair", "poor"]


async def test_400_attendees_250_evaluations_duplicates_strangers_and_latecomers(
    harness: Harness,
) -> None:
    sid = harness.seminar_id()
    attendees = [f"{sid}-p{i:03d}" for i in range(400)]
    answering, silent = attendees[:250], attendees[250:]
    app = harness.app(window_days=14, reminder_before_close_hours=48, close_grace_seconds=60)
    async with running(app) as client:
        await harness.complete(sid, attendees)
        state = await harness.until_open(client, sid, 400)
        closes_at = datetime.fromisoformat(state["closes_at"])
        assert closes_at - datetime.fromisoformat(state["opens_at"]) == timedelta(days=14)

        limit = asyncio.Semaphore(25)

        async def send(participant: str, i: int, **kwargs: object) -> tuple[str, int]:
            async with limit:
                response = await harness.evaluate(
                    client,
                    sid,
                    participant,
                    overall=RATINGS[i % 5],
                    answers={"content": 1 + i % 5, "recommend": i % 2 == 0},
                    comments=f"comment {i}",
                    **kwargs,  # type: ignore[arg-type]
                )
            return participant, response.status_code

        strangers = [f"{sid}-stranger{i}" for i in range(20)]
        twice = answering[:30]
        index = {p: i for i, p in enumerate(attendees)}
        results = await asyncio.gather(
            *(send(p, index[p]) for p in answering),
            # The same people again, racing their first submission.
            *(send(p, index[p]) for p in twice),
            *(send(p, 0) for p in strangers),
            # Attendees with an out-of-range rating: 422, and they stay non-respondents.
            *(harness.evaluate(client, sid, p, answers={"content": 9}) for p in silent[:10]),
        )
        statuses = [r if isinstance(r, tuple) else (None, r.status_code) for r in results]
        by_status = Counter(code for _, code in statuses)
        assert by_status == {201: 250, 409: 30, 403: 20, 422: 10}
        accepted = Counter(p for p, code in statuses if code == 201)
        assert set(accepted) == set(answering)
        assert set(accepted.values()) == {1}
        assert {p for p, code in statuses if code == 403} == set(strangers)

        rate = await harness.rate(client, sid)
        assert (rate["attendees"], rate["responses"], rate["response_rate_pct"]) == (400, 250, 62.5)

        # The reminder: the 150 who have not answered, and only them.
        harness.clock.move_to(closes_at - timedelta(hours=48) + timedelta(seconds=1))
        reminders = await harness.wait_events("evaluation.reminder_due.v1", 150)

        # Past the close: nobody can answer any more, even before the closing job ran.
        harness.clock.move_to(closes_at + timedelta(seconds=1))
        late = await asyncio.gather(*(harness.evaluate(client, sid, p) for p in silent[10:30]))
        assert {r.status_code for r in late} == {403}
        assert "closed" in late[0].json()["detail"]
        harness.clock.move_to(closes_at + timedelta(seconds=61))
        [closed] = await harness.wait_events("evaluation.window_closed.v1", 1)

        db = harness.db(app)
        stored = await db["responses"].find({}).to_list()
        markers = await db["respondents"].count_documents({"seminar_id": sid})
        rates = (await client.get("/v1/response-rates", params={"year": 2026})).json()

    assert len(stored) == 250
    assert markers == 250
    assert {d["participant_id"] for d in stored} == set(answering)
    for doc in stored:
        i = index[doc["participant_id"]]
        assert doc["overall"] == RATINGS[i % 5]
        assert doc["answers"] == {"content": 1 + i % 5, "recommend": i % 2 == 0}
        assert doc["comments"] == f"comment {i}"
        assert (doc["form_id"], doc["form_version"]) == ("default-online-seminar", 1)

    assert rates["rows"] == [
        {
            "kind": "online_seminar",
            "programme": "etwinning",
            "year": 2026,
            "seminars": 1,
            "attendees": 400,
            "responses": 250,
            "response_rate_pct": 62.5,
        }
    ]

    events = await harness.events()
    counts = Counter(e.type for e in events)
    assert counts == {
        "evaluation.window_opened.v1": 1,
        "evaluation.invited.v1": 400,
        "evaluation.submitted.v1": 250,
        "evaluation.reminder_due.v1": 150,
        "evaluation.window_closed.v1": 1,
    }
    assert all(e.subject == sid and e.source == "/services/feedback" for e in events)
    [opened] = [e for e in events if e.type == "evaluation.window_opened.v1"]
    assert opened.data["attendee_count"] == 400
    invited = [e.data["participant_id"] for e in events if e.type == "evaluation.invited.v1"]
    assert sorted(invited) == attendees
    submitted = [e.data for e in events if e.type == "evaluation.submitted.v1"]
    assert {s["participant_id"] for s in submitted} == set(answering)
    assert {s["evaluation_id"] for s in submitted} == {d["_id"] for d in stored}
    assert Counter(s["overall"] for s in submitted) == Counter(d["overall"] for d in stored)
    assert all(s["kind"] == "online_seminar" and s["year"] == 2026 for s in submitted)
    assert all("comment" not in str(s) for s in submitted)
    assert sorted(e.data["participant_id"] for e in reminders) == silent
    assert (closed.data["attendee_count"], closed.data["response_count"]) == (400, 250)
    # Each event once: the ids are unique.
    assert len({e.id for e in events}) == len(events)
    assert list(itertools.islice(sorted(invited), 3)) == attendees[:3]
