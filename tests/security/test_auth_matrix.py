"""Who may call what (CONTRACT.md "Security"), route by route, for every service.

The routes come from the apps themselves (every route FastAPI would serve, documented
or not), and each must be classified in ``EXPECTED``: a route added without a decision
about who may call it fails here. For each route:

- without a token: 401 where a role is needed (and never 401/403 on a public route);
- with an unknown token, or another scheme than Bearer: 401;
- with a known token of a role the route does not allow: 403;
- with a token of each allowed role: neither 401 nor 403 (the request then fails or
  succeeds on its merits: 404, 422, 200, ...).

The OpenAPI documents must say the same: an operation declares bearer security exactly
when it needs a role.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import SecretStr

from seminarops_devtools.testing.server_fixtures import Infrastructure
from seminarops_devtools.testing.stack import new_namespace, running
from seminarops_shared.settings import AuthSettings, Role

from ..conftest import SERVICES

pytestmark = pytest.mark.integration

TOKENS = {role: f"matrix-{role.value}-token" for role in Role}

OPERATOR, PLATFORM, PARTICIPANT = Role.OPERATOR, Role.PLATFORM, Role.PARTICIPANT
PUBLIC: frozenset[Role] = frozenset()  # no token needed
Routes = dict[tuple[str, str], frozenset[Role]]

# Served by every service: documentation, probes, Prometheus. No personal data.
COMMON: Routes = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/health/live"): PUBLIC,
    ("GET", "/health/ready"): PUBLIC,
    ("GET", "/health/drain"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
}
EXPECTED: dict[str, Routes] = {
    "seminar": {
        **COMMON,
        ("POST", "/v1/seminars"): frozenset({OPERATOR}),
        ("POST", "/v1/seminars/import"): frozenset({OPERATOR}),
        ("GET", "/v1/seminars"): PUBLIC,
        ("GET", "/v1/seminars/{seminar_id}"): PUBLIC,
        ("POST", "/v1/seminars/{seminar_id}/reschedule"): frozenset({OPERATOR}),
        ("POST", "/v1/seminars/{seminar_id}/start"): frozenset({OPERATOR, PLATFORM}),
        ("POST", "/v1/seminars/{seminar_id}/cancel"): frozenset({OPERATOR}),
        ("POST", "/v1/seminars/{seminar_id}/complete"): frozenset({OPERATOR}),
        ("POST", "/v1/seminars/{seminar_id}/attendance"): frozenset({OPERATOR, PLATFORM}),
        ("GET", "/v1/seminars/{seminar_id}/roster"): frozenset({OPERATOR, PLATFORM}),
    },
    "registration": {
        **COMMON,
        ("POST", "/v1/registrations"): frozenset({OPERATOR, PLATFORM, PARTICIPANT}),
        ("GET", "/v1/registrations/{registration_id}"): frozenset(
            {OPERATOR, PLATFORM, PARTICIPANT}
        ),
        ("DELETE", "/v1/registrations/{registration_id}"): frozenset(
            {OPERATOR, PLATFORM, PARTICIPANT}
        ),
        ("POST", "/v1/registrations/{registration_id}/cancel"): frozenset(
            {OPERATOR, PLATFORM, PARTICIPANT}
        ),
        # Answering a seat offer: like cancelling, the participant's own act.
        ("POST", "/v1/registrations/{registration_id}/accept"): frozenset(
            {OPERATOR, PLATFORM, PARTICIPANT}
        ),
        ("POST", "/v1/registrations/{registration_id}/decline"): frozenset(
            {OPERATOR, PLATFORM, PARTICIPANT}
        ),
        ("GET", "/v1/seminars/{seminar_id}/registrations"): frozenset({OPERATOR, PLATFORM}),
        ("GET", "/v1/participants/{participant_id}/registrations"): frozenset(
            {OPERATOR, PLATFORM, PARTICIPANT}
        ),
        ("POST", "/v1/participants/{participant_id}/erase"): frozenset({OPERATOR}),
        # The participant journey: a person's certificates and calendar are personal;
        # a certificate's code verifies it publicly (no e-mail, no participant id).
        ("GET", "/v1/participants/{participant_id}/certificates"): frozenset(
            {OPERATOR, PLATFORM, PARTICIPANT}
        ),
        ("GET", "/v1/participants/{participant_id}/calendar.ics"): frozenset(
            {OPERATOR, PLATFORM, PARTICIPANT}
        ),
        ("GET", "/v1/certificates/{code}"): PUBLIC,
        ("GET", "/v1/certificates/{code}.pdf"): PUBLIC,
    },
    "feedback": {
        **COMMON,
        ("POST", "/v1/forms"): frozenset({OPERATOR}),
        ("GET", "/v1/forms"): PUBLIC,
        ("GET", "/v1/forms/{form_id}"): PUBLIC,
        ("PUT", "/v1/forms/{form_id}"): frozenset({OPERATOR}),
        ("POST", "/v1/seminars/{seminar_id}/form"): frozenset({OPERATOR}),
        ("POST", "/v1/kinds/{kind}/form"): frozenset({OPERATOR}),
        ("GET", "/v1/seminars/{seminar_id}/form"): PUBLIC,
        ("POST", "/v1/evaluations"): frozenset({OPERATOR, PLATFORM, PARTICIPANT}),
        ("GET", "/v1/seminars/{seminar_id}/response-rate"): PUBLIC,
        ("GET", "/v1/response-rates"): PUBLIC,
        ("GET", "/v1/seminars/{seminar_id}/non-respondents"): frozenset({OPERATOR}),
        ("GET", "/v1/exports/responses.csv"): frozenset({OPERATOR}),
    },
    # Reports, status and the dashboard carry no personal data: all public.
    "metrics": {
        **COMMON,
        **{
            ("GET", f"/v1/reports/{report}{suffix}"): PUBLIC
            for report in ("participation", "satisfaction", "funnel", "countries", "schools")
            for suffix in ("", ".csv")
        },
        ("GET", "/v1/reports/series"): PUBLIC,
        ("GET", "/v1/reports/series.csv"): PUBLIC,
        ("GET", "/v1/reports/years"): PUBLIC,
        ("GET", "/v1/status/lag"): PUBLIC,
        ("GET", "/v1/status/projections"): PUBLIC,
        ("GET", "/"): PUBLIC,
        ("GET", "/dashboard/{asset}"): PUBLIC,
    },
}


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app answers, HEAD aside (it follows GET)."""
    return {
        (method, str(context.path))
        for context in iter_route_contexts(app.routes)
        for method in context.methods or ()
        if method != "HEAD"
    }


