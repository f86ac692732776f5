"""Done when: a season of 300 seminars imported from CSV, rosters filled by registration
events, attendance recorded and completed, produces the right events once each."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, running
from seminarops_shared.events.registration import RegistrationConfirmed
from seminarops_shared.events.topics import REGISTRATION_EVENTS, SEMINAR_EVENTS

from ..conftest import OPERATOR, AppFactory

pytestmark = pytest.mark.integration


SEMINARS = 300
REGISTRANTS = 3  # per seminar; the first two attend
ZONES = ["Europe/Brussels", "Europe/Lisbon", "Europe/Helsinki", "Europe/Athens", "Europe/Kyiv"]
KINDS = ["online_seminar", "learning_event", "pd_workshop"]
PROGRAMMES = ["etwinning", "etwinning_plus"]


def season_csv(prefix: str) -> tuple[bytes, dict[str, dict[str, Any]]]:
    """300 seminars from September 2024 to June 2025, local wall-clock times."""
    lines = ["id,title,kind,programme,starts_at,ends_at,sessions,timezone,capacity,language"]
    expected: dict[str, dict[str, Any]] = {}
    first = datetime(2024, 9, 2, 16, 0)  # noqa: DTZ001 - wall-clock time, zone per row
    for i in range(SEMINARS):
        seminar_id = f"{prefix}-{i:03d}"
        kind, programme, zone = KINDS[i % 3], PROGRAMMES[i % 2], ZONES[i % 5]
        start = first + timedelta(days=i)
        if kind == "learning_event":
            sessions = ";".join(
                f"{(start + timedelta(weeks=w)).isoformat()}/"
                f"{(start + timedelta(weeks=w, hours=2)).isoformat()}"
                for w in range(3)
            )
            times = f",,{sessions}"
        else:
            times = f"{start.isoformat()},{(start + timedelta(minutes=90)).isoformat()},"
        lines.append(f"{seminar_id},Seminar {i},{kind},{programme},{times},{zone},30,en")
        expected[seminar_id] = {
            "kind": kind,
            "programme": programme,
            "year": start.replace(tzinfo=ZoneInfo(zone)).year,
        }
    return ("\n".join(lines) + "\n").encode(), expected


async def test_a_season_of_300_seminars_produces_each_event_once(
    make_app: AppFactory, kafka: KafkaProbe
) -> None:
    prefix = f"season{int(time.time() * 1000) % 10**8}"
    season, expected = season_csv(prefix)
    app = make_app()
    timings: dict[str, float] = {}
    async with running(app) as client:
        started = time.perf_counter()
        response = await client.post(
            "/v1/seminars/import", content=season, headers={**OPERATOR, "Content-Type": "text/csv"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["created"] == SEMINARS, response.json()["rows"][:3]
        timings["import"] = time.perf_counter() - started

        mark = time.perf_counter()
        registrants = {
            seminar_id: [f"t-{seminar_id}-{n}" for n in range(REGISTRANTS)]
            for seminar_id in expected
        }
        sends = [
            kafka.send_event(
                RegistrationConfirmed(
                    registration_id=f"reg-{participant}",
                    seminar_id=seminar_id,
                    participant_id=participant,
                    version=1,
                    requested_at=datetime(2024, 8, 1, tzinfo=ZoneInfo("UTC")),
                ),
                source="/services/registration",
            )
            for seminar_id, people in registrants.items()
            for participant in people
        ]
        for start in range(0, len(sends), 100):
            await asyncio.gather(*sends[start : start + 100])
        roster = app.state.runtime.mongo.db["roster"]
        await eventually(
            lambda: roster.count_documents({}),
            until=lambda n: n == SEMINARS * REGISTRANTS,
            timeout_s=60,
            what="every roster filled",
        )
        timings["rosters"] = time.perf_counter() - mark

        mark = time.perf_counter()
        for seminar_id, people in registrants.items():
            attended = await client.post(
                f"/v1/seminars/{seminar_id}/attendance",
                json={"participant_ids": [*people[:2], f"stranger-{seminar_id}"]},
                headers=OPERATOR,
            )
            assert attended.status_code == 202, attended.text
            assert attended.json()["recorded"] == people[:2]
            completed = await client.post(f"/v1/seminars/{seminar_id}/complete", headers=OPERATOR)
            assert completed.status_code == 202, completed.text
        timings["attendance+completion"] = time.perf_counter() - mark

        mark = time.perf_counter()
        wanted = SEMINARS * 3  # scheduled, attendance.recorded, completed
        events = await eventually(
            lambda: kafka.events(SEMINAR_EVENTS),
            until=lambda e: len(e) >= wanted,
            timeout_s=60,
            what="every seminar event published",
        )
        assert await app.state.runtime.outbox.backlog() == 0
        timings["published"] = time.perf_counter() - mark
        timings["total"] = time.perf_counter() - started
    print(  # noqa: T201 - the measured time is part of what this test reports
        "season of 300: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
    )

    events = await kafka.events(SEMINAR_EVENTS)  # again, after the relay stopped
    assert len({e.id for e in events}) == len(events) == wanted
    per_seminar = Counter((e.subject, e.type) for e in events)
    assert set(per_seminar.values()) == {1}
    assert {subject for subject, _ in per_seminar} == set(expected)
    in_order: dict[str, list[str]] = {}
    for event in events:
        in_order.setdefault(event.subject or "", []).append(event.type)
    assert set(map(tuple, in_order.values())) == {
        ("seminar.scheduled.v1", "attendance.recorded.v1", "seminar.completed.v1")
    }
    for event in events:
        facts = expected[event.subject or ""]
        if event.type == "seminar.completed.v1":
            assert event.data["attendee_ids"] == sorted(registrants[event.subject or ""][:2])
            assert (event.data["kind"], event.data["programme"], event.data["year"]) == (
                facts["kind"],
                facts["programme"],
                facts["year"],
            )
        elif event.type == "attendance.recorded.v1":
            assert event.data["participant_ids"] == registrants[event.subject or ""][:2]
        else:
            assert event.type == "seminar.scheduled.v1"
            assert event.data["year"] == facts["year"]
    assert await kafka.read_all(REGISTRATION_EVENTS + ".dlq") == []
