"""``KeyedWrites``: a claim that meets another writer is tried again in the key's turn;
writers of one key take turns; what is not a claim conflict is not retried here."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from seminarops_shared.keyed import KeyedWrites, Turns

WRITE_CONFLICT = 112


def conflict() -> OperationFailure:
    return OperationFailure("write conflict", code=WRITE_CONFLICT)


def policy(claim_fails: list[BaseException]) -> tuple[KeyedWrites, list[set[str]]]:
    claimed: list[set[str]] = []

    async def claim(_uow: Any, keys: Any) -> None:
        claimed.append(set(keys))
        if claim_fails:
            raise claim_fails.pop(0)

    return KeyedWrites(keys_of=lambda _: (), claim=claim, patience_s=5.0), claimed


async def test_a_contended_claim_is_tried_again_until_it_holds() -> None:
    keyed, claimed = policy([conflict(), conflict()])

    async def work() -> str:
        await keyed.claim_first(None, {"sem-1"})  # type: ignore[arg-type]
        return "done"

    assert await keyed.run({"sem-1"}, work) == "done"
    assert claimed == [{"sem-1"}] * 3


async def test_a_claim_still_contended_after_its_patience_raises_the_database_error() -> None:
    keyed, _ = policy([conflict() for _ in range(10_000)])
    keyed = KeyedWrites(keys_of=keyed.keys_of, claim=keyed.claim, patience_s=0.05)

    async def work() -> None:
        await keyed.claim_first(None, {"sem-1"})  # type: ignore[arg-type]

    with pytest.raises(OperationFailure) as raised:
        await keyed.run({"sem-1"}, work)
    assert raised.value.code == WRITE_CONFLICT


async def test_other_failures_of_the_work_are_not_retried() -> None:
    keyed, _ = policy([])
    calls = 0

    async def work() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a rule broke")

    with pytest.raises(ValueError, match="a rule broke"):
        await keyed.run({"sem-1"}, work)
    assert calls == 1


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
