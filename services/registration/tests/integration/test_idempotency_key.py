"""``Idempotency-Key`` on ``POST /v1/registrations``, against the real database: a
repeat answers as the first call did (201, not the 200 of a plain repeat) and changes
nothing; the key with another body is 422; concurrent calls with one key register once."""

from __future__ import annotations

import asyncio

import pytest

from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running

from ..conftest import http_body, new_id
from .conftest import registration_app, registrations, schedule

pytestmark = pytest.mark.integration


async def test_a_repeat_answers_as_the_first_call(namespace: Namespace, kafka: KafkaProbe) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    keyed = {"Idempotency-Key": "reg-1"}
    async with running(app) as client:
        await schedule(app, kafka, seminar, 5)
        first = await client.post("/v1/registrations", json=http_body(seminar, "p1"), headers=keyed)
        again = await client.post("/v1/registrations", json=http_body(seminar, "p1"), headers=keyed)
        other = await client.post("/v1/registrations", json=http_body(seminar, "p2"), headers=keyed)
        plain_repeat = await client.post("/v1/registrations", json=http_body(seminar, "p1"))
        stored = await registrations(app, seminar)
    assert first.status_code == 201, first.text
    assert (again.status_code, again.content) == (201, first.content)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert plain_repeat.status_code == 200
    assert [(r["participant_id"], r["status"]) for r in stored] == [("p1", "confirmed")]


async def test_concurrent_calls_with_one_key_register_once(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    keyed = {"Idempotency-Key": "reg-race"}
    async with running(app) as client:
        await schedule(app, kafka, seminar, 5)
        calls = await asyncio.gather(
            *(
                client.post("/v1/registrations", json=http_body(seminar, "p1"), headers=keyed)
                for _ in range(5)
            )
        )
        stored = await registrations(app, seminar)
    codes = [r.status_code for r in calls]
    assert set(codes) <= {201, 409}, [r.text for r in calls]
    assert len({r.content for r in calls if r.status_code == 201}) == 1
    assert len(stored) == 1
