"""Schemathesis against each service's own OpenAPI document, with every check it has
(no server error, status codes, content types, response headers and bodies conforming
to the document, negative data rejected, positive data accepted, missing required
headers, unsupported methods, ignored auth, ...), the four services served over real
HTTP with the real broker and database behind them: valid and invalid requests to every
documented operation, mostly with an operator's token (so the handlers run, not only
the auth check), now and then with none. No check may fail, and no response may carry
a stack trace or other internals.

Bounded for CI: ``MAX_EXAMPLES`` per operation (about 50 operations in all).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import get_args

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from pydantic_core.core_schema import ErrorType
from schemathesis import GenerationMode, Response
from schemathesis.checks import CheckContext, positive_data_acceptance
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.case import Case
from schemathesis.schemas import BaseSchema

from seminarops_devtools.apidocs import openapi_document
from seminarops_devtools.testing.server_fixtures import Infrastructure
from seminarops_devtools.testing.stack import new_namespace, served
from seminarops_shared.settings import AuthSettings, Role

from ..conftest import SERVICES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MAX_EXAMPLES = 40
TOKENS = {role: f"fuzz-{role.value}-token" for role in Role}
OPERATOR = {"Authorization": f"Bearer {TOKENS[Role.OPERATOR]}"}


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
    base_url: str
    schema: BaseSchema


@pytest.fixture(scope="module")
def targets(infrastructure: Infrastructure) -> Iterator[dict[str, Target]]:
    """The four services, served over HTTP once for the whole module in their own
    namespace (schemathesis' own checks send further requests to them)."""
    namespace = new_namespace(infrastructure.kafka_bootstrap_servers, infrastructure.mongodb_uri)
    auth = AuthSettings(tokens={role: [SecretStr(token)] for role, token in TOKENS.items()})
    with ExitStack() as stack:
        found: dict[str, Target] = {}
        for name, (factory, settings_class) in SERVICES.items():
            app = factory(namespace.settings(settings_class, auth=auth))
            base_url = stack.enter_context(served(app))
            found[name] = Target(base_url, schemathesis.openapi.from_dict(app.openapi()))
        yield found


@schemathesis.check
def positive_data_refused_only_by_a_rule(
    ctx: CheckContext, response: Response, case: Case
) -> bool | None:
    """schemathesis' ``positive_data_acceptance``, told one thing the document cannot
    say: a request that fits the schema may still break a rule no JSON Schema states
    (an IANA time zone, an ISO 639 language, ``ends_at`` after ``starts_at``, answers
    that fit the seminar's form, ...). Such a 422 names only rules: each problem is a
    ``value_error`` of a validator, or the use case's own message. A 422 for anything
    the schema does say (a missing field, a wrong type, a length) still fails."""
    if response.status_code == 422 and _only_rules_broken(response):
        return None
    return positive_data_acceptance(ctx, response, case)


# pydantic's own error types: what a schema says (missing, too long, not an integer, ...).
# ``value_error`` and ``assertion_error`` come from a validator's own rule instead.
SCHEMA_ERRORS = set(get_args(ErrorType)) - {"value_error", "assertion_error"}


def _only_rules_broken(response: Response) -> bool:
    """Every problem is a rule: a validator's, or a use case's (its message, or its own
    kind such as ``unknown_form``)."""
    detail = response.json().get("detail")
    if isinstance(detail, str):
        return True
    return bool(detail) and all(issue.get("type") not in SCHEMA_ERRORS for issue in detail)


def _check_no_internals(response: Response) -> None:
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
def test_every_check_passes_and_no_internals(
    targets: dict[str, Target], service: str, method: str, path: str, data: st.DataObject
) -> None:
    target = targets[service]
    operation = target.schema[path][method]
    mode = data.draw(st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]))
    case = data.draw(operation.as_strategy(generation_mode=mode))
    # Mostly authorised, to reach the handlers; now and then with no token at all. A
    # case whose headers are the invalid part is sent as generated (its negation may be
    # the missing Authorization header).
    invalid_headers = case.meta is not None and any(
        location == ParameterLocation.HEADER and info.mode is GenerationMode.NEGATIVE
        for location, info in case.meta.components.items()
    )
    authorised = data.draw(st.integers(0, 4)) and not invalid_headers
    headers = OPERATOR if authorised else None
    response = case.call(base_url=target.base_url, headers=headers)
    STATUSES[service][response.status_code // 100] += 1
    _check_no_internals(response)
    # No ``checks=``: every check schemathesis has, positive data acceptance as above.
    case.validate_response(
        response,
        excluded_checks=[positive_data_acceptance],
        headers=headers,
        transport_kwargs={"base_url": target.base_url, "headers": headers},
    )


def test_the_fuzzing_reached_the_handlers() -> None:
    """Guards the guard: requests that all bounced off auth or validation would prove
    little. Each service answered some of them with success (2xx) and some with a
    client error (4xx). Runs after the operations above (tests/fuzz/conftest.py puts it
    there, whatever the random order)."""
    if not STATUSES:
        pytest.skip("the operations were not run in this session")
    for service in SERVICES:
        assert STATUSES[service][2] > 0, f"{service}: no request succeeded {STATUSES[service]}"
        assert STATUSES[service][4] > 0, f"{service}: no request was refused {STATUSES[service]}"
        assert STATUSES[service][5] == 0
