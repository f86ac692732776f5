"""The four services together, each with its own settings against the real broker and
database, talking HTTP through in-process clients. The registration service's clock
can be moved forward (``stack.clock.shift``): an offer's hours pass in a moment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from feedback.app import create_app as feedback_app
from feedback.settings import FeedbackSettings
from metrics.app import create_app as metrics_app
from metrics.settings import MetricsSettings
from registration.app import create_app as registration_app
from registration.settings import RegistrationSettings
from seminar.app import create_app as seminar_app
from seminar.settings import SeminarSettings
from seminarops_devtools.testing.stack import Namespace, running
from seminarops_shared.clock import utc_now
from seminarops_shared.settings import AuthSettings, Role

TOKENS = {
    Role.OPERATOR: "operator-token",
    Role.PLATFORM: "platform-token",
    Role.PARTICIPANT: "participant-token",
}
OPERATOR = {"Authorization": "Bearer operator-token"}
PLATFORM = {"Authorization": "Bearer platform-token"}
PARTICIPANT = {"Authorization": "Bearer participant-token"}


class ShiftableClock:
    """The real time plus a shift a test moves forward."""

    def __init__(self) -> None:
        self.shift = timedelta()

    def __call__(self) -> datetime:
        return utc_now() + self.shift


@dataclass
class Stack:
    seminar: httpx.AsyncClient
    registration: httpx.AsyncClient
    feedback: httpx.AsyncClient
    metrics: httpx.AsyncClient
    clock: ShiftableClock  # the registration service's


@pytest.fixture
async def stack(namespace: Namespace) -> AsyncIterator[Stack]:
    auth = AuthSettings(tokens={role: [SecretStr(token)] for role, token in TOKENS.items()})
    clock = ShiftableClock()
    apps = [
        seminar_app(namespace.settings(SeminarSettings, auth=auth)),
        registration_app(namespace.settings(RegistrationSettings, auth=auth), clock=clock),
        feedback_app(namespace.settings(FeedbackSettings, auth=auth)),
        metrics_app(namespace.settings(MetricsSettings, auth=auth)),
    ]
    async with AsyncExitStack() as exits:
        clients = [await exits.enter_async_context(running(app)) for app in apps]
        yield Stack(*clients, clock=clock)
