"""Applying a consumer group's polls behind its fetching, in lanes, and committing their
offsets after the transactions that applied them, off the lanes' path.

The fetching side (FastStream's loop of polls, ``kafka.EventConsumer.handle``) decodes a
poll and hands it over as ``Piece``\\ s, one per lane, then goes on to fetch and decode
the next poll while the lanes apply what they hold. So the database is not left idle
while a poll is fetched, decoded and dead-lettered, nor while offsets travel to the
broker.

- **Lanes.** A lane applies its pieces in order, one transaction at a time; pieces that
  queued up while one was applied are merged into the next transaction (up to
  ``max_records`` records, in order). Different lanes proceed concurrently: the consumer
  names the lane of each record (one per partition where the subscription's writes
  are keyed, whose in-process turns keep one key's writers apart; else one lane).
- **Order.** A partition's records always go to the same lane, so they are applied in
  partition order, and offsets are committed only for what a lane applied, in order.
- **Backpressure.** A lane holds at most ``max_records`` queued records (and always
  one piece); the fetching side waits for room, so what is held in memory is bounded
  and the broker keeps what is not fetched yet.
- **Offsets** (``OffsetCommits``): a piece's next offsets are noted only after its
  transaction committed; a background task commits the newest noted offset per
  partition (one request for many transactions), and ``flush`` commits at once.
  A crash between a transaction and the commit of its offsets redelivers its
  records, which the consumers' markers (or idempotent handlers) absorb.
- **Rebalance** (``revoke``): queued pieces are dropped and pieces still fetched before
  the revocation are refused when they arrive (``epoch``): after the reassignment the
  consumer fetches again from the committed offsets, so nothing is skipped. A piece in
  flight finishes its transaction but does not commit its offsets (the partition may
  be another member's now): redelivered, absorbed.
- **Shutdown** (``close``): new pieces are refused (not applied, not committed: the
  next start reads them again), those queued and in flight are applied, and their
  offsets committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import structlog
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from . import retry

_log = structlog.get_logger(__name__)

T = TypeVar("T")


class Committing(Protocol):
    """What ``OffsetCommits`` needs of a consumer (aiokafka's ``AIOKafkaConsumer``)."""

    def assignment(self) -> set[TopicPartition]: ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None: ...


@dataclass(slots=True)
class Piece(Generic[T]):
    """The records of one poll that go to one lane, and what the consumer made of them
    (``items``: what to apply, in partition order). ``ends``: the next offset of each
    partition, committed once the piece is applied. ``epoch``: the assignment it was
    fetched under (``Lanes.epoch``); ``fetched_at``: when (``time.perf_counter``)."""

    items: list[T]
    records: list[ConsumerRecord[Any, Any]]
    epoch: int
    fetched_at: float = field(default_factory=time.perf_counter)
    ends: dict[TopicPartition, int] = field(init=False)

    def __post_init__(self) -> None:
        self.ends = {}
        for record in self.records:
            tp = TopicPartition(record.topic, record.partition)
            self.ends[tp] = max(self.ends.get(tp, 0), record.offset + 1)

    def merge(self, later: Piece[T]) -> None:
        """Take ``later`` (the same lane's next piece) into this one, in order."""
        self.items.extend(later.items)
        self.records.extend(later.records)
        self.fetched_at = min(self.fetched_at, later.fetched_at)
        for tp, end in later.ends.items():
            self.ends[tp] = max(self.ends.get(tp, 0), end)


class OffsetCommits:
    """The offsets of applied pieces, committed in the background (see the module
    docstring). Only partitions still assigned are committed; a commit the group
    refuses (it rebalanced) is dropped: those records are redelivered."""

    def __init__(self, consumer: Committing) -> None:
        self.consumer = consumer
        self._pending: dict[TopicPartition, int] = {}
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def note(self, ends: Mapping[TopicPartition, int]) -> None:
        """These partitions' records before these offsets are applied."""
        for tp, end in ends.items():
            self._pending[tp] = max(self._pending.get(tp, 0), end)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="offset-commits")
        self._wakeup.set()

    def forget(self) -> None:
        """Drop what is noted and not committed yet (the partitions were revoked and
        their commit failed; the records are redelivered)."""
        self._pending.clear()

    async def flush(self) -> None:
        """Commit what is noted now (raises what the broker answered, but a refusal
        because the group rebalanced)."""
        async with self._lock:
            offsets, self._pending = self._pending, {}
            assigned = self.consumer.assignment()
            mine = {tp: end for tp, end in offsets.items() if tp in assigned}
            if not mine:
                return
            try:
                await self.consumer.commit(mine)
            except (CommitFailedError, IllegalStateError) as error:
                _log.info("offsets not committed: the group rebalanced", error=repr(error))
            except BaseException:
                # Committed later with whatever is noted meanwhile.
                for tp, end in mine.items():
                    self._pending[tp] = max(self._pending.get(tp, 0), end)
                raise

    async def stop(self, timeout_s: float) -> None:
        """Commit what is noted (for at most ``timeout_s``: a coordinator that does not
        answer leaves those records to be redelivered and absorbed), then stop the
        background task."""
        try:
            with contextlib.suppress(KafkaError, TimeoutError):
                await asyncio.wait_for(self.flush(), timeout_s)
        finally:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    async def _run(self) -> None:
        backoff = retry.Backoff(retry.OUTAGE)
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self.flush()
            except KafkaError as error:
                self._wakeup.set()
                await backoff.pause(functools.partial(_commit_failed, error))
            else:
                backoff.reset()


