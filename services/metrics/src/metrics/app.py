"""The single wiring point of the metrics service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

import structlog
from fastapi import FastAPI

from seminarops_shared.clock import Clock, utc_now
from seminarops_shared.service import Runtime, create_service_app

from . import api
from .gauges import (
    BusinessCollector,
    BusinessSummary,
    GaugeRefresher,
    summarise,
)
from .handlers import ProjectionService, Projector
from .repository import PROJECTION_FORMAT, ProjectionPointer, Projections
from .settings import MetricsSettings
from .subscribers import subscribe

_log = structlog.get_logger(__name__)

DESCRIPTION = """\
Projections of the seminar, registration and feedback events, and the reports built
from them: participation and satisfaction (the contract's), the registrations funnel,
countries, schools and multi-year series, each also as CSV. Reports carry counts only
and need no token. Prometheus metrics at `/metrics`, a dashboard at `/`.
"""


def create_app(settings: MetricsSettings, *, clock: Clock = utc_now) -> FastAPI:
    refresher: GaugeRefresher | None = None

    async def setup(runtime: Runtime) -> ProjectionService:
        nonlocal refresher
        pointer = ProjectionPointer(runtime.mongo.db)
        projections = Projections.of(runtime.mongo.db, await pointer.active())
        await projections.ensure_indexes()
        if await projections.lack_tallies():
            # Built by a version without per-seminar tallies: the funnel would show
            # zeros until the projections are rebuilt from the topics.
            _log.error(
                "projection set has registrations but no tallies: "
                "run `python -m metrics rebuild` (docs/runbook.md)"
            )
        if await pointer.active_format() < PROJECTION_FORMAT:
            if await projections.is_empty():
                # Nothing projected yet: this version writes all of it.
                await pointer.mark_format()
            else:
                # Projected by an older version: counts it did not keep (registering
                # again, offers, certificates) stay 0 until the rebuild.
                _log.error(
                    "projection set is of an older format: "
                    "run `python -m metrics rebuild` (docs/runbook.md)",
                    format=await pointer.active_format(),
                    current=PROJECTION_FORMAT,
                )

        async def compute() -> BusinessSummary:
            queries = await service.queries()
            return summarise(
                computed_at=runtime.clock(),
                registrations=await queries.registrations_by_status_and_kind(),
                participants=await queries.participants(None),
                ratings=await queries.ratings(None),
            )

        refresher = GaugeRefresher(
            compute,
            interval_s=settings.gauges_refresh_interval_s,
            max_age_s=settings.gauges_max_age_s,
            clock=runtime.clock,
        )
        service = ProjectionService(
            pointer=pointer,
            projector=Projector(pseudonym_key=settings.privacy.key),
            on_change=refresher.mark_dirty,
        )
        subscribe(runtime, service)
        return service

    app = create_service_app(
        settings,
        title="seminar-ops metrics service",
        description=DESCRIPTION,
        routers=[api.router],
        setup=setup,
        clock=clock,
    )
    app.state.metrics.registry.register(
        BusinessCollector(lambda: refresher.summary if refresher else None)
    )

    # The shared lifespan has no hook for a service's own background tasks: wrap it so
    # the gauge refresher runs while the service does (a candidate for the library).
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        async with cast(AbstractAsyncContextManager[Any], inner(app_)) as state:
            assert refresher is not None
            refresher.start()
            try:
                yield state
            finally:
                await refresher.stop()

    app.router.lifespan_context = lifespan
    return app
