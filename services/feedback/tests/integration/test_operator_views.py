"""What operators can see: a seminar's evaluation window and its timed steps as the
scheduler holds or ran them, and the form a kind is evaluated with."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import running
from seminarops_shared.clock import utc_now
from seminarops_shared.events import envelope_for
from seminarops_shared.events.seminar import SeminarCompleted
from seminarops_shared.events.topics import SEMINAR_EVENTS
from seminarops_shared.events.vocabulary import Kind, Programme

if TYPE_CHECKING:
    from conftest import Harness

pytestmark = pytest.mark.integration


async def _plan(harness: Harness, client: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    response = await client.get(f"/v1/seminars/{sid}/evaluation-plan", headers=harness.operator)
    assert response.status_code == 200, response.text
    plan: dict[str, Any] = response.json()
    return plan


def _steps(plan: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    return [(s["step"], s["status"], s["count"]) for s in plan["steps"]]


async def test_the_evaluation_plan_follows_the_window_through_its_jobs(
    harness: Harness,
) -> None:
    sid = harness.seminar_id()
    attendees = [f"{sid}-a", f"{sid}-b", f"{sid}-c"]
    app = harness.app(window_days=14, reminder_before_close_hours=48, close_grace_seconds=60)
    async with running(app) as client:
        path = f"/v1/seminars/{sid}/evaluation-plan"
        assert (await client.get(path, headers=harness.operator)).status_code == 404
        assert (await client.get(path)).status_code == 401
        assert (await client.get(path, headers=harness.participant)).status_code == 403

        await harness.complete(sid, attendees)
        await harness.until_open(client, sid, 3)
        opened = await _plan(harness, client, sid)
        opens_at = datetime.fromisoformat(opened["opens_at"])
        closes_at = datetime.fromisoformat(opened["closes_at"])
        assert opened["state"] == "open"
        assert opened["form_id"] == "default-online-seminar"
        assert _steps(opened) == [
            ("window_opens", "done", None),
            ("evaluation_reminder", "pending", None),
            ("window_closes", "pending", None),
        ]
        assert [datetime.fromisoformat(s["due_at"]) for s in opened["steps"]] == [
            opens_at,
            closes_at - timedelta(hours=48),
            closes_at + timedelta(seconds=60),
        ]

        answered = await harness.evaluate(client, sid, attendees[0])
        assert answered.status_code == 201
        harness.clock.move_to(closes_at - timedelta(hours=48) + timedelta(seconds=1))
        await harness.wait_events("evaluation.reminder_due.v1", 2)
        reminded = await eventually(
            lambda: _plan(harness, client, sid),
            until=lambda p: p["steps"][1]["status"] == "done",
            what="the reminder done",
        )
        assert _steps(reminded)[1] == ("evaluation_reminder", "done", 2)
        assert reminded["steps"][1]["done_at"] is not None

        harness.clock.move_to(closes_at + timedelta(seconds=61))
        await harness.wait_events("evaluation.window_closed.v1", 1)
        closed = await _plan(harness, client, sid)
    assert closed["state"] == "closed"
    assert _steps(closed) == [
        ("window_opens", "done", None),
        ("evaluation_reminder", "done", 2),
        ("window_closes", "done", None),
    ]
    assert closed["steps"][2]["done_at"] is not None


async def test_a_window_expired_on_arrival_skips_its_reminder(harness: Harness) -> None:
    sid = harness.seminar_id()
    stale = envelope_for(
        SeminarCompleted(
            seminar_id=sid,
            kind=Kind.PD_WORKSHOP,
            programme=Programme.ETWINNING,
            year=2025,
            attendee_ids=[f"{sid}-a"],
        ),
        source="/services/seminar",
        time=utc_now() - timedelta(days=30),
    )
    async with running(harness.app(window_days=14)) as client:
        await harness.kafka.send_envelope(stale, topic=SEMINAR_EVENTS, key=sid)
        await harness.wait_events("evaluation.window_closed.v1", 1)
        plan = await _plan(harness, client, sid)
    assert plan["state"] == "closed"
    assert _steps(plan) == [
        ("window_opens", "done", None),
        ("evaluation_reminder", "skipped", None),
        ("window_closes", "done", None),
    ]


async def test_the_form_a_kind_uses_is_readable_where_it_is_assigned(harness: Harness) -> None:
    async with running(harness.app()) as client:
        path = "/v1/kinds/pd_workshop/form"
        default = await client.get(path, headers=harness.operator)
        form = {
            "id": "workshop-kind-form",
            "title": "Workshops",
            "questions": [{"id": "useful", "type": "rating", "text": "Useful?"}],
        }
        created = await client.post("/v1/forms", json=form, headers=harness.operator)
        assert created.status_code == 201, created.text
        assigned = await client.post(
            path, json={"form_id": "workshop-kind-form"}, headers=harness.operator
        )
        assert assigned.status_code == 200, assigned.text
        after = await client.get(path, headers=harness.operator)
        other_kind = await client.get("/v1/kinds/online_seminar/form", headers=harness.operator)
        unknown_kind = await client.get("/v1/kinds/lecture/form", headers=harness.operator)
        participant = await client.get(path, headers=harness.participant)
        anonymous = await client.get(path)
    assert default.status_code == 200
    assert (default.json()["id"], default.json()["version"]) == ("default-pd-workshop", 1)
    assert (after.json()["id"], after.json()["version"]) == ("workshop-kind-form", 1)
    assert [q["id"] for q in after.json()["questions"]] == ["overall", "useful"]
    assert other_kind.json()["id"] == "default-online-seminar"
    assert unknown_kind.status_code == 422
    assert (participant.status_code, anonymous.status_code) == (403, 401)
