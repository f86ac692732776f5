"""Integers a client sends are bounded where they are declared: one beyond what the
database can hold (a 64-bit integer) is a 422 naming the parameter, never a 500."""

from __future__ import annotations

import pytest

from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running

from ..conftest import new_id
from .conftest import registration_app, schedule

pytestmark = pytest.mark.integration

BEYOND_INT64 = 2**63


async def test_an_offset_beyond_64_bits_is_422_not_500(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    async with running(app) as client:
        await schedule(app, kafka, seminar, 5)
        huge = await client.get(f"/v1/seminars/{seminar}/registrations?offset={BEYOND_INT64}")
        huge_limit = await client.get(f"/v1/seminars/{seminar}/registrations?limit={BEYOND_INT64}")
        largest = await client.get(f"/v1/seminars/{seminar}/registrations?offset=1000000")
    assert huge.status_code == 422, huge.text
    assert huge.json()["detail"][0]["loc"] == ["query", "offset"]
    assert huge_limit.status_code == 422
    assert (largest.status_code, largest.json()["registrations"]) == (200, [])
