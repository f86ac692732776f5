"""The report routes accept exactly the years an event may carry (the vocabulary's
``Year``: 1990..2200), for ``year`` as for a series' ``from`` and ``to``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from metrics import api
from metrics.reports import (
    ParticipationReport,
    SeriesReport,
    participation_report,
    series_report,
)


class _EmptyProjections:
    """The two reports these tests ask for, over projections holding nothing."""

    async def participation(self, year: int) -> ParticipationReport:
        return participation_report(year, {})

    async def series(self, from_year: int, to_year: int) -> SeriesReport:
        return series_report(from_year, to_year, {}, {})


async def _status(path: str) -> int:
    app = FastAPI()
    app.include_router(api.router)
    empty: Any = _EmptyProjections()
    app.dependency_overrides[api.metrics_service] = lambda: empty
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://metrics") as client:
        return (await client.get(path)).status_code


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/reports/participation?year=1989", 422),
        ("/v1/reports/participation?year=1990", 200),
        ("/v1/reports/participation?year=2200", 200),
        ("/v1/reports/participation?year=2201", 422),
        ("/v1/reports/series?from=1989&to=1990", 422),
        ("/v1/reports/series?from=1990&to=1991", 200),
        ("/v1/reports/series?from=2199&to=2200", 200),
        ("/v1/reports/series?from=2199&to=2201", 422),
    ],
)
async def test_years_are_bounded_by_the_vocabulary(path: str, status: int) -> None:
    assert await _status(path) == status
