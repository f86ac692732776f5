"""``KeyedWrites``: writers of one key take turns; a claim that meets another writer
is a write conflict (``ClaimConflict``), which the pipeline retries (its nested retry
policy is tested in ``test_retry``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

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


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Let the other tasks run until ``condition`` holds (a deadline, not a pause)."""
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0)  # one pass of the event loop


async def test_a_writer_of_several_keys_queues_for_all_of_them_at_once() -> None:
    """A consumer batch (several seminars) is not overtaken, on a seminar it has not
    reached yet, by a writer of that seminar who came after it (an HTTP group): taken
    one after the other, twenty seminars' turns cost a batch the wait for twenty
    groups."""
    turns = Turns()
    order: list[str] = []
    release = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def holder(key: str) -> None:
        async with turns.hold([key]):
            await release[key].wait()

    async def writer(name: str, keys: list[str]) -> None:
        async with turns.hold(keys):
            order.append(name)

    holders = [asyncio.create_task(holder(k)) for k in ("a", "b")]
    await _until(lambda: turns.writers("a") == turns.writers("b") == 1, "both holders in")
    batch = asyncio.create_task(writer("batch", ["a", "b"]))
    await _until(lambda: turns.writers("b") == 2, "the batch queues for b while a is held")
    later = asyncio.create_task(writer("later", ["b"]))
    await _until(lambda: turns.writers("b") == 3, "the later writer queues for b")
    release["b"].set()  # b goes to whoever queued first
    release["a"].set()
    await asyncio.wait_for(asyncio.gather(*holders, batch, later), 5)
    assert order == ["batch", "later"]
