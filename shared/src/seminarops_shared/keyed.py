"""Writers that contend on one document per key (a seminar's seat book): a policy a
service declares once, which the consumer pipeline and the HTTP grouping both follow.

``KeyedWrites(keys_of=..., claim=...)`` says:

- which keys a batch of events writes (``keys_of``);
- how a transaction takes those keys' documents as its FIRST statement (``claim``): of
  two colliding writers the later then fails at once, cheaply, instead of after all its
  work (under snapshot isolation a long consumer batch would otherwise keep losing to a
  stream of short HTTP transactions); the consumer pipeline retries such a conflict
  (``ClaimConflict``) quickly (``retry.CONTENDED`` within ``patience_s``, the innermost
  level of its one ``retry.run``), not with its slower write-conflict backoff;
- that writers of the same key in this process take turns (``Turns``), so the consumer
  and the HTTP groups of one replica never collide at all.

Correctness never depends on any of it: the conditional updates and the transactions
keep the invariants; the policy only saves work.

``GroupCommitter`` decides items submitted concurrently under one key together, one
transaction per group, in the key's turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Hashable,
    Iterable,
    Sequence,
)
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog
from pymongo.errors import PyMongoError

from . import retry
from .events import ReceivedEvent
from .mongo import ConcurrentChange, is_transient_database_error
from .unit_of_work import UnitOfWork, UnitOfWorkFactory

_log = structlog.get_logger(__name__)

K = TypeVar("K", bound=Hashable)
I = TypeVar("I")  # noqa: E741 - the item type
R = TypeVar("R")

KeysOf = Callable[[Sequence[ReceivedEvent]], Iterable[str]]
Claim = Callable[[UnitOfWork, Collection[str]], Awaitable[object]]


class Turns:
    """Writers of the same key in this process take turns: an ``asyncio.Lock`` per key
    (FIFO), kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        # Writers of several keys queue for their turns one writer at a time.
        self._gathering = asyncio.Lock()

    @asynccontextmanager
    async def hold(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold the turn of every key. A writer of several keys queues for all of them
        at once: taken one after the other, a consumer batch of twenty seminars waited
        behind each seminar's HTTP group in turn (the soak: 4-10 s a batch), holding the
        seminars it had meanwhile, while later groups of the seminars it had not reached
        yet went ahead of it. No deadlock: writers of several keys queue one at a time
        (``_gathering``), and a writer of one key never waits while holding a turn."""
        wanted = sorted(set(keys))
        async with AsyncExitStack() as stack:
            if len(wanted) == 1:
                await stack.enter_async_context(self._turn(wanted[0]))
            elif wanted:
                async with self._gathering:
                    await asyncio.gather(
                        *(stack.enter_async_context(self._turn(key)) for key in wanted)
                    )
            yield

    def writers(self, key: str) -> int:
        """How many writers hold or wait for ``key``'s turn now."""
        return self._locks.get(key, (None, 0))[1]

    @asynccontextmanager
    async def _turn(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class ClaimConflict(ConcurrentChange):
    """The claim met another writer of the same key (``error``, a write conflict). A
    write conflict itself (it carries the code), so once the claim's patience is spent
    the pipeline's write-conflict policy takes it over."""

    def __init__(self, error: PyMongoError) -> None:
        super().__init__(f"claim met another writer: {error!r}")
        self.error = error


@dataclass(frozen=True)
class KeyedWrites:
    """The declared policy (see the module docstring)."""

    keys_of: KeysOf
    claim: Claim
    turns: Turns = field(default_factory=Turns)
    patience_s: float = 30.0


class GroupCommitter(Generic[K, I, R]):
    """Items submitted concurrently under one key are processed together: one worker
    per key takes everything queued (up to ``max_batch``) and runs ``process`` on it in
    one transaction (in the key's turn when ``turns`` is given), retrying transient
    errors and write conflicts with short jittered pauses for up to ``patience_s``
    (``retry.CONTENDED``). ``process`` returns one result per item, in order.

    A group that fails for another reason is retried item by item, so one bad item
    fails only its own caller.
    """

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        process: Callable[[UnitOfWork, list[I]], Awaitable[list[R]]],
        max_batch: int,
        patience_s: float,
        turns: Turns | None = None,
    ) -> None:
        self._uow = uow
        self._turns = turns or Turns()
        self._process = process
        self._max_batch = max_batch
        self._retry = retry.CONTENDED.within(patience_s)
        self._queues: dict[K, list[tuple[I, asyncio.Future[R]]]] = {}
        self._workers: dict[K, asyncio.Task[None]] = {}

    async def submit(self, key: K, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, []).append((item, future))
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._drain(key), name=f"group-commit:{key}")
        # A caller that goes away does not stop its item: it is decided all the same.
        return await asyncio.shield(future)

    async def _drain(self, key: K) -> None:
        try:
            while True:
                queue = self._queues.get(key)
                if not queue:
                    self._queues.pop(key, None)
                    return
                group = queue[: self._max_batch]
                del queue[: self._max_batch]
                await self._run_group(key, group)
        finally:
            self._workers.pop(key, None)

    async def _run_group(self, key: K, group: list[tuple[I, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run(key, [item for item, _ in group])
        except Exception as error:
            if len(group) > 1 and not is_transient_database_error(error):
                _log.info("group failed, deciding its requests one by one", error=repr(error))
                for one in group:
                    await self._run_group(key, [one])
                return
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _run(self, key: K, items: list[I]) -> list[R]:
        async def attempt() -> list[R]:
            # The turn is held per attempt, never while backing off.
            async with self._turns.hold([str(key)]), self._uow.begin() as uow:
                return await self._process(uow, items)

        return await retry.run(self._retry, attempt)
