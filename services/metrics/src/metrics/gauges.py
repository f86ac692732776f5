"""Business gauges at ``/metrics``, cheap at scrape time.

A background task recomputes a small in-memory summary from the projections (the
report aggregations, over all years) when this replica projected something since the
last time (checked every ``gauges_refresh_interval_s``), and at least every
``gauges_max_age_s`` (changes made by another replica or a rebuild); a custom
collector on the service's registry reads that summary, so a scrape never touches the
database and costs the same however often Prometheus comes. Labels are groups (status, kind,
programme, year, rating): no personal data.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from seminarops_shared.clock import Clock
from seminarops_shared.events.vocabulary import Kind, Programme, Rating

from .reports import as_number, percent

_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class BusinessSummary:
    """What the business gauges show: counts by group."""

    computed_at: datetime
    registrations: dict[tuple[str, str], int] = field(default_factory=dict)  # (status, kind)
    participants: dict[tuple[int, Kind, Programme], int] = field(default_factory=dict)
    evaluations: dict[tuple[Rating, Kind], int] = field(default_factory=dict)
    response_rate_pct: dict[tuple[Kind, int], float] = field(default_factory=dict)


def summarise(
    *,
    computed_at: datetime,
    registrations: dict[tuple[str, str], int],
    participants: dict[tuple[int, Kind, Programme], int],
    ratings: dict[tuple[int, Kind, Programme, Rating], int],
) -> BusinessSummary:
    """The gauge values from the report counts. Response rate per (kind, year) is
    responses over participants of all programmes, rounded like the reports; a
    (kind, year) without participants has no rate."""
    evaluations: dict[tuple[Rating, Kind], int] = defaultdict(int)
    responses: dict[tuple[Kind, int], int] = defaultdict(int)
    for (year, kind, _programme, rating), n in ratings.items():
        evaluations[(rating, kind)] += n
        responses[(kind, year)] += n
    people: dict[tuple[Kind, int], int] = defaultdict(int)
    for (year, kind, _programme), n in participants.items():
        people[(kind, year)] += n
    rates = {
        key: rate
        for key, n in people.items()
        if (rate := as_number(percent(responses.get(key, 0), n))) is not None
    }
    return BusinessSummary(
        computed_at=computed_at,
        registrations=dict(registrations),
        participants=dict(participants),
        evaluations=dict(evaluations),
        response_rate_pct=rates,
    )


class BusinessCollector(Collector):
    """Reads the latest summary; never blocks, never queries."""

    def __init__(self, summary: Callable[[], BusinessSummary | None]) -> None:
        self._summary = summary

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "seminarops_registrations",
                "Registrations by current status and seminar kind.",
                labels=["status", "kind"],
            ),
            GaugeMetricFamily(
                "seminarops_participants",
                "Participants (confirmed registrants who attended) by kind, programme and year.",
                labels=["kind", "programme", "year"],
            ),
            GaugeMetricFamily(
                "seminarops_evaluations",
                "Evaluations by overall rating and seminar kind.",
                labels=["rating", "kind"],
            ),
            GaugeMetricFamily(
                "seminarops_response_rate_pct",
                "Evaluations per participant in percent, by kind and year.",
                labels=["kind", "year"],
            ),
            GaugeMetricFamily(
                "seminarops_business_gauges_computed_timestamp_seconds",
                "When the business gauges were last computed from the projections.",
            ),
        )

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        registrations, participants, evaluations, rates, computed = self._families()
        summary = self._summary()
        if summary is not None:
            for (status, kind), n in sorted(summary.registrations.items()):
                registrations.add_metric([status, kind], n)
            for (year, kind, programme), n in sorted(summary.participants.items()):
                participants.add_metric([kind.value, programme.value, str(year)], n)
            for (rating, kind), n in sorted(summary.evaluations.items()):
                evaluations.add_metric([rating.value, kind.value], n)
            for (kind, year), pct in sorted(summary.response_rate_pct.items()):
                rates.add_metric([kind.value, str(year)], pct)
            computed.add_metric([], summary.computed_at.timestamp())
        yield from (registrations, participants, evaluations, rates, computed)


class GaugeRefresher:
    """Keeps ``summary`` fresh in the background (see the module docstring)."""

    def __init__(
        self,
        compute: Callable[[], Awaitable[BusinessSummary]],
        *,
        interval_s: float,
        max_age_s: float,
        clock: Clock,
    ) -> None:
        self._compute = compute
        self._interval_s = interval_s
        self._max_age_s = max_age_s
        self._clock = clock
        self._dirty = True
        self._task: asyncio.Task[None] | None = None
        self.summary: BusinessSummary | None = None

    def mark_dirty(self) -> None:
        self._dirty = True

    async def refresh(self) -> BusinessSummary:
        self._dirty = False
        summary = await self._compute()
        self.summary = summary
        return summary

    def _stale(self) -> bool:
        if self._dirty or self.summary is None:
            return True
        return (self._clock() - self.summary.computed_at).total_seconds() >= self._max_age_s

    async def _run(self) -> None:
        follow_up = False
        while True:
            if self._stale() or follow_up:
                # A change is marked inside its transaction, before the commit: after
                # a refresh caused by one, refresh once more on the next tick so a
                # commit that landed meanwhile is not left out until the max age.
                follow_up = self._dirty and not follow_up
                try:
                    await self.refresh()
                except Exception as error:
                    self._dirty = True
                    _log.warning("business gauges not refreshed", error=repr(error))
            await asyncio.sleep(self._interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="metrics-gauges")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
