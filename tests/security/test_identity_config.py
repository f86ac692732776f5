"""The identity configuration: what is refused at start-up (with a clear reason, before
any request), and how the JWKS cache re-reads keys (rotation, rate limit, age)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from seminarops_devtools.testing.stack import running
from seminarops_devtools.tokens import SigningKey
from seminarops_shared.auth import Authenticator, AuthNotConfigured, JwksKeys
from seminarops_shared.settings import AuthSettings

from ..conftest import SERVICES
from .identity_support import AUDIENCE, ISSUER, auth_settings, serving_jwks, write_jwks


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"jwt_issuer": None}, "AUTH_JWT_ISSUER must be set"),
        ({"jwt_audience": None}, "AUTH_JWT_AUDIENCE must be set"),
        ({"jwks": "ftp://keys.example/jwks.json"}, "neither a file path nor an https URL"),
        ({"jwks": "https:///jwks.json"}, "neither a file path nor an https URL"),
        ({"jwks": "http://keys.example/jwks.json"}, "keys must come over https"),
        ({"jwt_algorithms": ("ES256", "HS256")}, "only hold asymmetric algorithms"),
        ({"jwt_algorithms": ("none",)}, "only hold asymmetric algorithms"),
    ],
)
def test_incomplete_or_unsafe_identity_settings_are_refused(
    overrides: dict[str, object], reason: str
) -> None:
    given: dict[str, object] = {
        "jwks": "/etc/seminarops/jwks.json",
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        **overrides,
    }
    with pytest.raises(ValidationError, match=reason):
        AuthSettings.model_validate(given)


def test_plain_http_only_from_loopback_or_when_explicitly_allowed() -> None:
    for url in ("http://127.0.0.1:8080/jwks.json", "http://localhost/jwks", "http://[::1]/j"):
        assert AuthSettings(jwks=url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE).jwks_is_url
    allowed = AuthSettings(
        jwks="http://keys.test/jwks.json",
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwks_allow_http=True,
    )
    assert not allowed.open


def test_from_the_environment_jwks_alone_protects_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTH_REQUIRED", "true")
    monkeypatch.setenv("AUTH_JWKS", "https://id.example/.well-known/jwks.json")
    monkeypatch.setenv("AUTH_JWT_ISSUER", ISSUER)
    monkeypatch.setenv("AUTH_JWT_AUDIENCE", AUDIENCE)
    settings = AuthSettings()
    assert settings.required
    assert not settings.open
    assert not settings.anonymous_allowed


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read"),
        (b"not json", "not JSON"),
        (b'{"no": "keys"}', 'no "keys" list'),
        (json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}).encode(), "usable"),
    ],
)
async def test_an_unusable_jwks_file_stops_the_start(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "jwks.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AuthNotConfigured, match=reason):
        await Authenticator(auth_settings(str(path))).start()


async def test_an_unreachable_jwks_url_stops_the_start() -> None:
    with serving_jwks() as served:
        url = served.url
    # The server is gone: nothing answers on that port any more.
    with pytest.raises(AuthNotConfigured, match="cannot fetch"):
        await Authenticator(auth_settings(url)).start()


async def test_a_jwks_url_answering_an_error_stops_the_start() -> None:
    with serving_jwks(SigningKey.generate()) as served:
        missing = served.url.replace("jwks.json", "other.json")
        with pytest.raises(AuthNotConfigured, match="answered 404"):
            await Authenticator(auth_settings(missing)).start()


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_with_an_unreadable_jwks_refuses_to_start(
    service: str, tmp_path: Path
) -> None:
    factory, settings_class = SERVICES[service]
    # Nothing is reachable on these addresses: the refusal comes before any connection.
    app = factory(
        settings_class(
            port=1,
            auth=auth_settings(str(tmp_path / "absent.json"), required=True),
            kafka={"bootstrap_servers": "127.0.0.1:9"},
            mongo={"uri": "mongodb://127.0.0.1:9/?directConnection=true"},
        )
    )
    with pytest.raises(AuthNotConfigured, match=r"absent\.json: cannot read"):
        async with running(app):
            pass


async def test_required_auth_refuses_anonymous_callers_even_in_development(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, SigningKey.generate())
    settings = auth_settings(str(path), required=True, allow_anonymous=True)
    with pytest.raises(AuthNotConfigured, match="contradict"):
        await Authenticator(settings).start()
    # JWKS without static tokens satisfies AUTH_REQUIRED.
    jwks_only = AuthSettings(
        jwks=str(path), jwt_issuer=ISSUER, jwt_audience=AUDIENCE, required=True
    )
    await Authenticator(jwks_only).start()


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_unknown_kid_rereads_the_keys_at_most_once_per_interval(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jwks.json"
    old, new = SigningKey.generate("old"), SigningKey.generate("new")
    write_jwks(path, old)
    clock = FakeMonotonic()
    keys = JwksKeys(
        auth_settings(str(path), jwks_refresh_interval_s=30, jwks_max_age_s=600),
        monotonic=clock,
    )
    await keys.load()
    write_jwks(path, new)  # the identity provider rotated

    clock.now += 5
    assert await keys.key_for("new") is None  # re-read too recently: not again yet
    assert await keys.key_for("old") is not None  # the cache still answers
    clock.now += 30
    assert await keys.key_for("new") is not None  # the interval passed: rotation seen
    assert await keys.key_for("old") is None  # and the retired key is gone
    forged = [f"forged-{n}" for n in range(50)]
    write_jwks(path, old, new)
    for kid in forged:  # a flood of unknown kids costs no re-read within the interval
        assert await keys.key_for(kid) is None
    assert await keys.key_for("old") is None


async def test_keys_older_than_their_max_age_are_read_again(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    first, second = SigningKey.generate("first"), SigningKey.generate("second")
    write_jwks(path, first, second)
    clock = FakeMonotonic()
    keys = JwksKeys(
        auth_settings(str(path), jwks_refresh_interval_s=1, jwks_max_age_s=60), monotonic=clock
    )
    await keys.load()
    write_jwks(path, second)  # "first" revoked
    clock.now += 30
    assert await keys.key_for("first") is not None  # known and fresh: no re-read
    clock.now += 31
    assert await keys.key_for("first") is None


async def test_a_failed_reread_keeps_the_known_keys(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    key = SigningKey.generate("only")
    write_jwks(path, key)
    clock = FakeMonotonic()
    keys = JwksKeys(
        auth_settings(str(path), jwks_refresh_interval_s=0, jwks_max_age_s=10), monotonic=clock
    )
    await keys.load()
    path.write_text("{ torn")
    clock.now += 11
    assert await keys.key_for("only") is not None
    # A token without kid is accepted while the set holds exactly one key.
    assert await keys.key_for(None) is not None


async def test_a_failing_identity_provider_is_asked_once_per_interval_not_per_request() -> None:
    key = SigningKey.generate("kept")
    clock = FakeMonotonic()
    with serving_jwks(key) as served:
        keys = JwksKeys(
            auth_settings(served.url, jwks_refresh_interval_s=30, jwks_max_age_s=60),
            monotonic=clock,
        )
        await keys.load()
        served.document = b"<html>maintenance</html>"
        clock.now += 61  # old enough to be read again: every lookup wants a re-read
        for _ in range(20):
            assert await keys.key_for("kept") is not None
            assert await keys.key_for("rotated-away") is None
        assert served.fetches == 2  # start-up, then one failed re-read
        clock.now += 30
        assert await keys.key_for("kept") is not None
        assert served.fetches == 3
