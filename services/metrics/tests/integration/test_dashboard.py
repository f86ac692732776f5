"""The dashboard page, rendered by headless Chromium against a real server, shows the
numbers the JSON API returns (and the API returns the hand-computed ones)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from metrics.app import create_app
from metrics.settings import MetricsSettings
from seminarops_devtools.processes import free_port
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace

pytestmark = pytest.mark.integration

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def _chromium() -> str:
    for name in (os.environ.get("CHROMIUM", ""), *CHROMIUM_CANDIDATES):
        found = shutil.which(name) if name else None
        if found:
            return found
    pytest.fail(
        "headless Chromium is required for the dashboard test and was not found "
        "(Debian: `apt-get install -y chromium`; or set CHROMIUM=/path/to/chrome)",
        pytrace=False,
    )


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


async def dump_dom(chromium: str, url: str) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout=90)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


class Elements(HTMLParser):
    """Every element's attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def with_class(self, name: str) -> list[dict[str, str]]:
        return [a for _, a in self.found if name in a.get("class", "").split()]

    def tag(self, name: str) -> dict[str, str]:
        return next(a for t, a in self.found if t == name)


def _number(text: str) -> float | None:
    return None if text == "null" else float(text)


async def test_dashboard_charts_carry_the_numbers_of_the_api(
    namespace: Namespace, kafka: KafkaProbe, two_year_history: Any, expected: Any, helpers: Any
) -> None:
    chromium = _chromium()
    app = create_app(namespace.settings(MetricsSettings))
    async with serving(app) as base, httpx.AsyncClient(base_url=base) as client:
        sent = await helpers.feed(kafka, two_year_history)
        await helpers.wait_processed(app, sent)
        participation = (await client.get("/v1/reports/participation?year=2025")).json()
        satisfaction = (await client.get("/v1/reports/satisfaction?year=2025")).json()
        series = (await client.get("/v1/reports/series?from=2024&to=2025")).json()
        assert participation == expected.participation[2025]
        assert satisfaction == expected.satisfaction[2025]

        dom = Elements()
        dom.feed(await dump_dom(chromium, base + "/"))
        lag = (await client.get("/v1/status/lag")).json()

    body = dom.tag("body")
    assert body["data-ready"] == "true", "the page did not finish loading its data"
    assert body["data-year"] == "2025"  # the latest year with data

    # Participants by kind and year, with growth: one bar per (year, kind).
    bars = {
        (b["data-year"], b["data-kind"]): b
        for b in dom.with_class("bar")
        if "data-participants" in b and "data-growth" in b
    }
    assert set(bars) == {(str(y["year"]), r["kind"]) for y in series["years"] for r in y["by_kind"]}
    assert len(bars) == 5
    for year in series["years"]:
        for row in year["by_kind"]:
            bar = bars[(str(year["year"]), row["kind"])]
            assert int(bar["data-participants"]) == row["participants"]
            assert int(bar["data-previous-year-participants"]) == row["previous_year_participants"]
            assert _number(bar["data-growth"]) == row["growth_pct"]
    assert bars[("2025", "online_seminar")]["data-growth"] == "75"
    assert bars[("2025", "learning_event")]["data-growth"] == "-33.3"

    # Participation of the year, row by row, and its total.
    rows = dom.with_class("participation-row")
    assert [
        {
            "kind": r["data-kind"],
            "programme": r["data-programme"],
            "participants": int(r["data-participants"]),
            "previous_year_participants": int(r["data-previous-year-participants"]),
            "growth_pct": _number(r["data-growth"]),
        }
        for r in rows
    ] == participation["rows"]
    [total] = [a for _, a in dom.found if "data-total-participants" in a]
    assert int(total["data-total-participants"]) == participation["total_participants"] == 13

    # Satisfaction: rows, ratings segments and the total.
    sat_rows = dom.with_class("satisfaction-row")
    assert len(sat_rows) == len(satisfaction["rows"])
    for shown_row, row in zip(sat_rows, satisfaction["rows"], strict=True):
        assert (shown_row["data-kind"], shown_row["data-programme"]) == (
            row["kind"],
            row["programme"],
        )
        assert int(shown_row["data-participants"]) == row["participants"]
        assert int(shown_row["data-responses"]) == row["responses"]
        assert _number(shown_row["data-response-rate"]) == row["response_rate_pct"]
        assert (
            _number(shown_row["data-excellent-or-very-good"]) == row["excellent_or_very_good_pct"]
        )
    segments = dom.with_class("rating")
    assert [int(s["data-count"]) for s in segments] == [
        row["ratings"][r]
        for row in satisfaction["rows"]
        for r in ("excellent", "very_good", "good", "fair", "poor")
    ]
    [sat_total] = dom.with_class("satisfaction-total")
    assert (
        _number(sat_total["data-response-rate"])
        == satisfaction["total"]["response_rate_pct"]
        == 53.8
    )
    assert (
        _number(sat_total["data-excellent-or-very-good"])
        == satisfaction["total"]["excellent_or_very_good_pct"]
        == 57.1
    )

    # Response rates by kind and year.
    rates = {
        (b["data-year"], b["data-kind"]): _number(b["data-response-rate"])
        for b in dom.with_class("bar")
        if "data-response-rate" in b
    }
    assert rates == {
        (str(y["year"]), r["kind"]): r["response_rate_pct"]
        for y in series["years"]
        for r in y["by_kind"]
        if r["participants"] > 0
    }

    # Live lag: the total the status endpoint reports.
    assert {p["topic"] for p in lag["partitions"]} == {
        "seminar.events",
        "registration.events",
        "feedback.events",
    }
    [lag_total] = [a for _, a in dom.found if a.get("id") == "lag-total"]
    assert int(lag_total["data-total"]) == lag["total"]
    assert {(p["data-topic"], int(p["data-lag"])) for p in dom.with_class("lag-partition")} == {
        (p["topic"], p["lag"]) for p in lag["partitions"]
    }
