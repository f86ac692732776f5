"""``make up``'s development identity and its visible warnings (#15): the services get
``AUTH_JWKS`` pointing at a key pair generated into ``.run/identity/``, ``make token``
prints tokens they accept, the API stays open to calls without a token unless tokens
are configured, and ``make up`` / ``make status`` print (not only log) that the API
runs open and that the pseudonym key is the public development one."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from fastapi.security import HTTPAuthorizationCredentials

from seminarops_devtools import tokens
from seminarops_devtools.devstack import StackConfig, status
from seminarops_devtools.processes import free_port
from seminarops_shared.auth import Authenticator
from seminarops_shared.settings import AuthSettings, Role

OPEN_WARNING = "the API runs OPEN"
KEY_WARNING = "public development key"


def _config(tmp_path: Path, **env: str) -> StackConfig:
    # Ports nothing listens on: `status` then reports everything stopped, quickly.
    ports = {
        name: str(free_port())
        for name in (
            "KAFKA_PORT",
            "MONGODB_PORT",
            "REGISTRATION_PORT",
            "SEMINAR_PORT",
            "FEEDBACK_PORT",
            "METRICS_PORT",
        )
    }
    return StackConfig.from_env({**ports, "S3_PORT": "40000", **env}, root=tmp_path)


def _auth_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AuthSettings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return AuthSettings()


def test_without_configuration_the_services_trust_the_development_identity_and_stay_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    env = config.identity_env()
    assert env["AUTH_JWKS"] == str(tmp_path / ".run" / "identity" / "jwks.json")
    auth = _auth_from(env, monkeypatch)
    assert not auth.open
    assert auth.anonymous_allowed
    assert any(OPEN_WARNING in w for w in config.development_warnings())
    assert any(KEY_WARNING in w for w in config.development_warnings())


def test_configured_tokens_and_key_close_the_api_and_silence_the_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(
        tmp_path,
        AUTH_TOKENS='{"operator": ["op-secret"]}',
        PRIVACY_PSEUDONYM_KEY="a-key-of-our-own-0123456789",
    )
    env = config.identity_env()
    assert "AUTH_ALLOW_ANONYMOUS" not in env
    assert not _auth_from(env, monkeypatch).anonymous_allowed
    assert config.development_warnings() == []


def test_the_platforms_identity_provider_replaces_the_development_one(tmp_path: Path) -> None:
    config = _config(tmp_path, AUTH_JWKS="https://id.example/.well-known/jwks.json")
    assert config.identity_env() == {}


def test_status_prints_the_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert not status(_config(tmp_path))
    printed = capsys.readouterr().out
    assert f"WARNING: {OPEN_WARNING}" in printed
    assert "WARNING: no PRIVACY_PSEUDONYM_KEY configured" in printed
    assert "make token" in printed

    quiet = _config(
        tmp_path,
        AUTH_TOKENS='{"platform": ["pf-secret"]}',
        PRIVACY_PSEUDONYM_KEY="a-key-of-our-own-0123456789",
    )
    assert not status(quiet)
    assert "WARNING" not in capsys.readouterr().out


async def test_make_token_prints_a_token_the_services_accept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEMINAROPS_ROOT", str(tmp_path))
    assert tokens.main(["--role", "participant", "--sub", "p-1"]) == 0
    participant = capsys.readouterr().out.strip()
    assert tokens.main(["--role", "operator,platform", "--sub", "ops-1"]) == 0
    operator = capsys.readouterr().out.strip()

    identity = tokens.ensure_development_identity(tmp_path / ".run")  # idempotent: same key
    private = identity.private_key_path.stat().st_mode
    assert stat.S_IMODE(private) == 0o600
    auth = _auth_from(_config(tmp_path).identity_env(), monkeypatch)
    authenticator = Authenticator(auth)
    await authenticator.start()

    def presented(value: str) -> HTTPAuthorizationCredentials:
        return HTTPAuthorizationCredentials(scheme="Bearer", credentials=value)

    person = await authenticator.caller(presented(participant))
    assert (person.roles, person.participant_id) == (frozenset({Role.PARTICIPANT}), "p-1")
    assert not person.may_see("p-2")
    staff = await authenticator.caller(presented(operator))
    assert staff.roles == {Role.OPERATOR, Role.PLATFORM}
    assert staff.may_see("p-2")
    anonymous = await authenticator.caller(None)
    assert anonymous.unrestricted


def test_make_token_refuses_an_unknown_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEMINAROPS_ROOT", str(tmp_path))
    with pytest.raises(SystemExit):
        tokens.main(["--role", "admin", "--sub", "p-1"])
