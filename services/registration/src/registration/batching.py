"""Batching for a registration rush: whole Kafka batches and grouped HTTP requests
decided by one use-case call in one transaction, instead of one transaction per
request.

Three pieces, all candidates for the shared library:

- ``BatchEventConsumer``: the shared ``EventConsumer`` with a batch handler (the
  fresh events of a batch in one call, in order, inside the batch's transaction; the
  capability itself is the shared pipeline's, ``Runtime.consume(batch_handler=...)``),
  plus the seat-book claim as the transaction's first statement (retried quickly on a
  conflict) and in-process turns per seminar.
- ``GroupCommitter``: concurrent HTTP requests for the same key (a seminar) are queued
  and decided together by one worker per key, one transaction per group; this also
  keeps requests of one replica from conflicting with each other on the seat book.
- ``Turns`` and the batch ``claim``: writers of the same seminar take turns in a
  process, and across processes every transaction writes the seat books it will change
  FIRST, so that of two colliding writers the later fails at its first statement
  (cheap, retried at once) instead of after all its work. Without that, under
  snapshot isolation a long consumer batch keeps losing to a stream of short HTTP
  transactions. Correctness never depends on either: the conditional updates and the
  transactions keep the invariants; they only save work.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Hashable,
    Iterable,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, nullcontext
from typing import Any, Generic, TypeVar

import structlog
from pymongo.errors import PyMongoError

from seminarops_shared import retry
from seminarops_shared.events import Event, ReceivedEvent
from seminarops_shared.kafka import BatchHandler, EventConsumer, _Item
from seminarops_shared.mongo import is_transient_database_error
from seminarops_shared.service import Runtime
from seminarops_shared.unit_of_work import UnitOfWork, UnitOfWorkFactory

_log = structlog.get_logger(__name__)

K = TypeVar("K", bound=Hashable)
I = TypeVar("I")  # noqa: E741 - the item type
R = TypeVar("R")


class Turns:
    """Writers of the same key (a seminar id) in this process take turns (an
    ``asyncio.Lock`` per key, FIFO), so the consumer and the HTTP groups of one replica
    never collide. Across replicas, writers collide on the seat book itself, which
    every transaction writes first (see ``SeminarRepository.claim``): the loser fails
    at its first statement, cheaply, and tries again."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold the turn of every key (taken in sorted order: no deadlock)."""
        async with AsyncExitStack() as stack:
            for key in sorted(set(keys)):
                await stack.enter_async_context(self._turn(key))
            yield

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


Claim = Callable[[UnitOfWork, Sequence[ReceivedEvent]], Awaitable[None]]


class _ClaimConflict(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(repr(error))
        self.error = error


class BatchEventConsumer(EventConsumer):
    """The shared ``EventConsumer`` (give it a ``batch_handler``) whose batches take
    their seminars' turns and claim their seat books first.

    ``claim(uow, events)`` runs as the transaction's FIRST statement (the shared
    pipeline's ``prepare``, before the processed-event markers): it writes what the
    batch will change (the seat books), so the batch either owns them from the start or
    fails at once; a claim that meets another writer is retried here quickly
    (``retry.CONTENDED`` within ``claim_patience_s``) rather than by the pipeline's
    slower ``WRITE_CONFLICT`` backoff.
    ``turns_of(events)`` names the keys whose in-process turns the batch takes
    (``Turns``).
    """

    def __init__(
        self,
        *,
        claim: Claim | None = None,
        turns: Turns | None = None,
        turns_of: Callable[[Sequence[ReceivedEvent]], Iterable[str]] | None = None,
        claim_patience_s: float = 30.0,
        **options: Any,
    ) -> None:
        if claim is not None:
            if options.get("prepare") is not None:
                raise ValueError("give claim or prepare, not both")
            options["prepare"] = _claiming(claim)
        super().__init__(**options)
        self._turns = turns
        self._turns_of = turns_of
        # Only the claim's conflicts, quickly: the rest is the pipeline's to retry.
        self._claim_retry = retry.CONTENDED.within(claim_patience_s).retrying(
            lambda error: isinstance(error, _ClaimConflict)
        )

    async def _apply(self, items: list[_Item]) -> list[tuple[_Item, str]]:
        apply = super()._apply

        async def attempt() -> list[tuple[_Item, str]]:
            # The turn is held per attempt, never while backing off.
            async with self._turn(items):
                return await apply(items)

        try:
            return await retry.run(self._claim_retry, attempt)
        except _ClaimConflict as conflict:
            raise conflict.error from None

    def _turn(self, items: list[_Item]) -> AbstractAsyncContextManager[None]:
        if self._turns is None or self._turns_of is None:
            return nullcontext()
        return self._turns.hold(self._turns_of([i.event for i in items]))


def _claiming(claim: Claim) -> Claim:
    async def prepare(uow: UnitOfWork, events: Sequence[ReceivedEvent]) -> None:
        try:
            await claim(uow, events)
        except PyMongoError as error:
            if retry.is_write_conflict(error):
                raise _ClaimConflict(error) from error
            raise

    return prepare


def consume_batches(
    runtime: Runtime,
    *,
    topics: Sequence[str],
    handled: Collection[type[Event]],
    handler: BatchHandler,
    idempotent: Collection[type[Event]] = (),
    claim: Claim | None = None,
    turns: Turns | None = None,
    turns_of: Callable[[Sequence[ReceivedEvent]], Iterable[str]] | None = None,
) -> EventConsumer:
    """``Runtime.consume`` with a batch handler, the seat-book claim and turns."""
    return runtime.consume(
        topics=topics,
        batch_handler=handler,
        handled=handled,
        idempotent=idempotent,
        factory=functools.partial(BatchEventConsumer, claim=claim, turns=turns, turns_of=turns_of),
    )


class GroupCommitter(Generic[K, I, R]):
    """Items submitted concurrently under one key are processed together: one worker
    per key takes everything queued (up to ``max_batch``) and runs ``process`` on it in
    one transaction, retrying transient errors and write conflicts with short jittered
    pauses for up to ``patience_s`` (``retry.CONTENDED``). ``process`` returns one
    result per item, in order.

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
        self._turns = turns
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
            async with self._turn(key), self._uow.begin() as uow:
                return await self._process(uow, items)

        return await retry.run(self._retry, attempt)

    def _turn(self, key: K) -> AbstractAsyncContextManager[None]:
        return self._turns.hold([str(key)]) if self._turns else nullcontext()
