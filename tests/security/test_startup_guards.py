"""A production service never starts open: with ``AUTH_REQUIRED`` (set by
docker-compose.yml and deploy/) a service whose ``AUTH_TOKENS`` hold no token refuses to
start, whatever the broker and database; without it, it starts open and says so."""

from __future__ import annotations

import pytest

from seminarops_devtools.testing.stack import running
from seminarops_shared.auth import AuthNotConfigured
from seminarops_shared.settings import AuthSettings

from ..conftest import SERVICES


@pytest.mark.parametrize("tokens", ["{}", '{"operator": [], "platform": []}'])
def test_required_auth_with_empty_tokens_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tokens: str
) -> None:
    monkeypatch.setenv("AUTH_REQUIRED", "true")
    monkeypatch.setenv("AUTH_TOKENS", tokens)
    settings = AuthSettings()
    assert settings.required
    assert settings.open


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_requiring_tokens_refuses_to_start_without_any(service: str) -> None:
    factory, settings_class = SERVICES[service]
    # Nothing is reachable on these addresses: the refusal comes before any connection.
    app = factory(
        settings_class(
            port=1,
            auth=AuthSettings(required=True, tokens={}),
            kafka={"bootstrap_servers": "127.0.0.1:9"},
            mongo={"uri": "mongodb://127.0.0.1:9/?directConnection=true"},
        )
    )
    with pytest.raises(AuthNotConfigured, match="refusing to start"):
        async with running(app):
            pass
