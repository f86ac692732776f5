"""Integers a client sends are bounded where they are declared: one beyond what the
database can hold (a 64-bit integer) is a 422 naming the field, never a 500."""

from __future__ import annotations

import pytest

from seminarops_devtools.testing.stack import running

from .conftest import Harness

pytestmark = pytest.mark.integration

BEYOND_INT64 = 2**63


async def test_form_versions_beyond_64_bits_are_422_not_500(harness: Harness) -> None:
    app = harness.app()
    async with running(app) as client:
        created = await client.post("/v1/forms", json={"title": "Bounds"}, headers=harness.operator)
        form_id = created.json()["id"]
        read = await client.get(f"/v1/forms/{form_id}?version={BEYOND_INT64}")
        assigned = await client.post(
            f"/v1/seminars/{harness.seminar_id()}/form",
            json={"form_id": form_id, "version": BEYOND_INT64},
            headers=harness.operator,
        )
        latest = await client.get(f"/v1/forms/{form_id}?version=1")
    assert read.status_code == 422, read.text
    assert read.json()["detail"][0]["loc"] == ["query", "version"]
    assert assigned.status_code == 422, assigned.text
    assert assigned.json()["detail"][0]["loc"] == ["body", "version"]
    assert latest.status_code == 200
