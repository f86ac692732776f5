"""Helpers for the metrics service's integration tests (real broker and database)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe


def processed_records(app: FastAPI) -> int:
    """Records the app's consumer has dealt with (applied, duplicate, ignored or
    dead-lettered), from its own Prometheus counter."""
    total = 0.0
    for family in app.state.metrics.events_processed.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                total += sample.value
    return int(total)


async def feed(kafka: KafkaProbe, events: Iterable[Any]) -> int:
    """Publish events as their owners would (source per topic, key = record key)."""
    count = 0
    for sent in events:
        await kafka.send_event(sent.data, source=sent.source, event_id=sent.event_id)
        count += 1
    return count


async def wait_processed(app: FastAPI, records: int, *, timeout_s: float = 60) -> None:
    async def probe() -> int:
        return processed_records(app)

    await eventually(
        probe, until=lambda n: n >= records, timeout_s=timeout_s, what=f"{records} records consumed"
    )


async def all_reports(client: httpx.AsyncClient) -> dict[str, Any]:
    """Every report the service serves for the history's years, as JSON."""
    paths = [
        "/v1/reports/participation?year=2024",
        "/v1/reports/participation?year=2025",
        "/v1/reports/satisfaction?year=2024",
        "/v1/reports/satisfaction?year=2025",
        "/v1/reports/funnel?year=2024",
        "/v1/reports/funnel?year=2025",
        "/v1/reports/funnel?year=2025&kind=learning_event",
        "/v1/reports/countries?year=2024",
        "/v1/reports/countries?year=2025",
        "/v1/reports/schools?year=2024",
        "/v1/reports/schools?year=2025",
        "/v1/reports/series?from=2023&to=2026",
        "/v1/reports/years",
        "/v1/reports/certificates?year=2025",
    ]
    out: dict[str, Any] = {}
    for path in paths:
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text)
        out[path] = response.json()
    return out


async def gauges(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    business = (
        "seminarops_registrations",
        "seminarops_participants",
        "seminarops_evaluations",
        "seminarops_response_rate_pct",
    )
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name in business
    }


async def gauges_computed_at(client: httpx.AsyncClient) -> float:
    """When the business gauges were last computed (0 before the first time)."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "seminarops_business_gauges_computed_timestamp_seconds":
                return float(sample.value)
    return 0.0


@pytest.fixture
def helpers() -> Any:
    class Helpers:
        processed_records = staticmethod(processed_records)
        feed = staticmethod(feed)
        wait_processed = staticmethod(wait_processed)
        all_reports = staticmethod(all_reports)
        gauges = staticmethod(gauges)
        gauges_computed_at = staticmethod(gauges_computed_at)

    return Helpers
