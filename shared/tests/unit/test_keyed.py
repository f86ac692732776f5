"""``KeyedWrites``: writers of one key take turns; a claim that meets another writer
is a write conflict (``ClaimConflict``), which the pipeline retries (its nested retry
policy is tested in ``test_retry``)."""

from __future__ import annotations

import asyncio

from pymongo.errors import OperationFailure

from seminarops_shared import retry
from seminarops_shared.keyed import ClaimConflict, Turns

WRITE_CONFLICT = 112


def conflict() -> OperationFailure:
    return OperationFailure("write conflict", code=WRITE_CONFLICT)


def test_a_contended_claim_is_a_write_conflict_once_its_patience_is_spent() -> None:
    claimed = ClaimConflict(conflict())
    # The pipeline's innermost level retries it quickly; past its patience the
    # write-conflict policy takes it over (shared/tests/unit/test_retry.py: nested).
    assert retry.is_write_conflict(claimed)
    assert retry.WRITE_CONFLICT.retries(claimed)
    assert not retry.is_outage(claimed)
    assert claimed.error.code == WRITE_CONFLICT


async def test_writers_of_one_key_take_turns_and_other_keys_do_not_wait() -> None:
    turns = Turns()
    inside: list[str] = []
    entered = asyncio.Condition()
    release = asyncio.Event()

    async def writer(name: str, keys: set[str]) -> None:
        async with turns.hold(keys):
            async with entered:
                inside.append(name)
                entered.notify_all()
            await release.wait()

    first = asyncio.create_task(writer("first", {"a"}))
    second = asyncio.create_task(writer("second", {"a", "b"}))
    other = asyncio.create_task(writer("other", {"c"}))
    async with entered:
        await asyncio.wait_for(entered.wait_for(lambda: len(inside) >= 2), 5)
    assert inside == ["first", "other"], "the second writer of 'a' waits its turn"
    release.set()
    await asyncio.gather(first, second, other)
    assert inside == ["first", "other", "second"]
