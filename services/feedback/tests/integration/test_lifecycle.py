"""Forms and their versions, attendance around completion, erasure, stale completions."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import running
from seminarops_shared.clock import utc_now
from seminarops_shared.events import envelope_for
from seminarops_shared.events.seminar import SeminarCompleted
from seminarops_shared.events.topics import SEMINAR_EVENTS
from seminarops_shared.events.vocabulary import Kind, Programme
from seminarops_shared.privacy import PrivacySettings

if TYPE_CHECKING:
    from conftest import Harness

pytestmark = pytest.mark.integration


async def test_forms_are_versioned_assigned_and_pinned_per_window(harness: Harness) -> None:
    app = harness.app()
    async with running(app) as client:
        listed = (await client.get("/v1/forms")).json()
        assert {f["id"] for f in listed} >= {
            "default-online-seminar",
            "default-learning-event",
            "default-pd-workshop",
        }
        default = (await client.get("/v1/forms/default-pd-workshop")).json()
        assert default["questions"][0] == {
            "id": "overall",
            "type": "overall",
            "text": default["questions"][0]["text"],
            "required": True,
            "options": ["excellent", "very_good", "good", "fair", "poor"],
            "max_length": None,
        }

        form = {
            "id": "workshop-2026",
            "title": "Workshops 2026",
            "questions": [{"id": "useful", "type": "rating", "text": "Useful?", "required": True}],
        }
        created = await client.post("/v1/forms", json=form, headers=harness.operator)
        assert created.status_code == 201, created.text
        assert created.json()["version"] == 1
        assert [q["id"] for q in created.json()["questions"]] == ["overall", "useful"]
        again = await client.post("/v1/forms", json=form, headers=harness.operator)
        assert again.status_code == 409
        for bad_questions, fragment in [
            ([{"id": "c", "type": "single_choice", "text": "C"}], "options"),
            ([{"id": "y", "type": "yes_no", "text": "Y"}] * 2, "duplicate"),
            ([{"id": "t", "type": "rating", "text": "T", "options": ["a", "b"]}], "only choice"),
            ([{"id": "x", "type": "overall", "text": "X"}], "overall"),
            ([{"id": "Bad Id", "type": "rating", "text": "B"}], "id"),
        ]:
            bad = await client.post(
                "/v1/forms",
                json={"title": "bad", "questions": bad_questions},
                headers=harness.operator,
            )
            assert bad.status_code == 422, (bad_questions, bad.text)
            assert fragment in bad.text
        assert (
            await client.post("/v1/forms", json=form, headers=harness.participant)
        ).status_code == 403

        assign = await client.post(
            "/v1/kinds/pd_workshop/form",
            json={"form_id": "workshop-2026"},
            headers=harness.operator,
        )
        assert assign.status_code == 200, assign.text
        unknown = await client.post(
            "/v1/kinds/pd_workshop/form", json={"form_id": "nope"}, headers=harness.operator
        )
        assert unknown.status_code == 422

        sid = harness.seminar_id()
        await harness.complete(sid, [f"{sid}-a", f"{sid}-b"], kind=Kind.PD_WORKSHOP)
        state = await harness.until_open(client, sid, 2)
        assert (state["form_id"], state["form_version"]) == ("workshop-2026", 1)

        # An edit makes version 2; the open window keeps version 1.
        read = (await client.get("/v1/forms/workshop-2026")).json()
        read["title"] = "Workshops 2026 (v2)"
        read["questions"].append(
            {"id": "extra", "type": "yes_no", "text": "More?", "required": True}
        )
        edited = await client.put("/v1/forms/workshop-2026", json=read, headers=harness.operator)
        assert edited.status_code == 200, edited.text
        assert edited.json()["version"] == 2
        v1 = (await client.get("/v1/forms/workshop-2026", params={"version": 1})).json()
        assert [q["id"] for q in v1["questions"]] == ["overall", "useful"]
        assert (
            await client.get("/v1/forms/workshop-2026", params={"version": 3})
        ).status_code == 404
        assert (
            await client.put("/v1/forms/nope", json={"title": "x"}, headers=harness.operator)
        ).status_code == 404
        pinned = (await client.get(f"/v1/seminars/{sid}/form")).json()
        assert pinned["version"] == 1

        with_extra = await harness.evaluate(
            client, sid, f"{sid}-a", answers={"useful": 3, "extra": True}
        )
        assert with_extra.status_code == 422
        assert "unknown question id" in with_extra.text
        ok = await harness.evaluate(client, sid, f"{sid}-a", answers={"useful": 3})
        assert ok.status_code == 201
        assert (ok.json()["form_id"], ok.json()["form_version"]) == ("workshop-2026", 1)

        late_assign = await client.post(
            f"/v1/seminars/{sid}/form",
            json={"form_id": "default-pd-workshop"},
            headers=harness.operator,
        )
        assert late_assign.status_code == 409

        # The next seminar of the kind gets the latest version.
        nxt = harness.seminar_id()
        await harness.complete(nxt, [f"{nxt}-a"], kind=Kind.PD_WORKSHOP)
        state = await harness.until_open(client, nxt, 1)
        assert (state["form_id"], state["form_version"]) == ("workshop-2026", 2)
        opened = await harness.wait_events("evaluation.window_opened.v1", 2)
    assert {(e.data["seminar_id"], e.data["form_version"]) for e in opened} == {(sid, 1), (nxt, 2)}


async def test_attendance_before_during_and_after_the_window(harness: Harness) -> None:
    app = harness.app(window_days=1, reminder_before_close_hours=0, close_grace_seconds=0)
    sid = harness.seminar_id()
    p = [f"{sid}-{i}" for i in range(6)]
    async with running(app) as client:
        await harness.attendance(sid, [p[0], p[1]])
        before = await eventually(
            lambda: harness.rate(client, sid), until=lambda r: r.get("attendees") == 2
        )
        assert before["window_state"] == "not_open"
        early = await harness.evaluate(client, sid, p[0])
        assert early.status_code == 403

        await harness.complete(sid, [p[1], p[2], p[3]])
        opened = await harness.until_open(client, sid, 4)
        await harness.attendance(sid, [p[3], p[4]])
        await eventually(lambda: harness.rate(client, sid), until=lambda r: r.get("attendees") == 5)
        await harness.wait_events("evaluation.invited.v1", 5)

        harness.clock.move_to(utc_now() + timedelta(days=1, seconds=1))
        await harness.wait_events("evaluation.window_closed.v1", 1)
        await harness.attendance(sid, [p[5]])
        after = await eventually(
            lambda: harness.rate(client, sid), until=lambda r: r.get("attendees") == 6
        )
        assert after["window_state"] == "closed"
        events = await harness.events()
    invited = sorted(e.data["participant_id"] for e in events if e.type == "evaluation.invited.v1")
    assert invited == p[:5]  # p[5] came after the close: counted, not invited
    [window] = [e for e in events if e.type == "evaluation.window_opened.v1"]
    assert window.data["attendee_count"] == 4
    assert window.data["closes_at"] == opened["closes_at"].replace("+00:00", "Z")
    [closed] = [e for e in events if e.type == "evaluation.window_closed.v1"]
    assert (closed.data["attendee_count"], closed.data["response_count"]) == (5, 0)
    assert not [e for e in events if e.type == "evaluation.reminder_due.v1"]


async def test_a_completion_older_than_the_window_opens_and_closes_at_once(
    harness: Harness,
) -> None:
    app = harness.app(window_days=14)
    sid = harness.seminar_id()
    stale = envelope_for(
        SeminarCompleted(
            seminar_id=sid,
            kind=Kind.LEARNING_EVENT,
            programme=Programme.ETWINNING_PLUS,
            year=2017,
            attendee_ids=[f"{sid}-a", f"{sid}-b"],
        ),
        source="/services/seminar",
        time=utc_now() - timedelta(days=30),
    )
    async with running(app) as client:
        await harness.kafka.send_envelope(stale, topic=SEMINAR_EVENTS, key=sid)
        await harness.wait_events("evaluation.window_closed.v1", 1)
        rate = await harness.rate(client, sid)
        assert (rate["window_state"], rate["attendees"], rate["responses"]) == ("closed", 2, 0)
        refused = await harness.evaluate(client, sid, f"{sid}-a", answers={"content": 3})
        assert refused.status_code == 403
        rates = (
            await client.get("/v1/response-rates", params={"year": 2017, "kind": "learning_event"})
        ).json()
        events = await harness.events()
    assert rates["total"] == {
        "seminars": 1,
        "attendees": 2,
        "responses": 0,
        "response_rate_pct": 0.0,
    }
    assert sorted(e.type for e in events) == [
        "evaluation.window_closed.v1",
        "evaluation.window_opened.v1",
    ]


async def test_erasure_pseudonymises_the_person_and_keeps_every_count(harness: Harness) -> None:
    app = harness.app()
    sid = harness.seminar_id()
    a, b, c = (f"{sid}-{x}" for x in "abc")
    async with running(app) as client:
        await harness.complete(sid, [a, b, c])
        await harness.until_open(client, sid, 3)
        for person in (a, b):
            response = await harness.evaluate(client, sid, person, comments="thanks")
            assert response.status_code == 201
        await harness.erase(a)
        await harness.erase(c)
        db = harness.db(app)

        async def raw_ids_left() -> int:
            return sum(
                [
                    await db["attendees"].count_documents({"participant_id": {"$in": [a, c]}}),
                    await db["responses"].count_documents({"participant_id": a}),
                    await db["respondents"].count_documents({"participant_id": a}),
                ]
            )

        await eventually(raw_ids_left, until=lambda n: n == 0, what="erasure applied")
        rate = await harness.rate(client, sid)
        assert (rate["attendees"], rate["responses"]) == (3, 2)
        stored = await db["responses"].find({"seminar_id": sid}).to_list()
        assert sorted(d["participant_id"] for d in stored) == sorted(
            [PrivacySettings().pseudonym(a), b]
        )
        missing = await client.get(f"/v1/seminars/{sid}/non-respondents", headers=harness.operator)
        assert missing.json()["participant_ids"] == []  # c was erased: nobody to remind
        exported = await client.get(
            "/v1/exports/responses.csv", params={"seminar_id": sid}, headers=harness.operator
        )
        ids = {r["participant_id"] for r in csv.DictReader(io.StringIO(exported.text))}
        assert ids == {PrivacySettings().pseudonym(a), b}
        assert a not in exported.text
        # The erased person is no longer an attendee under their id; a repeat is still one.
        assert (await harness.evaluate(client, sid, a)).status_code == 403
        assert (await harness.evaluate(client, sid, c)).status_code == 403
        assert (
            await harness.evaluate(client, sid, PrivacySettings().pseudonym(c))
        ).status_code == 403
        # Attendance for an erased id later on stays pseudonymous and is not counted twice.
        await harness.attendance(sid, [a, f"{sid}-d"])
        await eventually(lambda: harness.rate(client, sid), until=lambda r: r.get("attendees") == 4)
        assert await db["attendees"].count_documents({"participant_id": a}) == 0
        invited = await harness.wait_events("evaluation.invited.v1", 4)
    assert sorted(e.data["participant_id"] for e in invited) == sorted([a, b, c, f"{sid}-d"])