@dataclass(eq=False)
class _Lane(Generic[T]):
    queue: deque[Piece[T]] = field(default_factory=deque)
    queued_records: int = 0
    worker: asyncio.Task[None] | None = None


class Lanes(Generic[T]):
    """The lanes of one consumer (see the module docstring). ``apply`` applies a piece
    and returns only once it is applied, skipped or dead-lettered (anything it raises
    is retried, paced like an outage: the lane, and with it its partitions, waits);
    ``applied`` hears each applied piece of the current assignment (its offsets are
    then noted for commit)."""

    def __init__(
        self,
        *,
        apply: Callable[[Piece[T]], Awaitable[None]],
        applied: Callable[[Piece[T]], None],
        max_records: int,
    ) -> None:
        self._apply = apply
        self._applied = applied
        self._max_records = max_records
        self._lanes: dict[Hashable, _Lane[T]] = {}
        # Set (and replaced) whenever a lane's room or state changes.
        self._changed = asyncio.Event()
        self._closing = False
        # Counts revocations: a piece fetched before one is not applied after it.
        self.epoch = 0
        # Submitters waiting for room (backpressure), for the metrics and tests.
        self.waiting = 0

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def held_records(self) -> int:
        """Records queued in the lanes, not yet being applied."""
        return sum(lane.queued_records for lane in self._lanes.values())

    async def submit(self, pieces: Iterable[tuple[Hashable, Piece[T]]]) -> None:
        """Queue each piece on its lane, in order, waiting for room (backpressure).
        A piece of an earlier epoch, or any piece once closing, is dropped."""
        for key, piece in pieces:
            lane = self._lanes.setdefault(key, _Lane())
            while not (
                self._closing
                or piece.epoch != self.epoch
                or not lane.queue
                or lane.queued_records + len(piece.records) <= self._max_records
            ):
                self.waiting += 1
                try:
                    await self._changed.wait()
                finally:
                    self.waiting -= 1
            if self._closing or piece.epoch != self.epoch:
                return
            lane.queue.append(piece)
            lane.queued_records += len(piece.records)
            if lane.worker is None:
                lane.worker = asyncio.create_task(self._work(lane), name=f"lane:{key}")

    def revoke(self) -> None:
        """The assignment is being revoked (see the module docstring)."""
        self.epoch += 1
        for lane in self._lanes.values():
            lane.queue.clear()
            lane.queued_records = 0
        self._notify()

    async def close(self, timeout_s: float) -> None:
        """Refuse new pieces; apply those queued and in flight (for at most
        ``timeout_s``: then they are cancelled, not committed, and redelivered)."""
        self._closing = True
        self._notify()
        workers = [lane.worker for lane in self._lanes.values() if lane.worker is not None]
        if not workers:
            return
        _done, pending = await asyncio.wait(workers, timeout=timeout_s)
        for worker in pending:
            worker.cancel()
        for worker in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if pending:
            _log.warning("shutdown: batches still being applied were abandoned", lanes=len(pending))

    def busy(self) -> bool:
        """Whether any lane holds or applies a piece."""
        return any(lane.worker is not None for lane in self._lanes.values())

    async def _work(self, lane: _Lane[T]) -> None:
        try:
            while lane.queue:
                piece = self._take(lane)
                self._notify()
                await retry.run(STALLED, functools.partial(self._apply, piece), on_retry=_stalled)
                if piece.epoch == self.epoch:
                    self._applied(piece)
        finally:
            lane.worker = None
            self._notify()

    def _take(self, lane: _Lane[T]) -> Piece[T]:
        """The first queued piece with those after it that fit in one transaction."""
        piece = lane.queue.popleft()
        lane.queued_records -= len(piece.records)
        while (
            lane.queue
            and lane.queue[0].epoch == piece.epoch
            and len(piece.records) + len(lane.queue[0].records) <= self._max_records
        ):
            later = lane.queue.popleft()
            lane.queued_records -= len(later.records)
            piece.merge(later)
        return piece

    def _notify(self) -> None:
        # Wakes every waiter (each checks its own condition again, on the new event).
        self._changed.set()
        self._changed = asyncio.Event()


def _commit_failed(error: BaseException, delay: float) -> None:
    _log.warning("offset commit failed, retrying", error=repr(error), retry_in_s=delay)


def _stalled(error: BaseException, delay: float) -> None:
    _log.error("applying a batch failed, retrying it", error=repr(error), retry_in_s=delay)


# A piece whose application raised (the pipeline dead-letters what it cannot apply, so
# this is a fault of the pipeline or of the broker it dead-letters to): the lane tries
# it again, paced like an outage, for as long as it lasts; its partitions wait, as a
# rewound (nacked) batch would.
STALLED = retry.RetryPolicy(
    name="stalled",
    retries=lambda error: isinstance(error, Exception),
    initial_delay_s=retry.OUTAGE.initial_delay_s,
    max_delay_s=retry.OUTAGE.max_delay_s,
)


__all__ = ["STALLED", "Committing", "Lanes", "OffsetCommits", "Piece"]
