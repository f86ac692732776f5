"""The dashboard page, rendered by headless Chromium against a real server fed through
the real broker, shows the numbers the JSON API returns, at desktop and phone sizes;
the vendored chart library is served from the service with a long cache header."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from metrics.api import CHART_JS, IMMUTABLE
from metrics.app import create_app
from metrics.settings import MetricsSettings
from seminarops_devtools.browser import (
    DESKTOP,
    PHONE,
    BrowserMissing,
    WindowSize,
    dump_dom,
    find_chromium,
    png_size,
    screenshot,
)
from seminarops_devtools.processes import free_port
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace
from seminarops_shared.events.seminar import SeminarScheduled, SessionTimes
from seminarops_shared.events.vocabulary import Kind, Programme

pytestmark = pytest.mark.integration

LONG_TITLE = "A very long seminar title about project-based learning across borders and languages"


def _chromium() -> str:
    try:
        return find_chromium()
    except BrowserMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """The app behind a real uvicorn server on a free port, in this event loop."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()  # raises what made the server fail
        return server.started

    try:
        await eventually(started, timeout_s=60, what="uvicorn started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=60)


class Elements(HTMLParser):
    """Every element's attributes (and the text directly inside it), in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def with_class(self, name: str) -> list[dict[str, str]]:
        return [a for _, a in self.found if name in a.get("class", "").split()]

    def by_id(self, ident: str) -> dict[str, str]:
        return next(a for _, a in self.found if a.get("id") == ident)

    def tag(self, name: str) -> dict[str, str]:
        return next(a for t, a in self.found if t == name)


def _number(text: str) -> float | None:
    return None if text == "null" else float(text)


def _with_a_season_scheduled_ahead(history: Any) -> Any:
    """The two-year history plus a 2027 seminar nobody attended yet (with a title
    longer than any axis has room for): the page must still open on 2025."""
    starts = datetime(2027, 5, 4, 15, tzinfo=UTC)
    history.add(
        SeminarScheduled(
            seminar_id="s-ahead",
            title=LONG_TITLE,
            kind=Kind.ONLINE_SEMINAR,
            programme=Programme.ETWINNING,
            language="en",
            timezone="Europe/Brussels",
            sessions=[SessionTimes(starts_at=starts, ends_at=starts + timedelta(hours=1))],
            capacity=30,
            year=2027,
        )
    )
    return history


def _check_page(dom: Elements, api: dict[str, Any]) -> None:
    body = dom.tag("body")
    assert body["data-ready"] == "true", "the page did not finish loading its data"
    assert body["data-year"] == "2025"  # the latest year with participants, not 2027
    for card in ("years-card", "funnel-card", "participation-card", "satisfaction-card"):
        assert dom.by_id(card)["data-state"] == "ready", card
    for card in ("countries-card", "schools-card", "seminars-card", "lag-card"):
        assert dom.by_id(card)["data-state"] == "ready", card
    picker = [a for t, a in dom.found if t == "option"]
    assert [o["value"] for o in picker] == ["2027", "2025", "2024"]

    # The year at a glance.
    kpis = {a["data-kpi"]: a["data-value"] for a in dom.with_class("kpi")}
    year = next(y for y in api["series"]["years"] if y["year"] == 2025)
    assert int(kpis["participants"]) == year["total"]["participants"] == 13
    assert int(kpis["responses"]) == api["satisfaction"]["total"]["responses"]
    assert (
        _number(kpis["excellent-or-very-good"])
        == api["satisfaction"]["total"]["excellent_or_very_good_pct"]
    )
    assert int(kpis["seminars"]) == 4  # s4 s5 s6 s7

    # Year on year.
    assert [
        (int(r["data-year"]), int(r["data-participants"]), _number(r["data-growth"]))
        for r in dom.with_class("series-row")
    ] == [
        (y["year"], y["total"]["participants"], y["total"]["growth_pct"])
        for y in api["series"]["years"]
    ]

    # The registration funnel.
    assert {r["data-stage"]: int(r["data-count"]) for r in dom.with_class("funnel-stage")} == api[
        "funnel"
    ]["total"]

    # Participation, row by row, and its total.
    assert [
        {
            "kind": r["data-kind"],
            "programme": r["data-programme"],
            "participants": int(r["data-participants"]),
            "previous_year_participants": int(r["data-previous-year-participants"]),
            "growth_pct": _number(r["data-growth"]),
        }
        for r in dom.with_class("participation-row")
    ] == api["participation"]["rows"]
    [total] = dom.with_class("participation-total")
    assert int(total["data-participants"]) == api["participation"]["total_participants"]

    # Satisfaction, rows and total.
    shown = dom.with_class("satisfaction-row")
    assert [
        (
            r["data-kind"],
            r["data-programme"],
            int(r["data-responses"]),
            _number(r["data-response-rate"]),
            _number(r["data-excellent-or-very-good"]),
        )
        for r in shown
    ] == [
        (
            r["kind"],
            r["programme"],
            r["responses"],
            r["response_rate_pct"],
            r["excellent_or_very_good_pct"],
        )
        for r in api["satisfaction"]["rows"]
    ]
    [sat_total] = dom.with_class("satisfaction-total")
    assert _number(sat_total["data-response-rate"]) == 53.8

    # Countries, ranked (most participants first).
    assert [
        (r["data-country"], int(r["data-participants"])) for r in dom.with_class("country-row")
    ] == [("FR", 6), ("DE", 3), ("PL", 2), ("null", 2)]

    # Schools hosting events open to others: sch-a hosted s4 and s5.
    assert [
        (r["data-school"], int(r["data-hosted-open-events"])) for r in dom.with_class("school-row")
    ] == [("sch-a", 2)]

    # The seminar table.
    assert [
        (
            r["data-seminar"],
            int(r["data-confirmed"]),
            int(r["data-waitlisted"]),
            _number(r["data-fill-rate"]),
            _number(r["data-response-rate"]),
        )
        for r in dom.with_class("seminar-row")
    ] == [
        (
            r["seminar_id"],
            r["confirmed"],
            r["waitlisted"],
            r["fill_rate_pct"],
            r["response_rate_pct"],
        )
        for r in api["seminars"]["rows"]
    ]

    # Every view links its CSV for the year on the page.
    links = {a["data-csv"]: a["href"] for t, a in dom.found if t == "a" and "data-csv" in a}
    assert links == {
        "series": "/v1/reports/series.csv?from=2024&to=2025",
        "funnel": "/v1/reports/funnel.csv?year=2025",
        "participation": "/v1/reports/participation.csv?year=2025",
        "satisfaction": "/v1/reports/satisfaction.csv?year=2025",
        "countries": "/v1/reports/countries.csv?year=2025",
        "schools": "/v1/reports/schools.csv?year=2025",
        "seminars": "/v1/reports/seminars.csv?year=2025",
    }

    # Words agree with their numbers.
    text = " ".join(" ".join(dom.text).split())
    assert "13 participants" in text
    assert "1 participants" not in text


async def test_dashboard_shows_the_numbers_of_the_api_on_desktop_and_phone(
    namespace: Namespace,
    kafka: KafkaProbe,
    two_year_history: Any,
    helpers: Any,
    tmp_path: Path,
) -> None:
    chromium = _chromium()
    app = create_app(namespace.settings(MetricsSettings))
    history = _with_a_season_scheduled_ahead(two_year_history)
    async with serving(app) as base, httpx.AsyncClient(base_url=base) as client:
        sent = await helpers.feed(kafka, history)
        await helpers.wait_processed(app, sent)
        api = {
            name: (await client.get(path)).json()
            for name, path in {
                "series": "/v1/reports/series?from=2024&to=2025",
                "funnel": "/v1/reports/funnel?year=2025",
                "participation": "/v1/reports/participation?year=2025",
                "satisfaction": "/v1/reports/satisfaction?year=2025",
                "seminars": "/v1/reports/seminars?year=2025",
            }.items()
        }
        assert (await client.get("/v1/reports/years")).json()["latest_with_data"] == 2025

        pages: dict[WindowSize, Elements] = {}
        for size in (DESKTOP, PHONE):
            pages[size] = Elements()
            pages[size].feed(await dump_dom(base + "/", size, chromium=chromium))
        shot = await screenshot(base + "/", tmp_path / "phone.png", PHONE, chromium=chromium)

        library = await client.get(f"/dashboard/vendor/{CHART_JS}/chart.umd.min.js")
        license_text = await client.get(f"/dashboard/vendor/{CHART_JS}/LICENSE.md")
        missing = await client.get(f"/dashboard/vendor/{CHART_JS}/../api.py")

    for size, dom in pages.items():
        try:
            _check_page(dom, api)
        except AssertionError as exc:
            raise AssertionError(f"at {size.name} size ({size.width}x{size.height})") from exc
    assert png_size(shot) == (PHONE.width, PHONE.height)

    assert library.status_code == 200
    assert library.headers["cache-control"] == IMMUTABLE == "public, max-age=31536000, immutable"
    assert library.headers["content-type"].startswith("text/javascript")
    assert library.text.startswith("/*!\n * Chart.js v4.6.2")
    assert "MIT License" in license_text.text
    assert missing.status_code == 404


async def test_dashboard_without_data_says_so_instead_of_drawing_empty_charts(
    namespace: Namespace,
) -> None:
    chromium = _chromium()
    app = create_app(namespace.settings(MetricsSettings))
    async with serving(app) as base:
        dom = Elements()
        dom.feed(await dump_dom(base + "/", PHONE, chromium=chromium))

    assert dom.tag("body")["data-ready"] == "true"
    cards = ("years-card", "funnel-card", "participation-card", "seminars-card", "kpis")
    assert {dom.by_id(card)["data-state"] for card in cards} == {"empty"}
    assert dom.by_id("lag-card")["data-state"] == "ready"
    text = " ".join(" ".join(dom.text).split())
    assert "No seminars yet: nothing to report." in text
    assert not dom.with_class("seminar-row")
