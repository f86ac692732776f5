"""Helpers for the feedback service's integration tests (real broker and database)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from feedback.app import create_app
from feedback.settings import FeedbackSettings
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace
from seminarops_shared.clock import utc_now
from seminarops_shared.events import Envelope
from seminarops_shared.events.registration import ParticipantErased
from seminarops_shared.events.seminar import AttendanceRecorded, SeminarCompleted
from seminarops_shared.events.topics import FEEDBACK_EVENTS
from seminarops_shared.events.vocabulary import Kind, Programme
from seminarops_shared.service import Runtime

TOKENS = {"operator": "op-secret", "platform": "platform-secret", "participant": "pt-secret"}


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


class MovableClock:
    """The service's clock: real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset

    def move_to(self, when: datetime) -> None:
        self.offset = max(self.offset, when - utc_now())


@dataclass
class Harness:
    namespace: Namespace
    kafka: KafkaProbe
    clock: MovableClock = field(default_factory=MovableClock)
    operator: dict[str, str] = field(default_factory=lambda: bearer("operator"))
    platform: dict[str, str] = field(default_factory=lambda: bearer("platform"))
    participant: dict[str, str] = field(default_factory=lambda: bearer("participant"))

    def app(self, **overrides: Any) -> FastAPI:
        overrides.setdefault("auth", {"tokens": {r: [t] for r, t in TOKENS.items()}})
        overrides.setdefault("scheduler_poll_interval_s", 0.1)
        settings = self.namespace.settings(FeedbackSettings, **overrides)
        return create_app(settings, clock=self.clock)

    @staticmethod
    def seminar_id() -> str:
        return f"sem-{uuid.uuid4().hex[:10]}"

    async def complete(
        self,
        seminar_id: str,
        attendees: list[str],
        *,
        kind: Kind = Kind.ONLINE_SEMINAR,
        programme: Programme = Programme.ETWINNING,
        year: int = 2026,
    ) -> Envelope:
        return await self.kafka.send_event(
            SeminarCompleted(
                seminar_id=seminar_id,
                kind=kind,
                programme=programme,
                year=year,
                attendee_ids=attendees,
            ),
            source="/services/seminar",
        )

    async def attendance(
        self,
        seminar_id: str,
        participants: list[str],
        *,
        kind: Kind = Kind.ONLINE_SEMINAR,
        programme: Programme = Programme.ETWINNING,
        year: int = 2026,
    ) -> Envelope:
        return await self.kafka.send_event(
            AttendanceRecorded(
                seminar_id=seminar_id,
                kind=kind,
                programme=programme,
                year=year,
                participant_ids=participants,
            ),
            source="/services/seminar",
        )

    async def erase(self, participant_id: str) -> Envelope:
        return await self.kafka.send_event(
            ParticipantErased(participant_id=participant_id, erased_at=utc_now()),
            source="/services/registration",
        )

    async def events(self, event_type: str | None = None) -> list[Envelope]:
        return [
            e
            for e in await self.kafka.events(FEEDBACK_EVENTS)
            if event_type is None or e.type == event_type
        ]

    async def wait_events(
        self, event_type: str, count: int, *, timeout_s: float = 30
    ) -> list[Envelope]:
        async def probe() -> list[Envelope]:
            return await self.events(event_type)

        return await eventually(
            probe,
            until=lambda e: len(e) >= count,
            timeout_s=timeout_s,
            what=f"{count} x {event_type}",
        )

    async def rate(self, client: httpx.AsyncClient, seminar_id: str) -> dict[str, Any]:
        response = await client.get(f"/v1/seminars/{seminar_id}/response-rate")
        return response.json() if response.status_code == 200 else {}

    async def until_open(
        self, client: httpx.AsyncClient, seminar_id: str, attendees: int
    ) -> dict[str, Any]:
        async def probe() -> dict[str, Any]:
            return await self.rate(client, seminar_id)

        return await eventually(
            probe,
            until=lambda r: r.get("window_state") == "open" and r.get("attendees") == attendees,
            what=f"window of {seminar_id} open with {attendees} attendees",
        )

    @staticmethod
    def db(app: FastAPI) -> AsyncDatabase[dict[str, Any]]:
        runtime: Runtime = app.state.runtime
        return runtime.mongo.db

    async def evaluate(
        self,
        client: httpx.AsyncClient,
        seminar_id: str,
        participant_id: str,
        *,
        overall: str = "excellent",
        answers: dict[str, Any] | None = None,
        comments: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "seminar_id": seminar_id,
            "participant_id": participant_id,
            "overall": overall,
            "answers": {"content": 4} if answers is None else answers,
        }
        if comments is not None:
            body["comments"] = comments
        return await client.post(
            "/v1/evaluations", json=body, headers=self.participant if headers is None else headers
        )


@pytest.fixture
def harness(namespace: Namespace, kafka: KafkaProbe) -> Harness:
    return Harness(namespace=namespace, kafka=kafka)
