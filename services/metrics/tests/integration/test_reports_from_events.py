"""A two-year history fed as real events through the real broker yields exactly the
expected reports; duplicates and replays change nothing; a rebuild reproduces them."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from metrics.app import create_app
from metrics.rebuild import rebuild
from metrics.repository import PROJECTION_FORMAT, ProjectionPointer, person_key
from metrics.settings import MetricsSettings
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.events.seminar import AttendanceRecorded
from seminarops_shared.events.vocabulary import Kind, Programme
from seminarops_shared.privacy import PrivacySettings

pytestmark = pytest.mark.integration


def _settings(namespace: Namespace) -> MetricsSettings:
    return namespace.settings(MetricsSettings, gauges_refresh_interval_s=0.1, gauges_max_age_s=1.0)


async def test_two_year_history_yields_exactly_the_expected_reports(
    namespace: Namespace,
    kafka: KafkaProbe,
    two_year_history: Any,
    expected: Any,
    replays_of: Any,
    helpers: Any,
) -> None:
    app = create_app(_settings(namespace))
    async with running(app) as client:
        sent = await helpers.feed(kafka, two_year_history)
        await helpers.wait_processed(app, sent)

        for year in (2024, 2025):
            participation = await client.get(f"/v1/reports/participation?year={year}")
            assert participation.json() == expected.participation[year]
            satisfaction = await client.get(f"/v1/reports/satisfaction?year={year}")
            assert satisfaction.json() == expected.satisfaction[year]
        assert (await client.get("/v1/reports/funnel?year=2024")).json() == expected.funnel_2024
        learning = await client.get("/v1/reports/funnel?year=2025&kind=learning_event")
        assert learning.json() == expected.funnel_2025_learning
        assert (
            await client.get("/v1/reports/countries?year=2025")
        ).json() == expected.countries_2025
        assert (await client.get("/v1/reports/schools?year=2024")).json() == expected.schools_2024
        assert (await client.get("/v1/reports/schools?year=2025")).json() == expected.schools_2025
        seminars = (await client.get("/v1/reports/seminars?year=2024")).json()
        # s1: p1-p4 and p6 (promoted) hold seats, p5 cancelled; 4 attended, 3 answered.
        # s2: 3 of 30, all attended, 1 answered. s3: cancelled, its seats given back.
        assert [
            (
                r["seminar_id"],
                r["status"],
                r["capacity"],
                r["confirmed"],
                r["waitlisted"],
                r["fill_rate_pct"],
                r["attended"],
                r["evaluated"],
                r["response_rate_pct"],
            )
            for r in seminars["rows"]
        ] == [
            ("s2", "completed", 30, 3, 0, 10.0, 3, 1, 33.3),
            ("s1", "completed", 30, 5, 0, 16.7, 4, 3, 75.0),
            ("s3", "cancelled", 30, 0, 0, 0.0, 0, 0, None),
        ]
        s6 = (await client.get("/v1/reports/seminars?year=2025&kind=learning_event")).json()
        assert [(r["seminar_id"], r["confirmed"], r["waitlisted"]) for r in s6["rows"]] == [
            ("s6", 2, 1)
        ]
        csv_lines = (await client.get("/v1/reports/seminars.csv?year=2024")).text.splitlines()
        assert csv_lines[0].startswith("year,seminar_id,title,kind,programme,status,capacity")
        assert (
            csv_lines[2]
            == "2024,s1,Seminar s1,online_seminar,etwinning,completed,30,5,0,16.7,4,3,75.0"
        )
        assert (await client.get("/v1/reports/years")).json() == {
            "years": [2024, 2025],
            "with_participants": [2024, 2025],
            "latest_with_data": 2025,
        }

        series = (await client.get("/v1/reports/series?from=2024&to=2025")).json()
        assert (series["from"], series["to"]) == (2024, 2025)
        y2025 = series["years"][1]
        assert y2025["total"]["participants"] == 13
        assert y2025["total"]["previous_year_participants"] == 7
        assert y2025["total"]["growth_pct"] == 85.7  # (13 - 7) / 7 = 85.71
        online = next(r for r in y2025["by_kind"] if r["kind"] == "online_seminar")
        assert (online["participants"], online["growth_pct"], online["response_rate_pct"]) == (
            7,
            75.0,
            71.4,
        )

        # Prometheus: the business gauges, once the background refresh has run.
        found = await eventually(
            lambda: helpers.gauges(client),
            until=lambda g: g == expected.gauges,
            timeout_s=15,
            what="business gauges",
        )
        assert found == expected.gauges

        # CSV: the same numbers, by either spelling.
        as_csv = await client.get("/v1/reports/participation.csv?year=2025")
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert (
            await client.get("/v1/reports/participation?year=2025&format=csv")
        ).text == as_csv.text
        assert list(csv.reader(io.StringIO(as_csv.text))) == [
            [
                "year",
                "kind",
                "programme",
                "participants",
                "previous_year_participants",
                "growth_pct",
            ],
            ["2025", "learning_event", "etwinning_plus", "2", "3", "-33.3"],
            ["2025", "online_seminar", "etwinning", "7", "4", "75.0"],
            ["2025", "pd_workshop", "etwinning_plus", "4", "0", ""],
            ["2025", "total", "", "13", "", ""],
        ]
        for report in ("satisfaction", "countries", "schools", "funnel"):
            response = await client.get(f"/v1/reports/{report}.csv?year=2025")
            assert response.status_code == 200
            assert response.text.startswith("year,")
        assert (await client.get("/v1/reports/series.csv?from=2024&to=2025")).status_code == 200

        # Duplicates (same event ids) and replays (new ids, same facts) change nothing.
        before = await helpers.all_reports(client)
        again = list(two_year_history)[:5] + list(two_year_history)[-5:]
        replayed = replays_of(two_year_history)
        more = await helpers.feed(kafka, again + replayed)
        await helpers.wait_processed(app, sent + more)
        replays_applied_at = time.time()
        assert await helpers.all_reports(client) == before
        # The gauges already held the expected values: wait for a refresh computed after
        # the replays were applied, or the check would pass on the old summary.
        await eventually(
            lambda: helpers.gauges_computed_at(client),
            until=lambda at: at > replays_applied_at,
            timeout_s=15,
            what="gauges refreshed after the replays",
        )
        assert await helpers.gauges(client) == expected.gauges

        # The erased person is nowhere in the projections, and still counted:
        # registrations and participations know people by pseudonym only, the
        # evaluation had the id until the erasure.
        db = app.state.runtime.mongo.db
        anonymous = PrivacySettings().pseudonym("b2")
        for collection in ("registrations", "participations"):
            docs = await db[collection].find().to_list()
            assert "b2" not in {value for doc in docs for value in _strings(doc)}
            assert await db[collection].count_documents({"person": anonymous}) == 1
        assert await db["evaluations"].count_documents({"participant_id": "b2"}) == 0
        assert await db["evaluations"].count_documents({"participant_id": anonymous}) == 1


async def test_rebuild_from_the_topics_reproduces_the_live_reports(
    namespace: Namespace, kafka: KafkaProbe, two_year_history: Any, expected: Any, helpers: Any
) -> None:
    settings = _settings(namespace)
    app = create_app(settings)
    async with running(app) as client:
        sent = await helpers.feed(kafka, two_year_history)
        # Poison and foreign records on the topics: the live consumer dead-letters
        # them, the rebuild must skip them the same way.
        await kafka.send_raw("seminar.events", b"{not json", key=b"s1")
        await helpers.wait_processed(app, sent + 1)
        live = await helpers.all_reports(client)
        assert live["/v1/reports/participation?year=2025"] == expected.participation[2025]

        result = await rebuild(settings)

        assert result.events_applied == len(two_year_history.events)
        assert result.skipped_invalid == 1
        assert result.previous_set == ""
        assert result.dropped_sets == [""]
        assert await helpers.all_reports(client) == live
        status = (await client.get("/v1/status/projections")).json()
        assert status["active_set"] == result.projection_set
        assert status["rebuilt_events"] == result.events_applied
        db = app.state.runtime.mongo.db
        names = set(await db.list_collection_names())
        assert "participations" not in names
        assert f"participations{result.projection_set}" in names

        # The live consumer follows the switch: a new event lands in the new set.
        await kafka.send_event(
            AttendanceRecorded(
                seminar_id="s5",
                kind=Kind.ONLINE_SEMINAR,
                programme=Programme.ETWINNING,
                year=2025,
                participant_ids=["late-1"],
            ),
            source="/services/seminar",
        )
        report = await eventually(
            lambda: _json(client, "/v1/reports/participation?year=2025"),
            until=lambda r: r["total_participants"] == 14,
            what="a new attendance after the switch",
        )
        online = next(r for r in report["rows"] if r["kind"] == "online_seminar")
        assert (online["participants"], online["growth_pct"]) == (8, 100.0)

        # A second rebuild (now including that event), through the command line,
        # again equals the live state.
        live = await helpers.all_reports(client)
        second = await _rebuild_command(namespace)
        assert second["previous_set"] == result.projection_set
        assert second["events_applied"] == len(two_year_history.events) + 1
        assert await helpers.all_reports(client) == live


async def _rebuild_command(namespace: Namespace) -> Any:
    """``python -m metrics rebuild`` with the namespace's broker, topics and database."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": namespace.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": f"{namespace.prefix}.",
        "MONGODB_URI": namespace.mongodb_uri,
        "MONGODB_DATABASE_PREFIX": f"{namespace.prefix}_",
        "METRICS_LOG_JSON": "true",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "metrics",
        "rebuild",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, err.decode(errors="replace")[-3000:]
    return json.loads(out)