def _unstarted(name: str) -> FastAPI:
    factory, settings_class = SERVICES[name]
    return factory(settings_class(port=1))


ROUTES = sorted(
    (name, method, path) for name in SERVICES for method, path in served_routes(_unstarted(name))
)


@pytest.fixture(scope="module")
async def clients(infrastructure: Infrastructure) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """The four services with tokens for every role, running once for the module."""
    namespace = new_namespace(infrastructure.kafka_bootstrap_servers, infrastructure.mongodb_uri)
    auth = AuthSettings(tokens={role: [SecretStr(token)] for role, token in TOKENS.items()})
    async with AsyncExitStack() as stack:
        found = {}
        for name, (factory, settings_class) in SERVICES.items():
            app = factory(namespace.settings(settings_class, auth=auth))
            found[name] = await stack.enter_async_context(running(app))
        yield found


def _url(path: str) -> str:
    # Any well-formed identifier: the auth check comes before the route looks it up.
    return re.sub(r"\{[^}]+\}", "matrix-x1", path)


async def _call(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    body = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
    return await client.request(method, _url(path), headers=headers, **body)


def _bearer(role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def test_every_route_is_classified_and_every_classified_route_exists() -> None:
    for name in SERVICES:
        served = served_routes(_unstarted(name))
        assert served - EXPECTED[name].keys() == set(), f"{name}: routes nobody classified"
        assert EXPECTED[name].keys() - served == set(), f"{name}: classified routes that are gone"


@pytest.mark.parametrize(("service", "method", "path"), ROUTES, ids=[" ".join(r) for r in ROUTES])
async def test_route_answers_each_caller_as_classified(
    clients: dict[str, httpx.AsyncClient], service: str, method: str, path: str
) -> None:
    assert (method, path) in EXPECTED[service], f"{service} {method} {path} is not classified"
    allowed = EXPECTED[service][(method, path)]
    client = clients[service]

    anonymous = await _call(client, method, path, {})
    if allowed == PUBLIC:
        assert anonymous.status_code not in {401, 403}, anonymous.text
        return
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers.get("www-authenticate") == "Bearer"
    unknown = await _call(client, method, path, {"Authorization": "Bearer not-a-known-token"})
    assert unknown.status_code == 401, unknown.text
    basic = await _call(client, method, path, {"Authorization": "Basic b3BlcmF0b3I6eA=="})
    assert basic.status_code == 401, basic.text
    for role in Role:
        response = await _call(client, method, path, _bearer(role))
        if role in allowed:
            assert response.status_code not in {401, 403}, (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert role.value in response.json()["detail"]


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_declares_bearer_security_exactly_where_a_role_is_needed(service: str) -> None:
    document = _unstarted(service).openapi()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            needs_role = EXPECTED[service][(method.upper(), path)] != PUBLIC
            declared = bool(operation.get("security"))
            assert declared == needs_role, f"{service} {method.upper()} {path}"
