"""The chain of awaits a task dump shows: ``Task.get_stack`` stops at the task's own
coroutine; the dump goes down through every awaited coroutine and ``async with`` to the
future at the bottom."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from seminarops_shared.task_dump import awaiting_chain


@asynccontextmanager
async def entering(gate: asyncio.Event) -> AsyncIterator[None]:
    await gate.wait()
    yield


async def inner(gate: asyncio.Event) -> None:
    async with entering(gate):
        pass


async def outer(gate: asyncio.Event) -> None:
    await inner(gate)


async def test_the_chain_goes_through_coroutines_and_async_with_to_the_future() -> None:
    gate = asyncio.Event()
    task = asyncio.create_task(outer(gate))
    for _ in range(3):
        await asyncio.sleep(0)

    chain = awaiting_chain(task)
    gate.set()
    await task

    functions = [step.split(" ")[-1] for step in chain[:-1]]
    assert functions == ["outer", "inner", "__aenter__", "entering", "wait"]
    assert chain[-1].startswith("awaits <")
    assert awaiting_chain(task) == []
