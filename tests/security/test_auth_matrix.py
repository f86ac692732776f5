"""Who may call what (CONTRACT.md "Security"), route by route, for every service.

The routes come from the apps themselves (every route FastAPI would serve, documented
or not), and each must be classified in ``EXPECTED``: a route added without a decision
about who may call it fails here. For each route:

- without a token: 401 where a role is needed (and never 401/403 on a public route);
- with an unknown token, or another scheme than Bearer: 401;
- with a known token of a role the route does not allow: 403;
- with a token of each allowed role: neither 401 nor 403 (the request then fails or
  succeeds on its merits: 404, 422, 200, ...).

Each role calls twice: with its static token and with a JWT of the identity provider
(``sub`` = the identifier the paths are filled with). Routes about one person
(``PERSONAL``) admit participants for their own data only: there a static participant
token, which names nobody, is 403 ``not_your_data``, and so is a participant JWT for a
registration that is not theirs (tests/security/test_identity.py covers them precisely).

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

from seminarops_devtools.testing.server_fixtures import Infrastructure
from seminarops_devtools.testing.stack import new_namespace, running
from seminarops_devtools.tokens import SigningKey
from seminarops_shared.settings import Role

from ..conftest import SERVICES
from .identity_support import STATIC_TOKENS, auth_settings, token, write_jwks

pytestmark = pytest.mark.integration

KEY = SigningKey.generate("matrix")
# The identifier every path parameter is filled with, and the JWTs' subject.
PATH_ID = "matrix-x1"


def callers() -> dict[str, tuple[Role, str]]:
    """Each caller's role and token. JWTs are minted when a test asks (they expire ten
    minutes after minting; the suite runs longer than that after collection)."""
    return {
        **{f"static {role.value}": (role, STATIC_TOKENS[role]) for role in Role},
        **{f"jwt {role.value}": (role, token(KEY, PATH_ID, role.value)) for role in Role},
    }


OPERATOR, PLATFORM, PARTICIPANT = Role.OPERATOR, Role.PLATFORM, Role.PARTICIPANT
PUBLIC: frozenset[Role] = frozenset()  # no token needed
Routes = dict[tuple[str, str], frozenset[Role]]

# Served by every service: documentation, probes, Prometheus. No personal data.
COMMON: Routes = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/docs/assets/{asset}"): PUBLIC,
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
        # Session times and the title only, like the seminar itself.
        ("GET", "/v1/seminars/{seminar_id}/calendar.ics"): PUBLIC,
        ("GET", "/v1/seminars/{seminar_id}/reminders"): frozenset({OPERATOR}),
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
        ("GET", "/v1/kinds/{kind}/form"): frozenset({OPERATOR}),
        ("GET", "/v1/seminars/{seminar_id}/evaluation-plan"): frozenset({OPERATOR}),
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
            for report in (
                "participation",
                "satisfaction",
                "funnel",
                "countries",
                "schools",
                "seminars",
                "certificates",
            )
            for suffix in ("", ".csv")
        },
        ("GET", "/v1/reports/series"): PUBLIC,
        ("GET", "/v1/reports/series.csv"): PUBLIC,
        ("GET", "/v1/reports/years"): PUBLIC,
        ("GET", "/v1/status/lag"): PUBLIC,
        ("GET", "/v1/status/projections"): PUBLIC,
        ("GET", "/"): PUBLIC,
        ("GET", "/dashboard/{asset}"): PUBLIC,
        ("GET", "/dashboard/vendor/{package}/{asset}"): PUBLIC,
    },
}


# Routes about one person's data: a participant only for their own (Caller.may_act_for).
PERSONAL: dict[str, set[tuple[str, str]]] = {
    "registration": {
        ("POST", "/v1/registrations"),
        ("GET", "/v1/registrations/{registration_id}"),
        ("DELETE", "/v1/registrations/{registration_id}"),
        ("POST", "/v1/registrations/{registration_id}/cancel"),
        ("POST", "/v1/registrations/{registration_id}/accept"),
        ("POST", "/v1/registrations/{registration_id}/decline"),
        ("GET", "/v1/participants/{participant_id}/registrations"),
        ("GET", "/v1/participants/{participant_id}/certificates"),
        ("GET", "/v1/participants/{participant_id}/calendar.ics"),
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
async def clients(
    infrastructure: Infrastructure, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """The four services with static tokens for every role and the identity provider's
    keys, running once for the module."""
    namespace = new_namespace(infrastructure.kafka_bootstrap_servers, infrastructure.mongodb_uri)
    jwks_path = tmp_path_factory.mktemp("matrix") / "jwks.json"
    write_jwks(jwks_path, KEY)
    auth = auth_settings(str(jwks_path))
    async with AsyncExitStack() as stack:
        found = {}
        for name, (factory, settings_class) in SERVICES.items():
            app = factory(namespace.settings(settings_class, auth=auth))
            found[name] = await stack.enter_async_context(running(app))
        yield found


def _url(path: str) -> str:
    # Any well-formed identifier: the auth check comes before the route looks it up.
    return re.sub(r"\{[^}]+\}", PATH_ID, path)


async def _call(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    body = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
    return await client.request(method, _url(path), headers=headers, **body)


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
    assert unknown.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    basic = await _call(client, method, path, {"Authorization": "Basic b3BlcmF0b3I6eA=="})
    assert basic.status_code == 401, basic.text
    personal = (method, path) in PERSONAL.get(service, set())
    for caller, (role, presented) in callers().items():
        response = await _call(client, method, path, {"Authorization": f"Bearer {presented}"})
        if role not in allowed:
            assert response.status_code == 403, (caller, response.text)
            assert role.value in response.json()["detail"]
        elif personal and caller == "static participant":
            # 422: a body that fails validation is answered before whose it is is known.
            assert response.status_code in {403, 422}, (caller, response.text)
        elif personal and role is PARTICIPANT and response.status_code == 403:
            # Allowed in, then held to their own data (a static token names nobody).
            assert response.json()["code"] == "not_your_data", (caller, response.text)
        else:
            assert response.status_code not in {401, 403}, (caller, response.text)


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_declares_bearer_security_exactly_where_a_role_is_needed(service: str) -> None:
    document = _unstarted(service).openapi()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            needs_role = EXPECTED[service][(method.upper(), path)] != PUBLIC
            declared = bool(operation.get("security"))
            assert declared == needs_role, f"{service} {method.upper()} {path}"
