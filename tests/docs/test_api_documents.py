"""The committed AsyncAPI and OpenAPI documents are the ones the code generates."""

from __future__ import annotations

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
