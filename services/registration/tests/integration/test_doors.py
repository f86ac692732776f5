"""SIGUSR1 closes a service's doors (``make down`` sends it before SIGTERM): the HTTP API
answers 503 with Retry-After while health stays open, the inbound topic is no longer
consumed, and the service's own topics still are, so what it holds can drain."""

from __future__ import annotations

import os
import signal
from collections import Counter

import pytest

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.events.seminar import SeminarRescheduled

from ..conftest import SEMINAR_SOURCE, http_body, new_id, requested, scheduled
from .conftest import registration_app, schedule, seat_book, statuses

pytestmark = pytest.mark.integration


async def test_sigusr1_closes_http_and_inbound_but_keeps_internal_topics_flowing(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    times = scheduled(seminar, 1).sessions
    app = registration_app(namespace)
    async with running(app) as client:
        await schedule(app, kafka, seminar, 2)
        await kafka.send_event(requested(seminar, "anna"))
        await eventually(lambda: statuses(app, seminar), what="anna decided")
        before = await client.get("/health/drain")

        os.kill(os.getpid(), signal.SIGUSR1)
        closed = await eventually(
            lambda: client.get("/health/drain"),
            until=lambda r: r.json()["doors"] == "closed",
            what="doors closed",
        )
        refused = await client.post("/v1/registrations", json=http_body(seminar, "carl"))
        live = await client.get("/health/live")
        # Published before the capacity change, on the inbound topic: not consumed.
        await kafka.send_event(requested(seminar, "bert"))
        await kafka.send_event(
            SeminarRescheduled(
                seminar_id=seminar,
                old_sessions=times,
                new_sessions=times,
                old_capacity=2,
                new_capacity=3,
                year=2026,
            ),
            source=SEMINAR_SOURCE,
        )
        book = await eventually(
            lambda: seat_book(app, seminar),
            until=lambda b: b is not None and b["capacity"] == 3,
            what="capacity change applied",
        )
        after = await statuses(app, seminar)

    assert before.json()["doors"] == "open"
    assert isinstance(closed.json()["outbox_backlog"], int)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert live.status_code == 200
    assert book is not None
    assert after == Counter(confirmed=1), "bert's inbound request was consumed after closing"
