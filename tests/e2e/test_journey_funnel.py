"""The participant journey from the services' own events to the funnel, through the
contract only: a seminar scheduled over HTTP with seat offers and eligible countries,
registrations, a cancellation, an offer declined and one accepted, a participant who
registers again and one from a country that is not eligible. The metrics count every
step once, and the person who registered twice once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from metrics.app import create_app as metrics_app
from metrics.settings import MetricsSettings
from registration.app import create_app as registration_app
from registration.settings import RegistrationSettings
from seminar.app import create_app as seminar_app
from seminar.settings import SeminarSettings
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import Namespace, running
from seminarops_shared.settings import AuthSettings, Role

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

OPERATOR = {"Authorization": "Bearer operator-token"}
PLATFORM = {"Authorization": "Bearer platform-token"}
JOURNEY = (
    "registered_again",
    "offers_made",
    "offers_accepted",
    "offers_declined",
    "offers_expired",
    "not_eligible",
)


@dataclass
class Stack:
    seminar: httpx.AsyncClient
    registration: httpx.AsyncClient
    metrics: httpx.AsyncClient


@pytest.fixture
async def stack(namespace: Namespace) -> AsyncIterator[Stack]:
    auth = AuthSettings(
        tokens={
            Role.OPERATOR: [SecretStr("operator-token")],
            Role.PLATFORM: [SecretStr("platform-token")],
        }
    )
    apps = [
        seminar_app(namespace.settings(SeminarSettings, auth=auth)),
        registration_app(namespace.settings(RegistrationSettings, auth=auth)),
        metrics_app(namespace.settings(MetricsSettings, auth=auth)),
    ]
    async with AsyncExitStack() as exits:
        clients = [await exits.enter_async_context(running(app)) for app in apps]
        yield Stack(*clients)


async def _register(stack: Stack, seminar_id: str, person: str, country: str) -> dict[str, Any]:
    response = await stack.registration.post(
        "/v1/registrations",
        headers=PLATFORM,
        json={"seminar_id": seminar_id, "participant": {"id": person, "country": country}},
    )
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def _status(stack: Stack, reg_id: str) -> str:
    response = await stack.registration.get(f"/v1/registrations/{reg_id}", headers=PLATFORM)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


async def _funnel_row(stack: Stack, seminar_id: str) -> dict[str, Any]:
    response = await stack.metrics.get("/v1/reports/funnel", params={"year": 2025})
    response.raise_for_status()
    rows = [s for s in response.json()["seminars"] if s["seminar_id"] == seminar_id]
    return rows[0] if rows else {}


async def test_offers_registering_again_and_eligibility_reach_the_funnel_once_each(
    stack: Stack,
) -> None:
    created = await stack.seminar.post(
        "/v1/seminars",
        headers=OPERATOR,
        json={
            "title": f"Media literacy {uuid.uuid4().hex[:6]}",
            "kind": "online_seminar",
            "programme": "etwinning_plus",
            "starts_at": "2025-04-10T16:00:00+02:00",
            "ends_at": "2025-04-10T17:30:00+02:00",
            "timezone": "Europe/Kyiv",
            "capacity": 1,
            "language": "en",
            "promotion": "offer",
            "offer_hours": 24,
            "eligible_countries": ["UA", "GE"],
        },
    )
    assert created.status_code == 201, created.text
    seminar_id = created.json()["id"]

    # The registration service learns of the seminar from its event.
    await eventually(
        lambda: stack.registration.get(
            f"/v1/seminars/{seminar_id}/registrations", headers=OPERATOR
        ),
        until=lambda r: r.status_code == 200,
        what="the seminar known to the registration service",
    )

    ana = await _register(stack, seminar_id, "j-ana", "UA")
    bo = await _register(stack, seminar_id, "j-bo", "GE")
    cy = await _register(stack, seminar_id, "j-cy", "UA")
    zed = await _register(stack, seminar_id, "j-zed", "FR")
    assert [r["status"] for r in (ana, bo, cy, zed)] == [
        "confirmed",
        "waitlisted",
        "waitlisted",
        "rejected",
    ]
    # Ana cancels: Bo is offered the seat and declines; Cy is offered it and accepts.
    cancel = await stack.registration.delete(f"/v1/registrations/{ana['id']}", headers=PLATFORM)
    assert cancel.status_code == 200, cancel.text
    assert await _status(stack, bo["id"]) == "offered"
    declined = await stack.registration.post(
        f"/v1/registrations/{bo['id']}/decline", headers=PLATFORM
    )
    assert declined.status_code == 200, declined.text
    accepted = await stack.registration.post(
        f"/v1/registrations/{cy['id']}/accept", headers=PLATFORM
    )
    assert accepted.status_code == 200, accepted.text
    # Ana registers again: the same registration, at the end of the queue.
    again = await _register(stack, seminar_id, "j-ana", "UA")
    assert (again["id"], again["status"]) == (ana["id"], "waitlisted")

    row = await eventually(
        lambda: _funnel_row(stack, seminar_id),
        until=lambda r: r.get("registered_again") == 1 and r.get("offers_accepted") == 1,
        what="the journey in the funnel",
    )
    assert {k: row[k] for k in JOURNEY} == {
        "registered_again": 1,
        "offers_made": 2,
        "offers_accepted": 1,
        "offers_declined": 1,
        "offers_expired": 0,
        "not_eligible": 1,
    }
    # Ana counts once however often she registered; Cy's accepted offer is a seat.
    assert (row["requested"], row["confirmed"], row["rejected"]) == (4, 2, 1)
    assert (row["waitlisted"], row["cancelled"]) == (3, 1)
