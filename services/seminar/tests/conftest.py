"""Fixtures for the seminar service's tests: a clock tests move by hand, apps over the
test's namespace, request bodies, registration events as the registration service
would publish them, and the seminar events published so far. Test modules import the
plain helpers (role headers, ``create_seminar``, the fixture types) from here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from seminar.app import create_app
from seminar.settings import SeminarSettings
from seminarops_devtools.testing.stack import KafkaProbe, Namespace
from seminarops_shared.events import Envelope
from seminarops_shared.events.registration import (
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationStatus,
    RegistrationWaitlisted,
)
from seminarops_shared.events.topics import SEMINAR_EVENTS
from seminarops_shared.settings import AuthSettings, Role

REGISTRATION_SOURCE = "/services/registration"

# One token per role: the apps accept them (``auth``), requests carry them (headers).
TOKENS = {
    Role.OPERATOR: "operator-token",
    Role.PLATFORM: "platform-token",
    Role.PARTICIPANT: "participant-token",
}
OPERATOR = {"Authorization": f"Bearer {TOKENS[Role.OPERATOR]}"}
PLATFORM = {"Authorization": f"Bearer {TOKENS[Role.PLATFORM]}"}
PARTICIPANT = {"Authorization": f"Bearer {TOKENS[Role.PARTICIPANT]}"}

AppFactory = Callable[..., FastAPI]
Body = Callable[..., dict[str, Any]]
Published = Callable[..., Awaitable[list[Envelope]]]


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def auth() -> AuthSettings:
    """The ``TOKENS``: one for each role."""
    return AuthSettings(tokens={role: [SecretStr(token)] for role, token in TOKENS.items()})


def seminar_app(namespace: Namespace, *, clock: Any = None, **overrides: Any) -> FastAPI:
    overrides.setdefault("auth", auth())
    overrides.setdefault("scheduler_poll_interval_s", 0.1)
    settings = namespace.settings(SeminarSettings, **overrides)
    return create_app(settings) if clock is None else create_app(settings, clock=clock)


def body(**overrides: Any) -> dict[str, Any]:
    """A valid contract body: an online seminar in Brussels, in the past by default."""
    values: dict[str, Any] = {
        "title": "Media literacy in primary school",
        "kind": "online_seminar",
        "programme": "etwinning",
        "starts_at": "2025-03-11T16:00:00+01:00",
        "ends_at": "2025-03-11T17:30:00+01:00",
        "timezone": "Europe/Brussels",
        "capacity": 50,
        "language": "en",
        "theme": "Media literacy",
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def confirmed(seminar_id: str, participant_id: str, *, version: int = 1) -> RegistrationConfirmed:
    return RegistrationConfirmed(
        registration_id=f"reg-{seminar_id}-{participant_id}",
        seminar_id=seminar_id,
        participant_id=participant_id,
        version=version,
        requested_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def waitlisted(seminar_id: str, participant_id: str, *, version: int = 1) -> RegistrationWaitlisted:
    return RegistrationWaitlisted(
        registration_id=f"reg-{seminar_id}-{participant_id}",
        seminar_id=seminar_id,
        participant_id=participant_id,
        version=version,
        requested_at=datetime(2025, 1, 1, tzinfo=UTC),
        position=1,
    )


def cancelled(seminar_id: str, participant_id: str, *, version: int) -> RegistrationCancelled:
    return RegistrationCancelled(
        registration_id=f"reg-{seminar_id}-{participant_id}",
        seminar_id=seminar_id,
        participant_id=participant_id,
        version=version,
        previous_status=RegistrationStatus.CONFIRMED,
        reason="participant cancelled",
    )


async def create_seminar(client: httpx.AsyncClient, payload: dict[str, Any]) -> dict[str, Any]:
    """Schedule a seminar as the operator (it must answer 201); the created seminar."""
    response = await client.post("/v1/seminars", json=payload, headers=OPERATOR)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def create_seminar_id(client: httpx.AsyncClient, payload: dict[str, Any]) -> str:
    """``create_seminar``, for the id only."""
    return str((await create_seminar(client, payload))["id"])


async def publish(kafka: KafkaProbe, events: Iterable[Any]) -> None:
    for event in events:
        await kafka.send_event(event, source=REGISTRATION_SOURCE)


async def seminar_events(kafka: KafkaProbe, *types: str) -> list[Envelope]:
    events = await kafka.events(SEMINAR_EVENTS)
    return [e for e in events if not types or e.type in types]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
def make_app(namespace: Namespace) -> AppFactory:
    """``make_app(clock=..., **settings overrides)``: the seminar service on this test's
    topics and database, with tokens for every role."""

    def make(**overrides: Any) -> FastAPI:
        return seminar_app(namespace, **overrides)

    return make


@pytest.fixture
def seminar_body() -> Body:
    return body


@dataclass(frozen=True)
class Registrations:
    """Registration events, published as the registration service would."""

    kafka: KafkaProbe
    confirmed = staticmethod(confirmed)
    waitlisted = staticmethod(waitlisted)
    cancelled = staticmethod(cancelled)

    async def publish(self, *events: Any) -> None:
        await publish(self.kafka, events)


@pytest.fixture
def registrations(kafka: KafkaProbe) -> Registrations:
    return Registrations(kafka)


@pytest.fixture
def published(kafka: KafkaProbe) -> Published:
    """``await published(*types)``: the seminar events on the topic now, of these types."""

    async def read(*types: str) -> list[Envelope]:
        return await seminar_events(kafka, *types)

    return read
