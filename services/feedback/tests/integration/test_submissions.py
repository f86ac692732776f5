"""POST /v1/evaluations against the real database: races, bad input, anonymity."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from seminarops_devtools.testing.stack import running

if TYPE_CHECKING:
    import httpx
    from conftest import Harness
    from pymongo.asynchronous.database import AsyncDatabase

    from seminarops_shared.service import Runtime

pytestmark = pytest.mark.integration

ALL_TYPES_FORM: dict[str, Any] = {
    "title": "Every question type",
    "questions": [
        {"id": "clarity", "type": "rating", "text": "Clarity", "required": True},
        {
            "id": "pace",
            "type": "single_choice",
            "text": "Pace",
            "options": ["slow", "right", "fast"],
            "required": True,
        },
        {
            "id": "topics",
            "type": "multiple_choice",
            "text": "Topics",
            "options": ["a", "b", "c"],
        },
        {"id": "again", "type": "yes_no", "text": "Again?"},
        {"id": "notes", "type": "free_text", "text": "Notes", "max_length": 20},
    ],
}
VALID_ANSWERS = {"clarity": 5, "pace": "right", "topics": ["a", "c"], "again": True, "notes": "ok"}


async def _form(client: httpx.AsyncClient, harness: Harness, **extra: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/forms", json={**ALL_TYPES_FORM, **extra}, headers=harness.operator
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _open_with_form(
    client: httpx.AsyncClient, harness: Harness, form_id: str, attendees: list[str]
) -> str:
    sid = harness.seminar_id()
    assigned = await client.post(
        f"/v1/seminars/{sid}/form", json={"form_id": form_id}, headers=harness.operator
    )
    assert assigned.status_code == 200, assigned.text
    await harness.complete(sid, [f"{sid}-{a}" for a in attendees])
    await harness.until_open(client, sid, len(attendees))
    return sid


async def _submitted_in_outbox(db: AsyncDatabase[dict[str, Any]]) -> list[bytes]:
    """The ``evaluation.submitted.v1`` records waiting in the outbox (not yet published).

    One outbox document per transaction, its events under ``records`` as bytes."""
    pending = [
        record["value"]
        async for doc in db["outbox"].find({})
        for record in doc.get("records", [doc])
    ]
    return [v for v in pending if b"evaluation.submitted.v1" in v]


async def test_concurrent_double_submission_stores_exactly_one(harness: Harness) -> None:
    app = harness.app()
    async with running(app) as client:
        named = await _form(client, harness)
        anonymous = await _form(client, harness, anonymous=True)
        sids = [
            await _open_with_form(client, harness, named["id"], ["a", "b"]),
            await _open_with_form(client, harness, anonymous["id"], ["a", "b"]),
        ]
        for sid in sids:
            pair = await asyncio.gather(
                *(
                    harness.evaluate(client, sid, f"{sid}-a", answers=VALID_ANSWERS)
                    for _ in range(2)
                )
            )
            assert sorted(r.status_code for r in pair) == [201, 409], [r.text for r in pair]
            five = await asyncio.gather(
                *(
                    harness.evaluate(client, sid, f"{sid}-b", answers=VALID_ANSWERS)
                    for _ in range(5)
                )
            )
            assert sorted(r.status_code for r in five) == [201, 409, 409, 409, 409]
            assert (
                "already evaluated"
                in next(r for r in five if r.status_code == 409).json()["detail"]
            )
        db = harness.db(app)
        for sid in sids:
            assert await db["responses"].count_documents({"seminar_id": sid}) == 2
            assert await db["respondents"].count_documents({"seminar_id": sid}) == 2
        await harness.wait_events("evaluation.submitted.v1", 4)
    assert len(await harness.events("evaluation.submitted.v1")) == 4


async def test_bad_input_of_every_kind_is_refused_and_nothing_is_stored(harness: Harness) -> None:
    app = harness.app()
    async with running(app) as client:
        form = await _form(client, harness)
        sid = await _open_with_form(client, harness, form["id"], ["a"])
        pending = harness.seminar_id()
        await harness.attendance(pending, [f"{pending}-a"])
        attendee = f"{sid}-a"
        body = {
            "seminar_id": sid,
            "participant_id": attendee,
            "overall": "good",
            "answers": VALID_ANSWERS,
        }

        async def post(payload: Any, headers: dict[str, str] | None = None) -> httpx.Response:
            return await client.post(
                "/v1/evaluations",
                json=payload,
                headers=harness.participant if headers is None else headers,
            )

        def answers(**changes: Any) -> dict[str, Any]:
            merged = {**VALID_ANSWERS, **changes}
            return {**body, "answers": {k: v for k, v in merged.items() if v != "<drop>"}}

        # Stop the relay while the refusals are posted: it publishes and deletes outbox
        # entries right after commit, so the outbox check below would otherwise almost
        # never find an event even if a refusal wrote one.
        runtime: Runtime = app.state.runtime
        relay = runtime.relay
        await relay.stop(timeout_s=10)

        cases: list[tuple[str, Any, dict[str, str] | None, int, str]] = [
            ("no token", body, {}, 401, "missing bearer token"),
            ("unknown token", body, {"Authorization": "Bearer nope"}, 401, "unknown bearer token"),
            (
                "missing overall",
                {k: v for k, v in body.items() if k != "overall"},
                None,
                422,
                "overall",
            ),
            ("overall off scale", {**body, "overall": "superb"}, None, 422, "overall"),
            ("unknown field", {**body, "rating": 5}, None, 422, "rating"),
            ("bad seminar id", {**body, "seminar_id": "../x"}, None, 422, "seminar_id"),
            ("answers not an object", {**body, "answers": [1, 2]}, None, 422, "answers"),
            ("comments too long", {**body, "comments": "x" * 5001}, None, 422, "comments"),
            ("unknown question", answers(colour="red"), None, 422, "unknown question id"),
            ("overall inside answers", answers(overall=5), None, 422, "top-level"),
            ("required missing", answers(clarity="<drop>"), None, 422, "required"),
            ("required null", answers(pace=None), None, 422, "required"),
            ("rating too high", answers(clarity=6), None, 422, "out of range"),
            ("rating too low", answers(clarity=0), None, 422, "out of range"),
            ("rating as text", answers(clarity="5"), None, 422, "whole number"),
            ("rating as float", answers(clarity=4.5), None, 422, "whole number"),
            ("rating as bool", answers(clarity=True), None, 422, "whole number"),
            (
                "choice not an option",
                answers(pace="very fast"),
                None,
                422,
                "not one of the options",
            ),
            ("choice as list", answers(pace=["slow"]), None, 422, "single choice"),
            ("multiple as text", answers(topics="a"), None, 422, "list of options"),
            ("multiple unknown", answers(topics=["a", "z"]), None, 422, "not among the options"),
            ("multiple repeated", answers(topics=["a", "a"]), None, 422, "more than once"),
            ("yes/no as text", answers(again="yes"), None, 422, "true or false"),
            ("text too long", answers(notes="x" * 21), None, 422, "at most 20"),
            ("text as number", answers(notes=3), None, 422, "string"),
            (
                "unknown seminar",
                {**body, "seminar_id": "sem-nowhere"},
                None,
                403,
                "no open evaluation window",
            ),
            (
                "not completed",
                {**body, "seminar_id": pending, "participant_id": f"{pending}-a"},
                None,
                403,
                "no open evaluation window",
            ),
            (
                "not an attendee",
                {**body, "participant_id": f"{sid}-stranger"},
                None,
                403,
                "not recorded as an attendee",
            ),
        ]
        for name, payload, headers, status, fragment in cases:
            response = await post(payload, headers)
            assert response.status_code == status, (name, response.text)
            assert fragment in response.text, (name, response.text)
        raw = await client.post(
            "/v1/evaluations",
            content=b"{not json",
            headers={**harness.participant, "Content-Type": "application/json"},
        )
        assert raw.status_code == 422
        # Every problem is listed, not just the first.
        several = await post(answers(clarity=9, pace="x", colour=1))
        assert {tuple(p["loc"]) for p in several.json()["detail"]} == {
            ("body", "answers", "clarity"),
            ("body", "answers", "pace"),
            ("body", "answers", "colour"),
        }
        # Operator-only routes refuse other roles.
        export = await client.get("/v1/exports/responses.csv", headers=harness.participant)
        assert export.status_code == 403
        form_edit = await client.post("/v1/forms", json=ALL_TYPES_FORM, headers=harness.platform)
        assert form_edit.status_code == 403

        db = harness.db(app)
        assert await db["responses"].count_documents({}) == 0
        assert await db["respondents"].count_documents({}) == 0
        # Nothing waiting in the outbox either: the relay is stopped (above), so an event
        # written by a refusal would still be there, not already published and deleted.
        assert not await _submitted_in_outbox(db)

        # The same attendee with a valid body is accepted: the refusals were about the input.
        ok = await post(body, harness.platform)
        assert ok.status_code == 201, ok.text
        assert await db["responses"].count_documents({}) == 1
        # The scan does see an event waiting: it is the accepted one.
        assert len(await _submitted_in_outbox(db)) == 1
        relay.start()
        await harness.wait_events("evaluation.submitted.v1", 1)
    assert len(await harness.events("evaluation.submitted.v1")) == 1


async def test_anonymous_form_stores_no_link_to_the_person(harness: Harness) -> None:
    app = harness.app()
    async with running(app) as client:
        form = await _form(client, harness, anonymous=True)
        sid = await _open_with_form(client, harness, form["id"], ["a", "b", "c"])
        first = await harness.evaluate(
            client, sid, f"{sid}-a", answers=VALID_ANSWERS, comments="=HYPERLINK(1)"
        )
        assert first.status_code == 201, first.text
        assert first.json()["anonymous"] is True
        assert "participant" not in first.text
        again = await harness.evaluate(client, sid, f"{sid}-a", answers=VALID_ANSWERS)
        assert again.status_code == 409
        second = await harness.evaluate(client, sid, f"{sid}-b", answers=VALID_ANSWERS)
        assert second.status_code == 201

        db = harness.db(app)
        stored = await db["responses"].find({"seminar_id": sid}).to_list()
        assert len(stored) == 2
        for doc in stored:
            assert "participant_id" not in doc
            assert f"{sid}-a" not in str(doc)
            assert f"{sid}-b" not in str(doc)
            assert doc["submitted_at"].time() == datetime.min.time()
        markers = await db["respondents"].find({"seminar_id": sid}).to_list()
        assert sorted(m["participant_id"] for m in markers) == [f"{sid}-a", f"{sid}-b"]
        assert all(set(m) == {"_id", "seminar_id", "participant_id"} for m in markers)

        rate = await harness.rate(client, sid)
        assert (rate["responses"], rate["attendees"], rate["response_rate_pct"]) == (2, 3, 66.7)
        hidden = await client.get(f"/v1/seminars/{sid}/non-respondents", headers=harness.operator)
        assert hidden.status_code == 409
        assert "anonymous" in hidden.json()["detail"]

        exported = await client.get(
            "/v1/exports/responses.csv", params={"seminar_id": sid}, headers=harness.operator
        )
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert len(rows) == 2
        assert {r["participant_id"] for r in rows} == {""}
        assert {r["anonymous"] for r in rows} == {"true"}
        assert all(len(r["submitted_at"]) == 10 for r in rows)  # the day only
        assert "'=HYPERLINK(1)" in {r["comments"] for r in rows}
        assert {r["answer.topics"] for r in rows} == {"a; c"}
        submitted = await harness.wait_events("evaluation.submitted.v1", 2)
    assert all(e.data.get("participant_id") is None for e in submitted)
    assert all(e.data["anonymous"] is True for e in submitted)


async def test_named_export_and_non_respondents(harness: Harness) -> None:
    app = harness.app()
    async with running(app) as client:
        form = await _form(client, harness)
        sid = await _open_with_form(client, harness, form["id"], ["a", "b", "c"])
        ok = await harness.evaluate(
            client, sid, f"{sid}-b", answers=VALID_ANSWERS, comments='Great, "really"\nthanks'
        )
        assert ok.status_code == 201
        missing = await client.get(f"/v1/seminars/{sid}/non-respondents", headers=harness.operator)
        assert missing.status_code == 200
        assert missing.json()["participant_ids"] == [f"{sid}-a", f"{sid}-c"]
        assert (await client.get(f"/v1/seminars/{sid}/non-respondents")).status_code == 401

        by_kind = await client.get(
            "/v1/exports/responses.csv",
            params={"kind": "online_seminar", "year": 2026},
            headers=harness.operator,
        )
        [row] = list(csv.DictReader(io.StringIO(by_kind.text)))
        assert row["participant_id"] == f"{sid}-b"
        assert row["comments"] == 'Great, "really"\nthanks'
        assert row["answer.clarity"] == "5"
        assert row["answer.again"] == "yes"
        assert datetime.fromisoformat(row["submitted_at"]).tzinfo == UTC
        other_year = await client.get(
            "/v1/exports/responses.csv", params={"year": 2019}, headers=harness.operator
        )
        assert len(list(csv.DictReader(io.StringIO(other_year.text)))) == 0
