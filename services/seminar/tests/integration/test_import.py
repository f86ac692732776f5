"""Season imports from CSV: a report per row, valid rows stored, idempotent re-imports,
file-level refusals with nothing stored."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from seminar.__main__ import import_file
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, running
from seminarops_shared.settings import Role

from ..conftest import OPERATOR, TOKENS, AppFactory, Published

pytestmark = pytest.mark.integration

CSV = {**OPERATOR, "Content-Type": "text/csv"}


SEASON = """\
id,title,kind,programme,starts_at,ends_at,sessions,timezone,capacity,language,theme,moderator,host_school_id,open_to_other_schools,notes
{a},Robotics for beginners,online_seminar,etwinning,2024-10-08T17:00,2024-10-08T18:30,,Europe/Brussels,100,en,STEM,mod-1,,,first of the season
,"Climate, together",learning_event,etwinning_plus,,,2024-10-28T16:00/2024-10-28T18:00;2024-11-04T16:00/2024-11-04T18:00,Europe/Kyiv,40,uk,Climate,,school-9,false,
{b},Bad zone,online_seminar,etwinning,2024-10-08T17:00,2024-10-08T18:30,,Europe/Atlantis,100,en,,,,,
{c},Backwards,pd_workshop,etwinning,2024-10-08T17:00,2024-10-08T16:00,,Europe/Brussels,100,en,,,,,
{d},Negative,pd_workshop,etwinning,2024-10-08T17:00,2024-10-08T18:00,,Europe/Brussels,-1,en,,,,,
{a},Robotics for experts,online_seminar,etwinning,2024-10-08T17:00,2024-10-08T18:30,,Europe/Brussels,100,en,STEM,mod-1,,,same id: another seminar
{a},Robotics for beginners,online_seminar,etwinning,2024-10-08T17:00,2024-10-08T18:30,,Europe/Brussels,100,en,STEM,mod-1,,,the first row again
{e},Skipped hour,online_seminar,etwinning,2024-03-31T02:30,2024-03-31T03:30,,Europe/Brussels,100,en,,,,,
"""


async def test_a_season_file_is_reported_row_by_row_and_imported_once(
    make_app: AppFactory, published: Published, kafka: KafkaProbe
) -> None:
    ids = {key: f"imp-{key}-{id(object())}" for key in "abcde"}
    season = SEASON.format(**ids).encode()
    app = make_app()
    async with running(app) as client:
        trial = await client.post("/v1/seminars/import?dry_run=true", content=season, headers=CSV)
        assert trial.status_code == 200, trial.text
        assert (trial.json()["created"], trial.json()["rejected"]) == (2, 5)
        assert (await client.get("/v1/seminars")).json()["items"] == []

        response = await client.post("/v1/seminars/import", content=season, headers=CSV)
        assert response.status_code == 200, response.text
        report = response.json()
        rows = report["rows"]
        assert (report["created"], report["unchanged"], report["rejected"]) == (2, 1, 5)
        assert report["ignored_columns"] == ["notes"]
        assert [r["status"] for r in rows] == [
            "created",
            "created",
            "rejected",
            "rejected",
            "rejected",
            "rejected",
            "unchanged",
            "rejected",
        ]
        assert [r["line"] for r in rows] == [2, 3, 4, 5, 6, 7, 8, 9]
        assert rows[0]["id"] == ids["a"]
        assert "unknown time zone" in rows[2]["reasons"][0]
        assert "ends_at must be after starts_at" in rows[3]["reasons"][0]
        assert rows[4]["reasons"][0].startswith("capacity:")
        assert "already used by row 1" in rows[5]["reasons"][0]
        assert "does not exist in Europe/Brussels" in rows[7]["reasons"][0]
        learning_event_id = rows[1]["id"]
        learning_event = (await client.get(f"/v1/seminars/{learning_event_id}")).json()
        assert learning_event["title"] == "Climate, together"
        assert learning_event["open_to_other_schools"] is False
        assert [s["starts_at"] for s in learning_event["sessions"]] == [
            "2024-10-28T16:00:00+02:00",
            "2024-11-04T16:00:00+02:00",  # Kyiv left summer time in between
        ]
        robotics = (await client.get(f"/v1/seminars/{ids['a']}")).json()
        assert robotics["starts_at"] == "2024-10-08T17:00:00+02:00"
        assert robotics["moderator"] == "mod-1"

        again = (await client.post("/v1/seminars/import", content=season, headers=CSV)).json()
        assert (again["created"], again["unchanged"], again["rejected"]) == (0, 3, 5)
        assert [r["id"] for r in again["rows"][:2]] == [ids["a"], learning_event_id]

        # A multipart upload, as a browser form sends it.
        multipart = await client.post(
            "/v1/seminars/import",
            files={"file": ("season.csv", season, "text/csv")},
            headers=OPERATOR,
        )
        assert multipart.status_code == 200, multipart.text
        assert multipart.json()["unchanged"] == 3
        events = await eventually(
            lambda: published("seminar.scheduled.v1"),
            until=lambda e: len(e) >= 2,
            what="scheduled events",
        )
        assert len((await client.get("/v1/seminars")).json()["items"]) == 2
        # A past season plans no reminders: none is waiting to be sent, and none went.
        scheduler = app.state.runtime.scheduler
        for seminar_id in (ids["a"], learning_event_id):
            assert await scheduler.pending(seminar_id) == []
    assert sorted(e.subject or "" for e in events) == sorted([ids["a"], learning_event_id])
    assert await published("seminar.reminder_due.v1") == []


UNREADABLE: list[tuple[bytes, str]] = [
    (b"", "empty"),
    (b"title,kind\nx,online_seminar\n", "missing column(s): programme"),
    (
        b"title,kind,programme,timezone,capacity,language,starts_at\n",
        "starts_at and ends_at (or sessions)",
    ),
    ("title,kind\n\xe9\n".encode("latin-1"), "not UTF-8"),
]


async def test_unreadable_files_are_422_and_nothing_is_stored(
    make_app: AppFactory, kafka: KafkaProbe
) -> None:
    async with running(make_app()) as client:
        for content, expected in UNREADABLE:
            response = await client.post("/v1/seminars/import", content=content, headers=CSV)
            assert response.status_code == 422, response.text
            assert expected in response.json()["detail"]
        assert (await client.get("/v1/seminars")).json()["items"] == []
    assert await kafka.read_all("seminar.events") == []


async def test_limits_and_roles(make_app: AppFactory) -> None:
    header = "title,kind,programme,starts_at,ends_at,timezone,capacity,language\n"
    row = "T,online_seminar,etwinning,2024-10-08T17:00Z,2024-10-08T18:00Z,UTC,5,en\n"
    async with running(make_app(import_max_rows=3, import_max_bytes=2000)) as client:
        too_many = await client.post(
            "/v1/seminars/import", content=(header + row * 4).encode(), headers=CSV
        )
        assert too_many.status_code == 422
        assert "more than 3 rows" in too_many.text
        too_big = await client.post(
            "/v1/seminars/import", content=(header + "x" * 2000).encode(), headers=CSV
        )
        assert too_big.status_code == 413
        anonymous = await client.post(
            "/v1/seminars/import",
            content=(header + row).encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert anonymous.status_code == 401
        assert (await client.get("/v1/seminars")).json()["items"] == []


async def test_the_command_line_sends_a_long_file_in_parts_with_the_same_outcome(
    make_app: AppFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m seminar import`` against the real endpoint, two rows per request: the
    same outcome as one request (a repeated id in a later part meets the stored seminar),
    every rejected row numbered as in the file, the ignored column reported."""
    ids = {key: f"cli-{key}-{id(object())}" for key in "abcde"}
    season = tmp_path / "season.csv"
    season.write_text(SEASON.format(**ids))
    app = make_app()
    async with running(app), _served(app) as url:
        code = await asyncio.to_thread(
            import_file,
            season,
            url=url,
            token=TOKENS[Role.OPERATOR],
            dry_run=False,
            rows_per_request=2,
        )
    # The service's own log lines (timestamped) share stdout with the command here.
    out = [line for line in capsys.readouterr().out.splitlines() if not line[:4].isdigit()]
    assert code == 1
    assert out[0] == "ignored columns: notes"
    assert [line.split(":")[0] for line in out[1:-1]] == [
        "row 3 (line 4)",
        "row 4 (line 5)",
        "row 5 (line 6)",
        "row 6 (line 7)",
        "row 8 (line 9)",
    ]
    assert "a different seminar with id" in out[4]  # row 6: row 1's id, stored by then
    assert out[-1] == "2 created, 1 unchanged, 5 rejected"


@asynccontextmanager
async def _served(app: FastAPI) -> AsyncIterator[str]:
    """``app`` (its lifespan already running) over real HTTP on a free loopback port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # a connection made before uvicorn accepts waits in the backlog
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