async def _json(client: Any, path: str) -> Any:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


async def test_bad_report_requests_are_422_and_reports_need_no_token(namespace: Namespace) -> None:
    settings = namespace.settings(
        MetricsSettings, auth={"tokens": {"operator": ["s3cret-operator-token"]}}
    )
    async with running(create_app(settings)) as client:
        for path in (
            "/v1/reports/participation",
            "/v1/reports/participation?year=abc",
            "/v1/reports/participation?year=1800",
            "/v1/reports/satisfaction?year=2025&format=xml",
            "/v1/reports/funnel?year=2025&kind=webinar",
            "/v1/reports/series?from=2026&to=2024",
            "/v1/reports/series?from=1990&to=2100",
        ):
            response = await client.get(path)
            assert response.status_code == 422, (path, response.text)
            assert response.json()["detail"]
        empty = await client.get("/v1/reports/participation?year=2025")
        assert empty.status_code == 200
        assert empty.json() == {"year": 2025, "rows": [], "total_participants": 0}
        page = await client.get("/")
        assert page.status_code == 200
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "http://" not in page.text
        assert "https://" not in page.text
        assert (await client.get("/dashboard/dashboard.js")).status_code == 200
        assert (await client.get("/dashboard/secrets.txt")).status_code == 404
        openapi = (await client.get("/openapi.json")).json()
        assert "/v1/reports/participation" in openapi["paths"]
        assert "/v1/reports/series.csv" in openapi["paths"]
        lag = (await client.get("/v1/status/lag")).json()
        assert lag["service"] == "metrics"
        assert lag["total"] == 0


