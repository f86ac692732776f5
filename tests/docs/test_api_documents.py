"""The committed AsyncAPI and OpenAPI documents are the ones the code generates."""

from __future__ import annotations

import json
from typing import Any

import pytest

from seminarops_devtools.apidocs import documents, render
from seminarops_shared.events import REGISTRY


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return {str(path): render(document) for path, document in documents().items()}


def test_committed_documents_match_the_code(generated: dict[str, str]) -> None:
    from pathlib import Path

    stale = [
        path
        for path, text in generated.items()
        if not Path(path).exists() or Path(path).read_text() != text
    ]
    assert not stale, f"regenerate with `make docs` and commit: {stale}"


def test_asyncapi_names_every_event_type(generated: dict[str, str]) -> None:
    asyncapi = next(text for path, text in generated.items() if path.endswith("asyncapi.json"))
    missing = [event_type for event_type in REGISTRY.models() if f'"{event_type}"' not in asyncapi]
    assert not missing


def test_every_service_documents_health_endpoints(generated: dict[str, str]) -> None:
    for path, text in generated.items():
        if "/openapi/" in path:
            assert '"/health/ready"' in text, path
            assert '"/health/live"' in text, path


def _operations(generated: dict[str, str]) -> list[tuple[str, str, str, dict[str, Any]]]:
    found = []
    for path, text in generated.items():
        if "/openapi/" not in path:
            continue
        for route, item in json.loads(text)["paths"].items():
            found += [(path, method, route, operation) for method, operation in item.items()]
    return found


def test_every_error_answer_is_declared_with_the_problem_body(
    generated: dict[str, str],
) -> None:
    """Defect 9: what the shared mapping answers is in each document, one body for all."""
    problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for document, method, route, operation in _operations(generated):
        if route.startswith("/health/"):
            continue
        where = f"{document}: {method.upper()} {route}"
        responses = operation["responses"]
        assert "503" in responses, where
        if operation.get("security"):
            assert {"401", "403"} <= set(responses), where
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in responses, where
        for status, response in responses.items():
            if int(status) >= 400:
                assert response["content"] == problem, f"{where} {status}"


def test_every_creating_post_declares_the_idempotency_key(generated: dict[str, str]) -> None:
    creating = {
        ("seminar", "/v1/seminars"),
        ("seminar", "/v1/seminars/import"),
        ("registration", "/v1/registrations"),
        ("feedback", "/v1/forms"),
        ("feedback", "/v1/evaluations"),
    }
    declared = {
        (document.rsplit("/", 1)[-1].removesuffix(".json"), route)
        for document, method, route, operation in _operations(generated)
        if method == "post"
        and any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
    }
    assert creating <= declared
