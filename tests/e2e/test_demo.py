"""``make demo``'s loader against the four services (real broker and database): a small
season goes in through the public doors, the reports show it, and a second run adds
nothing."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr
from rich.console import Console

from feedback.app import create_app as feedback_app
from feedback.settings import FeedbackSettings
from metrics.app import create_app as metrics_app
from metrics.settings import MetricsSettings
from registration.app import create_app as registration_app
from registration.settings import RegistrationSettings
from seminar.app import create_app as seminar_app
from seminar.settings import SeminarSettings
from seminarops_devtools.demo import (
    Counts,
    DemoError,
    SeminarPlan,
    Stack,
    Teacher,
    load_plans,
)
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import Namespace, running
from seminarops_shared.events.topics import REGISTRATION_REQUESTS
from seminarops_shared.settings import AuthSettings, Role

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

TOKENS = {Role.OPERATOR: "operator-token", Role.PLATFORM: "platform-token"}


def _teacher(n: int) -> Teacher:
    return Teacher(id=f"t{n}", name=f"Teacher {n}", country="PT", school_id=f"sch-{n % 2}")


def _plan(seminar_id: str, starts: datetime, capacity: int, **fields: Any) -> SeminarPlan:
    body = {
        "id": seminar_id,
        "title": f"Demo {seminar_id}",
        "kind": "online_seminar",
        "programme": "etwinning",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=1)).isoformat(),
        "timezone": "Europe/Lisbon",
        "capacity": capacity,
        "language": "pt",
        "host_school_id": "sch-0",
        "open_to_other_schools": True,
    }
    return SeminarPlan(id=seminar_id, body=body, **fields)


# Held in 2025: five ask for three seats, t1 cancels, so three hold seats and one waits;
# everyone planned to come; three answers planned (t4 says nothing).
HELD = _plan(
    "demo-held",
    datetime(2025, 3, 10, 16, tzinfo=UTC),
    3,
    registrants=tuple(_teacher(n) for n in range(1, 6)),
    cancelling=("t1",),
    attends=frozenset({"t1", "t2", "t3", "t4", "t5"}),
    answers={"t1": "poor", "t2": "excellent", "t3": "good", "t4": None, "t5": "very_good"},
)
# Still to come: registrations only.
AHEAD = _plan(
    "demo-ahead",
    datetime.now(UTC).replace(microsecond=0) + timedelta(days=400),
    2,
    registrants=tuple(_teacher(n) for n in range(6, 9)),
    cancelling=(),
    attends=frozenset(),
    held=False,
)


@pytest.fixture
async def stack(namespace: Namespace) -> AsyncIterator[Stack]:
    auth = AuthSettings(tokens={role: [SecretStr(token)] for role, token in TOKENS.items()})
    apps = {
        "seminar": seminar_app(namespace.settings(SeminarSettings, auth=auth)),
        "registration": registration_app(namespace.settings(RegistrationSettings, auth=auth)),
        "feedback": feedback_app(namespace.settings(FeedbackSettings, auth=auth)),
        "metrics": metrics_app(namespace.settings(MetricsSettings, auth=auth)),
    }
    producer = AIOKafkaProducer(bootstrap_servers=namespace.kafka_bootstrap_servers, acks="all")
    async with AsyncExitStack() as exits:
        clients = {
            name: await exits.enter_async_context(running(app)) for name, app in apps.items()
        }
        await producer.start()
        exits.push_async_callback(producer.stop)
        yield Stack(
            clients,
            producer=producer,
            topic=namespace.topic(REGISTRATION_REQUESTS),
            auth=auth,
        )


async def _report(stack: Stack, name: str, year: int) -> dict[str, Any]:
    response = await stack.clients["metrics"].get(f"/v1/reports/{name}", params={"year": year})
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def test_the_demo_loads_through_the_public_doors_and_a_second_run_adds_nothing(
    stack: Stack,
) -> None:
    quiet = Console(file=io.StringIO())
    first = await load_plans(stack, [HELD, AHEAD], quiet)
    assert first.seminars_created == 2
    assert first.registrations_sent == 8  # half over Kafka, half over HTTP
    assert first.cancellations_sent == 1
    assert first.attendances == 3  # those holding a seat

    held = await stack.statuses(HELD.id)
    assert held["t1"] == "cancelled"
    assert sorted(held.values()) == [
        "cancelled",
        "confirmed",
        "confirmed",
        "confirmed",
        "waitlisted",
    ]
    assert sorted((await stack.statuses(AHEAD.id)).values()) == [
        "confirmed",
        "confirmed",
        "waitlisted",
    ]
    present = {p for p, s in held.items() if s == "confirmed"}
    answered = sum(1 for p in present if HELD.answers.get(p))
    assert first.evaluations == answered

    # The reports see it (eventually consistent).
    satisfaction = await eventually(
        lambda: _report(stack, "satisfaction", 2025),
        until=lambda r: r["total"]["responses"] == answered and r["total"]["participants"] == 3,
        timeout_s=60,
        what="the demo's evaluations in the satisfaction report",
    )
    funnel = await eventually(
        lambda: _report(stack, "funnel", 2025),
        until=lambda r: r["total"]["attended"] == 3,
        timeout_s=60,
        what="the demo's funnel",
    )
    assert (funnel["total"]["requested"], funnel["total"]["cancelled"]) == (5, 1)

    second = await load_plans(stack, [HELD, AHEAD], quiet)
    assert second == Counts(seminars_known=2)
    assert await stack.statuses(HELD.id) == held
    assert await _report(stack, "satisfaction", 2025) == satisfaction
    listing = await stack.clients["seminar"].get("/v1/seminars")
    assert sorted(s["id"] for s in listing.json()["items"]) == ["demo-ahead", "demo-held"]


async def test_the_demo_says_to_start_the_stack_when_nothing_answers() -> None:
    nowhere = httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=2)
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")
    stack = Stack({"seminar": nowhere}, producer=producer, topic="x", auth=AuthSettings(tokens={}))
    async with nowhere:
        with pytest.raises(DemoError, match="run `make up` first"):
            await load_plans(stack, [HELD], Console(file=io.StringIO()))
