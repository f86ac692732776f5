"""``Idempotency-Key`` on the feedback service's creating POSTs, against the real
database: a repeated form or evaluation answers as the first call did and stores
nothing more; the key with another body is 422; concurrent calls with one key create
one form."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from seminarops_devtools.testing.stack import running

from .conftest import Harness

pytestmark = pytest.mark.integration


async def test_a_repeated_form_is_the_first_one_and_creates_nothing_more(
    harness: Harness,
) -> None:
    title = f"Form {uuid.uuid4().hex[:8]}"
    headers = harness.operator | {"Idempotency-Key": "form-key"}
    app = harness.app()
    async with running(app) as client:
        first = await client.post("/v1/forms", json={"title": title}, headers=headers)
        again = await client.post("/v1/forms", json={"title": title}, headers=headers)
        other = await client.post("/v1/forms", json={"title": title + "!"}, headers=headers)
        stored = await harness.db(app)["forms"].count_documents({"title": title})
    assert first.status_code == 201, first.text
    assert (again.status_code, again.content) == (201, first.content)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert stored == 1


async def test_concurrent_forms_with_one_key_create_one(harness: Harness) -> None:
    title = f"Form {uuid.uuid4().hex[:8]}"
    headers = harness.operator | {"Idempotency-Key": "form-race"}
    app = harness.app()
    async with running(app) as client:
        calls = await asyncio.gather(
            *(client.post("/v1/forms", json={"title": title}, headers=headers) for _ in range(5))
        )
        stored = await harness.db(app)["forms"].count_documents({"title": title})
    assert {r.status_code for r in calls} <= {201, 409}, [r.text for r in calls]
    assert len({r.json()["id"] for r in calls if r.status_code == 201}) == 1
    assert stored == 1


async def test_a_repeated_evaluation_answers_201_again_not_409(harness: Harness) -> None:
    app = harness.app()
    async with running(app) as client:
        form = await client.post("/v1/forms", json={"title": "Short"}, headers=harness.operator)
        seminar_id = harness.seminar_id()
        assigned = await client.post(
            f"/v1/seminars/{seminar_id}/form",
            json={"form_id": form.json()["id"]},
            headers=harness.operator,
        )
        assert assigned.status_code == 200, assigned.text
        await harness.complete(seminar_id, ["p-1"])
        await harness.until_open(client, seminar_id, 1)
        keyed = harness.participant | {"Idempotency-Key": "eval-1"}
        first = await harness.evaluate(client, seminar_id, "p-1", answers={}, headers=keyed)
        again = await harness.evaluate(client, seminar_id, "p-1", answers={}, headers=keyed)
        other = await harness.evaluate(
            client, seminar_id, "p-1", answers={}, overall="good", headers=keyed
        )
        without_key = await harness.evaluate(client, seminar_id, "p-1", answers={})
        stored = await harness.db(app)["responses"].count_documents({"seminar_id": seminar_id})
    assert first.status_code == 201, first.text
    assert (again.status_code, again.content) == (201, first.content)
    assert other.status_code == 422
    assert without_key.status_code == 409  # one evaluation per attendee, as before
    assert stored == 1