def _strings(value: Any) -> Iterator[str]:
    """Every string in a document, however deep."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


async def test_a_format_2_set_is_rebuilt_into_format_3_with_the_same_reports(
    namespace: Namespace, kafka: KafkaProbe, two_year_history: Any, expected: Any, helpers: Any
) -> None:
    """Upgrading from format 2 (a registration document per registration id, a
    participation per (seminar, participant id)): the service does not mark the set
    current and asks for a rebuild; the rebuild writes format 3 from the topics, and
    the reports are exact again."""
    settings = _settings(namespace)
    app = create_app(settings)
    async with running(app) as client:
        sent = await helpers.feed(kafka, two_year_history)
        await helpers.wait_processed(app, sent)
        live = await helpers.all_reports(client)
        db = app.state.runtime.mongo.db
        # As version 2 left the set: its format, its documents.
        await db["projection_state"].update_one({"_id": "active"}, {"$set": {"format": 2}})
        await db["registrations"].delete_many({})
        await db["participations"].delete_many({})
        await db["registrations"].insert_one(
            {"_id": "reg-s1-p1", "seminar_id": "s1", "participant_id": "p1",
             "status": "confirmed", "version": 1, "steps": [[1, "confirmed"]]}
        )  # fmt: skip
        await db["participations"].insert_one(
            {"seminar_id": "s1", "participant_id": "p1", "attended": True,
             "kind": "online_seminar", "programme": "etwinning", "year": 2024}
        )  # fmt: skip
    restarted = create_app(settings)
    async with running(restarted) as client:
        pointer = ProjectionPointer(restarted.state.runtime.mongo.db)
        assert await pointer.active_format() == 2

        result = await rebuild(settings)

        assert await pointer.active_format() == PROJECTION_FORMAT == 3
        assert await helpers.all_reports(client) == live
        assert (
            await client.get("/v1/reports/participation?year=2025")
        ).json() == expected.participation[2025]
        db = restarted.state.runtime.mongo.db
        people = await db[f"registrations{result.projection_set}"].find().to_list()
        assert people
        assert all(doc["_id"] == person_key(doc["seminar_id"], doc["person"]) for doc in people)
