"""Integration helpers: the registration app against the real broker and database."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI

from registration.app import create_app
from registration.repository import SeminarRepository
from registration.settings import RegistrationSettings
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace
from seminarops_shared.clock import Clock, utc_now
from seminarops_shared.events import Envelope
from seminarops_shared.events.topics import REGISTRATION_EVENTS
from seminarops_shared.keyed import Turns
from seminarops_shared.service import Runtime

from ..conftest import SEMINAR_SOURCE, scheduled


def registration_app(namespace: Namespace, *, clock: Clock = utc_now, **overrides: Any) -> FastAPI:
    overrides.setdefault("scheduler_poll_interval_s", 0.1)
    return create_app(namespace.settings(RegistrationSettings, **overrides), clock=clock)


def database(app: FastAPI) -> Any:
    runtime: Runtime = app.state.runtime
    return runtime.mongo.db


async def statuses(app: FastAPI, seminar_id: str) -> Counter[str]:
    docs = (
        await database(app)["registrations"]
        .find({"seminar_id": seminar_id}, {"status": 1})
        .to_list()
    )
    return Counter(d["status"] for d in docs)


async def registrations(app: FastAPI, seminar_id: str) -> list[dict[str, Any]]:
    return await database(app)["registrations"].find({"seminar_id": seminar_id}).to_list()


async def seat_book(app: FastAPI, seminar_id: str) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = await database(app)["seminars"].find_one({"_id": seminar_id})
    return doc


async def schedule(app: FastAPI, kafka: KafkaProbe, seminar_id: str, capacity: int) -> None:
    """Publish ``seminar.scheduled.v1`` and wait until the service knows the seminar."""
    await kafka.send_event(scheduled(seminar_id, capacity), source=SEMINAR_SOURCE)
    await eventually(lambda: seat_book(app, seminar_id), what="seminar known")


async def decisions(kafka: KafkaProbe, seminar_id: str) -> list[Envelope]:
    return [e for e in await kafka.events(REGISTRATION_EVENTS) if e.subject == seminar_id]


def without_claims_or_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seat books read plainly instead of claimed, and no in-process turns: writers of
    one seminar collide late, and only the conditional updates and the transactions
    stand between them and a wrong count."""

    async def read_only(self: SeminarRepository, uow: object, ids: object) -> object:
        return await self.get_many(ids, uow=uow)  # type: ignore[arg-type]

    async def no_turns(self: Turns, keys: object) -> AsyncIterator[None]:
        yield

    monkeypatch.setattr(SeminarRepository, "claim", read_only)
    monkeypatch.setattr(Turns, "hold", asynccontextmanager(no_turns))
