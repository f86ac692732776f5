"""Schemathesis against each service's own OpenAPI document, in process, with the real
broker and database behind the apps: valid and invalid requests to every documented
operation, mostly with an operator's token (so the handlers run, not only the auth
check), now and then with a random one. No response may be a 5xx, and none may carry a
stack trace or other internals.

Bounded for CI: ``MAX_EXAMPLES`` per operation (about 50 operations in all).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import BaseSchema

from seminarops_devtools.apidocs import openapi_document
from seminarops_devtools.testing.server_fixtures import Infrastructure
from seminarops_devtools.testing.stack import new_namespace, running
from seminarops_shared.settings import AuthSettings, Role

from ..conftest import SERVICES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MAX_EXAMPLES = 40
TOKENS = {role: f"fuzz-{role.value}-token" for role in Role}
OPERATOR = f"Bearer {TOKENS[Role.OPERATOR]}"


# What no response body may contain: a Python traceback, source locations, object
# addresses, or the names of the libraries underneath.
INTERNALS = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+|site-packages"
    r"|<[\w.]+ object at 0x[0-9a-f]+>|\b(pymongo|aiokafka|faststream|starlette)\.\w+"
)


def _operations() -> list[tuple[str, str, str]]:
    found = []
    for name in SERVICES:
        for path, item in openapi_document(name)["paths"].items():
            found += [(name, method.upper(), path) for method in item if method != "parameters"]
    return found


OPERATIONS = _operations()
# Status classes seen per service (2 -> 2xx, ...).
STATUSES: defaultdict[str, Counter[int]] = defaultdict(Counter)


@dataclass
class Target:
    client: httpx.AsyncClient
    schema: BaseSchema


@pytest.fixture(scope="module")
async def targets(infrastructure: Infrastructure) -> AsyncIterator[dict[str, Target]]:
    """The four services, running once for the whole module in their own namespace."""
    namespace = new_namespace(infrastructure.kafka_bootstrap_servers, infrastructure.mongodb_uri)
    auth = AuthSettings(tokens={role: [SecretStr(token)] for role, token in TOKENS.items()})
    async with AsyncExitStack() as stack:
        found: dict[str, Target] = {}
        for name, (factory, settings_class) in SERVICES.items():
            app = factory(namespace.settings(settings_class, auth=auth))
            client = await stack.enter_async_context(running(app))
            found[name] = Target(client, schemathesis.openapi.from_dict(app.openapi()))
        yield found


def _request(case: Any) -> dict[str, Any]:
    """Schemathesis' request (requests-style keyword arguments) for httpx."""
    kwargs: dict[str, Any] = case.as_transport_kwargs(base_url="http://service")
    kwargs.pop("cookies", None)
    data = kwargs.pop("data", None)
    if isinstance(data, str | bytes):
        kwargs["content"] = data
    elif data is not None:
        kwargs["data"] = data
    if kwargs.get("files"):
        # requests turns any form value into text; httpx wants text or bytes already.
        kwargs["files"] = [
            (name, (spec[0], _text_or_bytes(spec[1]), *spec[2:])) for name, spec in kwargs["files"]
        ]
    return kwargs


def _text_or_bytes(value: object) -> str | bytes:
    if isinstance(value, str | bytes):
        return value
    return json.dumps(value)


def _check_no_internals(response: httpx.Response) -> None:
    leaked = INTERNALS.search(response.text)
    assert leaked is None, f"internals in a {response.status_code} response: {leaked.group(0)!r}"


@pytest.mark.parametrize(
    ("service", "method", "path"), OPERATIONS, ids=[f"{s} {m} {p}" for s, m, p in OPERATIONS]
)
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
async def test_no_server_error_and_no_internals(
    targets: dict[str, Target], service: str, method: str, path: str, data: st.DataObject
) -> None:
    target = targets[service]
    operation = target.schema[path][method]
    mode = data.draw(st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]))
    case = data.draw(operation.as_strategy(generation_mode=mode))
    if data.draw(st.integers(0, 4)):  # mostly authorised: reach the handlers
        case.headers = {**(case.headers or {}), "Authorization": OPERATOR}
    request = target.client.build_request(**_request(case))
    await request.aread()  # multipart bodies stream; schemathesis reads them back
    response = await target.client.send(request)
    STATUSES[service][response.status_code // 100] += 1
    _check_no_internals(response)
    case.validate_response(response, checks=[not_a_server_error])


def test_the_fuzzing_reached_the_handlers() -> None:
    """Guards the guard: requests that all bounced off auth or validation would prove
    little. Each service answered some of them with success (2xx) and some with a
    client error (4xx). Runs after the operations above (file order)."""
    if not STATUSES:
        pytest.skip("the operations were not run in this session")
    for service in SERVICES:
        assert STATUSES[service][2] > 0, f"{service}: no request succeeded {STATUSES[service]}"
        assert STATUSES[service][4] > 0, f"{service}: no request was refused {STATUSES[service]}"
        assert STATUSES[service][5] == 0
