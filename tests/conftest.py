"""Shared by the cross-service suites (``tests/security``, ``tests/fuzz``): the four
services' app factories with their settings classes. Test modules import it
(``from ..conftest import SERVICES``), as the services' own tests import theirs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from feedback.app import create_app as feedback_app
from feedback.settings import FeedbackSettings
from metrics.app import create_app as metrics_app
from metrics.settings import MetricsSettings
from registration.app import create_app as registration_app
from registration.settings import RegistrationSettings
from seminar.app import create_app as seminar_app
from seminar.settings import SeminarSettings
from seminarops_shared.settings import ServiceSettings

Factory = Callable[[Any], FastAPI]
# Service name -> (create_app, its settings class), in the order the suites report them.
SERVICES: dict[str, tuple[Factory, type[ServiceSettings]]] = {
    "seminar": (seminar_app, SeminarSettings),
    "registration": (registration_app, RegistrationSettings),
    "feedback": (feedback_app, FeedbackSettings),
    "metrics": (metrics_app, MetricsSettings),
}
