"""People's identities (CONTRACT.md "Security"): JWTs verified against the identity
provider's keys, on a running registration service with the real broker and database.

Every kind of bad token is 401 with ``error="invalid_token"``; a participant reads and
changes only their own registrations (403 otherwise) while operators and platform
systems act for anyone; a rotated key is picked up without a restart, from a JWKS file
or a JWKS served over HTTP.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from registration.app import create_app as registration_app
from registration.settings import RegistrationSettings
from seminarops_devtools.testing.server_fixtures import Infrastructure
from seminarops_devtools.testing.stack import new_namespace, running
from seminarops_devtools.tokens import SigningKey
from seminarops_shared.clock import utc_now
from seminarops_shared.settings import Role

from .identity_support import (
    AUDIENCE,
    ISSUER,
    STATIC_TOKENS,
    auth_settings,
    hmac_with_public_key,
    serving_jwks,
    token,
    unsigned,
    with_claims_swapped,
    write_jwks,
)

pytestmark = pytest.mark.integration

SELF = f"p-self-{uuid.uuid4().hex[:8]}"
OTHER = f"p-other-{uuid.uuid4().hex[:8]}"
ERASED = f"p-erased-{uuid.uuid4().hex[:8]}"


@dataclass
class Stack:
    client: httpx.AsyncClient
    key: SigningKey
    jwks_path: Path


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def registration_body(seminar_id: str, participant_id: str) -> dict[str, object]:
    return {"seminar_id": seminar_id, "participant": {"id": participant_id, "country": "PT"}}


def new_seminar_id() -> str:
    return f"sem-{uuid.uuid4().hex[:10]}"


def _app(infrastructure: Infrastructure, jwks: str) -> FastAPI:
    namespace = new_namespace(infrastructure.kafka_bootstrap_servers, infrastructure.mongodb_uri)
    # Re-read on every unknown kid: these tests rotate keys and must see it at once.
    auth = auth_settings(jwks, jwks_refresh_interval_s=0)
    return registration_app(namespace.settings(RegistrationSettings, auth=auth))


@pytest.fixture(scope="module")
async def stack(
    infrastructure: Infrastructure, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    key = SigningKey.generate("current")
    path = tmp_path_factory.mktemp("identity") / "jwks.json"
    write_jwks(path, key)
    async with running(_app(infrastructure, str(path))) as client:
        yield Stack(client, key, path)


def _bad_tokens(key: SigningKey) -> dict[str, str]:
    now = utc_now()
    stranger = SigningKey.generate("stranger")
    impostor = SigningKey.generate(key.kid)  # the right kid, the wrong key
    return {
        "expired": token(key, SELF, "participant", exp=int((now - timedelta(hours=1)).timestamp())),
        "not yet valid": token(
            key, SELF, "participant", nbf=int((now + timedelta(hours=1)).timestamp())
        ),
        "other issuer": token(key, SELF, "participant", iss="https://evil.example/"),
        "other audience": token(key, SELF, "participant", aud="another-system"),
        "unsigned (alg none)": unsigned(key, SELF, "operator"),
        "HS256 keyed with the public key": hmac_with_public_key(key, SELF, "operator"),
        "wrongly signed": impostor.sign(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": SELF,
                "roles": ["operator"],
                "exp": int((now + timedelta(minutes=5)).timestamp()),
            }
        ),
        "unknown kid": token(stranger, SELF, "operator"),
        "payload changed after signing": with_claims_swapped(
            token(key, SELF, "participant"), roles=["operator"]
        ),
        "no exp": token(key, SELF, "participant", exp=None),
        "no sub": token(key, SELF, "participant", sub=None),
        "roles not a list": token(key, SELF, roles=7),
        "malformed": "eyJhbGciOiJFUzI1NiJ9.not-base64!.sig",
        "garbage in three parts": "a.b.c",
    }


BAD_TOKEN_KINDS = list(_bad_tokens(SigningKey.generate("names-only")))


@pytest.mark.parametrize("kind", BAD_TOKEN_KINDS)
async def test_every_bad_token_is_401_invalid_token(stack: Stack, kind: str) -> None:
    presented = _bad_tokens(stack.key)[kind]
    for method, path in (
        ("GET", f"/v1/participants/{SELF}/registrations"),
        ("GET", "/v1/seminars/sem-x/registrations"),
        ("POST", "/v1/participants/anyone/erase"),
    ):
        response = await stack.client.request(method, path, headers=bearer(presented))
        assert response.status_code == 401, (kind, path, response.text)
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="invalid_token"'), challenge


async def test_a_valid_token_gets_its_roles_and_nothing_more(stack: Stack) -> None:
    client, key = stack.client, stack.key
    operator = await client.post(
        f"/v1/participants/{ERASED}/erase", headers=bearer(token(key, "op-1", "operator"))
    )
    assert operator.status_code == 202, operator.text
    participant = await client.post(
        f"/v1/participants/{ERASED}/erase", headers=bearer(token(key, SELF, "participant"))
    )
    assert participant.status_code == 403
    assert "participant" in participant.json()["detail"]
    roleless = await client.get(
        f"/v1/participants/{SELF}/registrations", headers=bearer(token(key, SELF))
    )
    assert roleless.status_code == 403
    # Unknown role names are ignored, known ones count.
    mixed = await client.get(
        f"/v1/participants/{SELF}/registrations",
        headers=bearer(token(key, SELF, "superuser", "participant")),
    )
    assert mixed.status_code == 200, mixed.text


async def test_a_participant_reads_and_changes_only_their_own(stack: Stack) -> None:
    client, key = stack.client, stack.key
    me = bearer(token(key, SELF, "participant"))
    operator = bearer(STATIC_TOKENS[Role.OPERATOR])
    seminar = new_seminar_id()

    # Registering: oneself yes (the seminar is not known yet: parked, 202), another no.
    mine = await client.post("/v1/registrations", json=registration_body(seminar, SELF), headers=me)
    assert mine.status_code == 202, mine.text
    for_other = await client.post(
        "/v1/registrations", json=registration_body(seminar, OTHER), headers=me
    )
    assert for_other.status_code == 403, for_other.text
    assert for_other.json()["code"] == "not_your_data"
    theirs = await client.post(
        "/v1/registrations", json=registration_body(seminar, OTHER), headers=operator
    )
    assert theirs.status_code == 202, theirs.text
    my_id, their_id = mine.json()["id"], theirs.json()["id"]

    # Reading: one's own registration and list; not another's, nor a seminar's whole list.
    assert (await client.get(f"/v1/registrations/{my_id}", headers=me)).status_code == 200
    assert (await client.get(f"/v1/registrations/{their_id}", headers=me)).status_code == 403
    own_list = await client.get(f"/v1/participants/{SELF}/registrations", headers=me)
    assert own_list.status_code == 200
    their_list = await client.get(f"/v1/participants/{OTHER}/registrations", headers=me)
    assert their_list.status_code == 403
    whole = await client.get(f"/v1/seminars/{seminar}/registrations", headers=me)
    assert whole.status_code == 403
    # An id that does not exist is no more "not found" to a participant than another's
    # (ids derive from seminar and person: a 404 would tell who registered where).
    assert (await client.get("/v1/registrations/reg-none", headers=me)).status_code == 403
    assert (await client.get("/v1/registrations/reg-none", headers=operator)).status_code == 404

    # Cancelling: not another's (and it stays as it was), one's own yes.
    assert (await client.delete(f"/v1/registrations/{their_id}", headers=me)).status_code == 403
    assert (
        await client.post(f"/v1/registrations/{their_id}/cancel", headers=me)
    ).status_code == 403
    still = await client.get(f"/v1/registrations/{their_id}", headers=operator)
    assert still.json()["status"] == "pending"
    cancelled = await client.delete(f"/v1/registrations/{my_id}", headers=me)
    assert cancelled.status_code == 200, cancelled.text

    # Operators and platform systems act for anyone.
    platform = bearer(token(key, "portal", "platform"))
    assert (await client.get(f"/v1/registrations/{their_id}", headers=platform)).status_code == 200
    listed = await client.get(f"/v1/participants/{OTHER}/registrations", headers=operator)
    assert listed.status_code == 200


async def test_a_static_participant_token_names_nobody_so_acts_for_nobody(stack: Stack) -> None:
    static = bearer(STATIC_TOKENS[Role.PARTICIPANT])
    registered = await stack.client.post(
        "/v1/registrations", json=registration_body(new_seminar_id(), SELF), headers=static
    )
    assert registered.status_code == 403, registered.text
    listed = await stack.client.get(f"/v1/participants/{SELF}/registrations", headers=static)
    assert listed.status_code == 403


async def test_a_rotated_key_in_the_jwks_file_is_picked_up_without_a_restart(
    stack: Stack,
) -> None:
    successor = SigningKey.generate("successor")
    path = f"/v1/participants/{SELF}/registrations"
    early = await stack.client.get(path, headers=bearer(token(successor, SELF, "participant")))
    assert early.status_code == 401
    write_jwks(stack.jwks_path, stack.key, successor)
    try:
        rotated = await stack.client.get(
            path, headers=bearer(token(successor, SELF, "participant"))
        )
        assert rotated.status_code == 200, rotated.text
    finally:
        write_jwks(stack.jwks_path, stack.key)


async def test_keys_served_over_http_are_fetched_cached_and_rotated(
    infrastructure: Infrastructure,
) -> None:
    first, second = SigningKey.generate("first"), SigningKey.generate("second")
    path = f"/v1/participants/{SELF}/registrations"
    with serving_jwks(first) as served:
        async with running(_app(infrastructure, served.url)) as client:
            assert served.fetches == 1  # read at start-up
            for _ in range(5):
                answer = await client.get(path, headers=bearer(token(first, SELF, "participant")))
                assert answer.status_code == 200, answer.text
            assert served.fetches == 1  # a known kid is answered from the cache

            served.publish(second)  # the identity provider rotated, "first" retired
            rotated = await client.get(path, headers=bearer(token(second, SELF, "participant")))
            assert rotated.status_code == 200, rotated.text
            assert served.fetches == 2
            retired = await client.get(path, headers=bearer(token(first, SELF, "participant")))
            assert retired.status_code == 401
