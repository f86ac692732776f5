"""The HTTP API's edges: bad input is 422 and stores nothing, tokens and roles, bad
Kafka input goes to the dead-letter topic and the rest goes on."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.events.topics import REGISTRATION_REQUESTS
from seminarops_shared.settings import AuthSettings, Role

from ..conftest import SEMINAR_SOURCE, http_body, new_id, requested, scheduled
from .conftest import database, registration_app, schedule, statuses

pytestmark = pytest.mark.integration

TOKENS = {"operator": "op-token", "platform": "pf-token", "participant": "pa-token"}


def _auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


async def test_invalid_requests_are_422_and_store_nothing(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    async with running(app) as client:
        await schedule(app, kafka, seminar, 5)
        bad_bodies = [
            {"seminar_id": seminar},
            {"seminar_id": seminar, "participant": {"display_name": "no id"}},
            {"seminar_id": seminar, "participant": {"id": "p1", "email": "not-an-address"}},
            {"seminar_id": seminar, "participant": {"id": "p1", "country": "France"}},
            {"seminar_id": "has spaces", "participant": {"id": "p1"}},
            {**http_body(seminar, "p1"), "unexpected": True},
        ]
        responses = [await client.post("/v1/registrations", json=b) for b in bad_bodies]
        bad_path = await client.get("/v1/seminars/bad%20id/registrations")
        bad_status = await client.get(f"/v1/seminars/{seminar}/registrations?status=maybe")
        missing = await client.delete("/v1/registrations/reg-nothing")
        stored = await statuses(app, seminar)
    assert [r.status_code for r in responses] == [422] * len(bad_bodies)
    assert "participant" in responses[0].text
    assert "email" in responses[2].text
    assert (bad_path.status_code, bad_status.status_code, missing.status_code) == (422, 422, 404)
    assert stored.total() == 0


async def test_tokens_and_roles(namespace: Namespace) -> None:
    auth = AuthSettings(tokens={Role(r): [SecretStr(t)] for r, t in TOKENS.items()})
    app = registration_app(namespace, auth=auth)
    seminar = new_id("sem")
    async with running(app) as client:
        anonymous = await client.post("/v1/registrations", json=http_body(seminar, "p1"))
        wrong = await client.post(
            "/v1/registrations",
            json=http_body(seminar, "p1"),
            headers={"Authorization": "Bearer nope"},
        )
        # A static participant token names no person, so it may register nobody
        # (participants carry JWTs: tests/security/test_identity.py).
        by_participant = await client.post(
            "/v1/registrations", json=http_body(seminar, "p1"), headers=_auth("participant")
        )
        by_platform = await client.post(
            "/v1/registrations", json=http_body(seminar, "p1"), headers=_auth("platform")
        )
        list_anonymous = await client.get(f"/v1/seminars/{seminar}/registrations")
        list_participant = await client.get(
            f"/v1/seminars/{seminar}/registrations", headers=_auth("participant")
        )
        list_operator = await client.get(
            f"/v1/seminars/{seminar}/registrations", headers=_auth("operator")
        )
        erase_platform = await client.post("/v1/participants/p1/erase", headers=_auth("platform"))
        erase_operator = await client.post("/v1/participants/p1/erase", headers=_auth("operator"))
        health = await client.get("/health/live")
    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert (by_participant.status_code, by_participant.json()["code"]) == (403, "not_your_data")
    assert (by_platform.status_code, by_platform.json()["status"]) == (202, "pending")
    assert (list_anonymous.status_code, list_participant.status_code) == (401, 403)
    assert list_operator.status_code == 200
    assert list_operator.json()["seminar_status"] == "unknown"
    assert (erase_platform.status_code, erase_operator.status_code) == (403, 202)
    assert health.status_code == 200


async def test_bad_kafka_records_are_dead_lettered_and_the_rest_goes_on(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    async with running(app):
        await kafka.send_event(scheduled(seminar, 5), source=SEMINAR_SOURCE)
        await kafka.send_raw(REGISTRATION_REQUESTS, b"{not json", key=seminar.encode())
        good = requested(seminar, "fine")
        envelope = await kafka.send_event(good)
        broken = envelope.model_copy(
            update={"id": "broken-1", "data": {"seminar_id": seminar, "participant": {"id": ""}}}
        )
        await kafka.send_envelope(broken, topic=REGISTRATION_REQUESTS, key=seminar)
        await kafka.send_event(requested(seminar, "after"))
        counts = await eventually(
            lambda: statuses(app, seminar), until=lambda c: c.total() == 2, what="good ones"
        )
        dead = await eventually(
            lambda: kafka.read_all(REGISTRATION_REQUESTS + ".dlq"),
            until=lambda r: len(r) == 2,
            what="dead letters",
        )
        docs = await database(app)["registrations"].find({"seminar_id": seminar}).to_list()
    assert counts.total() == 2
    assert sorted(d["participant_id"] for d in docs) == ["after", "fine"]
    kinds = sorted(dict(r.headers)["x-dlq-reason-kind"].decode() for r in dead)
    assert kinds == ["invalid_data", "invalid_json"]
