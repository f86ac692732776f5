"""``Idempotency-Key`` on the seminar service's creating POSTs, against the real
database: a repeat answers as the first call did and schedules nothing more; the key
with another body is 422; concurrent calls with one key schedule one seminar."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo.errors import ConnectionFailure

from seminarops_devtools.testing.stack import running
from seminarops_shared.http_idempotency import IDEMPOTENCY_LEASE, StoredAnswers
from seminarops_shared.service import Runtime

from ..conftest import OPERATOR, PLATFORM, AppFactory, Body, FakeClock

pytestmark = pytest.mark.integration


def keyed(key: str, headers: dict[str, str] = OPERATOR) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def seminars_titled(app: FastAPI, title: str) -> int:
    runtime: Runtime = app.state.runtime
    return await runtime.mongo.db["seminars"].count_documents({"title": title})


def answer(response: httpx.Response) -> tuple[int, str | None, Any]:
    return response.status_code, response.headers.get("location"), response.json()


async def test_a_repeat_answers_as_the_first_call_and_schedules_nothing_more(
    make_app: AppFactory, seminar_body: Body
) -> None:
    title = f"Idempotent {uuid.uuid4().hex[:8]}"
    payload = seminar_body(title=title)
    app = make_app()
    async with running(app) as client:
        first = await client.post("/v1/seminars", json=payload, headers=keyed("key-1"))
        # The same JSON with its keys in another order is the same request.
        again = await client.post(
            "/v1/seminars", json=dict(reversed(payload.items())), headers=keyed("key-1")
        )
        other_body = await client.post(
            "/v1/seminars", json={**payload, "capacity": 7}, headers=keyed("key-1")
        )
        without_key = await client.post("/v1/seminars", json=payload, headers=OPERATOR)
        # Keys belong to their caller: the platform's "key-1" is not the operator's.
        other_caller = await client.post(
            "/v1/seminars", json=payload, headers=keyed("key-1", PLATFORM)
        )
        count = await seminars_titled(app, title)
    assert first.status_code == 201, first.text
    assert first.headers["location"] == f"/v1/seminars/{first.json()['id']}"
    assert answer(again) == answer(first)
    assert again.content == first.content
    assert other_body.status_code == 422, other_body.text
    assert other_body.json()["code"] == "idempotency_key_reused"
    assert other_body.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert without_key.status_code == 201
    assert without_key.json()["id"] != first.json()["id"]
    assert other_caller.status_code == 403  # the platform may not schedule; nothing held
    assert count == 2


async def test_concurrent_calls_with_one_key_schedule_one_seminar(
    make_app: AppFactory, seminar_body: Body
) -> None:
    title = f"Concurrent {uuid.uuid4().hex[:8]}"
    payload = seminar_body(title=title)
    app = make_app()
    async with running(app) as client:
        calls = await asyncio.gather(
            *(client.post("/v1/seminars", json=payload, headers=keyed("race")) for _ in range(6))
        )
        after = await client.post("/v1/seminars", json=payload, headers=keyed("race"))
        count = await seminars_titled(app, title)
    codes = sorted(r.status_code for r in calls)
    assert codes.count(201) >= 1, [r.text for r in calls]
    assert set(codes) <= {201, 409}, [r.text for r in calls]
    in_use = [r.json() for r in calls if r.status_code == 409]
    assert all(body["code"] == "idempotency_key_in_use" for body in in_use)
    created = {r.json()["id"] for r in calls if r.status_code == 201}
    assert len(created) == 1
    assert (after.status_code, after.json()["id"]) == (201, created.pop())
    assert count == 1


async def test_a_refused_request_holds_no_key_and_bad_keys_are_refused(
    make_app: AppFactory, seminar_body: Body
) -> None:
    title = f"Refused {uuid.uuid4().hex[:8]}"
    app = make_app()
    async with running(app) as client:
        invalid = await client.post(
            "/v1/seminars", json=seminar_body(title=title, capacity=0), headers=keyed("k")
        )
        # Nothing was created under "k": the corrected request may use it.
        corrected = await client.post(
            "/v1/seminars", json=seminar_body(title=title), headers=keyed("k")
        )
        too_long = await client.post(
            "/v1/seminars", json=seminar_body(title=title), headers=keyed("x" * 256)
        )
        longest = await client.post(
            "/v1/seminars", json=seminar_body(title=title), headers=keyed("y" * 255)
        )
        unprintable = await client.post(
            "/v1/seminars", json=seminar_body(title=title), headers=keyed("tab\there")
        )
        count = await seminars_titled(app, title)
    assert invalid.status_code == 422
    assert corrected.status_code == 201, corrected.text
    assert too_long.status_code == 422
    assert too_long.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert longest.status_code == 201
    assert unprintable.status_code == 422
    assert count == 2


async def test_an_import_repeated_with_its_key_answers_the_same_report(
    make_app: AppFactory,
) -> None:
    seminar_id = f"sem-{uuid.uuid4().hex[:12]}"
    csv = (
        "id,title,kind,programme,starts_at,ends_at,timezone,capacity,language\n"
        f"{seminar_id},Imported,online_seminar,etwinning,2025-03-11T16:00,2025-03-11T17:00,"
        "Europe/Brussels,30,en\n"
    )
    headers = keyed("import-1") | {"Content-Type": "text/csv"}
    async with running(make_app()) as client:
        first = await client.post("/v1/seminars/import", content=csv, headers=headers)
        again = await client.post("/v1/seminars/import", content=csv, headers=headers)
        fresh = await client.post(
            "/v1/seminars/import",
            content=csv,
            headers=keyed("import-2") | {"Content-Type": "text/csv"},
        )
    assert first.status_code == 200, first.text
    assert first.json()["created"] == 1
    assert (again.status_code, again.content) == (200, first.content)
    # A new key runs the import again: the row exists, unchanged.
    assert fresh.json()["unchanged"] == 1


async def test_after_a_crash_before_the_answer_the_key_runs_again_and_creates_nothing_twice(
    make_app: AppFactory, seminar_body: Body, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash window of ``http_idempotency``: the seminar is committed but its answer
    never stored (the process died). The key answers 409 while its lease runs, then the
    next request runs again and finds the seminar it created under the key's id."""
    title = f"Crash {uuid.uuid4().hex[:8]}"
    payload = seminar_body(title=title)
    clock = FakeClock(datetime(2026, 1, 1, 9, 0, tzinfo=UTC))
    app = make_app(clock=clock)

    async def dies_before_storing(*_args: object) -> None:
        raise ConnectionFailure("the process died before storing the answer")

    async with running(app) as client:
        with monkeypatch.context() as crash:
            crash.setattr(StoredAnswers, "answer", dies_before_storing)
            first = await client.post("/v1/seminars", json=payload, headers=keyed("crash"))
        during_lease = await client.post("/v1/seminars", json=payload, headers=keyed("crash"))
        clock.advance(IDEMPOTENCY_LEASE + timedelta(seconds=1))
        after_lease = await client.post("/v1/seminars", json=payload, headers=keyed("crash"))
        replayed = await client.post("/v1/seminars", json=payload, headers=keyed("crash"))
        count = await seminars_titled(app, title)
    assert first.status_code == 201, first.text
    assert during_lease.status_code == 409
    assert during_lease.json()["code"] == "idempotency_key_in_use"
    # Run again: the seminar exists under the key's id, so it is found, not doubled.
    assert (after_lease.status_code, after_lease.json()["id"]) == (200, first.json()["id"])
    assert (replayed.status_code, replayed.content) == (200, after_lease.content)
    assert count == 1
