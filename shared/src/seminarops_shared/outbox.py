"""The transactional outbox and its relay.

Outgoing events are inserted in the same MongoDB transaction as the state change that
caused them; the relay publishes them afterwards and deletes what Kafka acknowledged. A
crash between commit and publish loses nothing (the entry is still there) and at worst
publishes an event twice, which consumers absorb by event id.

The events of one transaction are stored as ONE outbox document (``records``, in
order; a very large transaction takes a few): one insert per transaction, one delete
per relay round, whatever the number of events.

Each document names the process that wrote it (``owner``). A process hands what it
committed to its relay in memory (no read-back): published right after commit, in
commit order. If the relay fails, or a commit's outcome is unknown, it reads its own
entries back from the database instead (in write order). Entries of another owner not
published within ``takeover_after_s`` (it crashed) are swept by any replica.

The relay deletes what Kafka acknowledged in a loop of its own (``_delete_loop``): the
next round is published without waiting for the previous round's delete, and one
delete takes every entry published meanwhile. Before it reads its own entries back, the
relay deletes what it already published, so a read-back publishes again only what may
not have reached Kafka (duplicates remain possible, absorbed by the consumers).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from .clock import Clock
from .events import Envelope
from .events.envelope import CONTENT_TYPE
from .mongo import IN_QUERY_LIMIT, Document
from .observability import ServiceMetrics
from .publishing import RecordPublisher
from .retry import OUTAGE, Backoff
from .settings import KafkaSettings

OUTBOX = "outbox"
# Outbox documents read at a time when entries are read back (sweeps, after a failure).
_READ_DOCS = 50
# Events per outbox document at most (a document must stay well under 16 MiB).
RECORDS_PER_DOCUMENT = 1000

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    topic: str  # logical topic name
    key: str
    envelope: Envelope


class Outbox:
    """This process's outbox: what committed (the unit of work writes each
    transaction's events as one document, ``unit_of_work``), handed to the relay."""

    def __init__(self, db: AsyncDatabase[Document], *, owner: str | None = None) -> None:
        self._collection = db[OUTBOX]
        self.owner = owner or uuid.uuid4().hex
        self.wakeup = asyncio.Event()
        # Committed by this process, not yet taken by the relay (commit order).
        self._committed: deque[Document] = deque()
        # The relay must read this process's entries back from the database.
        self._read_back = False

    async def ensure_indexes(self) -> None:
        await self._collection.create_indexes(
            [IndexModel([("owner", ASCENDING), ("seq", ASCENDING)]), IndexModel("created_at")]
        )

    def committed(self, docs: Sequence[Document]) -> None:
        """These documents committed: the relay publishes them without reading back."""
        self._committed.extend(docs)
        self.wakeup.set()

    def uncertain(self) -> None:
        """A commit's outcome is unknown, or publishing failed: the relay reads this
        process's entries back from the database before anything else."""
        self._read_back = True
        self.wakeup.set()

    def notify(self) -> None:
        self.wakeup.set()

    def take_committed(self, limit: int) -> list[Document]:
        taken: list[Document] = []
        records = 0
        while self._committed and records < limit:
            doc = self._committed.popleft()
            taken.append(doc)
            records += int(doc.get("count", 1))
        return taken

    def take_read_back(self) -> bool:
        """Whether to read back (and forget what is held in memory: the database has it)."""
        if not self._read_back:
            return False
        self._read_back = False
        self._committed.clear()
        return True

    async def own_pending(self, limit: int) -> list[Document]:
        cursor = self._collection.find({"owner": self.owner}).sort("seq", ASCENDING).limit(limit)
        return await cursor.to_list()

    async def abandoned(self, *, older_than: datetime, limit: int) -> list[Document]:
        """Other owners' entries older than ``older_than`` (this process's own are in
        memory or read back)."""
        cursor = (
            self._collection.find({"created_at": {"$lt": older_than}, "owner": {"$ne": self.owner}})
            .sort("created_at", ASCENDING)
            .limit(limit)
        )
        return await cursor.to_list()

    async def delete(self, ids: Sequence[str]) -> None:
        if len(ids) == 1:
            await self._collection.delete_one({"_id": ids[0]})
        else:
            await self._collection.delete_many({"_id": {"$in": list(ids)}})

    async def backlog(self) -> int:
        """Events stored and not yet published (all owners)."""
        cursor = await self._collection.aggregate(
            [{"$group": {"_id": None, "n": {"$sum": {"$ifNull": ["$count", 1]}}}}]
        )
        found = await cursor.to_list()
        return int(found[0]["n"]) if found else 0


def _records(doc: Document) -> list[Document]:
    if "records" in doc:
        return list(doc["records"])
    # An entry written before outbox documents held batches: one event.
    return [{"id": doc["_id"], "topic": doc["topic"], "key": doc["key"], "value": doc["value"]}]


def _delete_failed(error: Exception, delay: float) -> None:
    _log.warning("deleting published outbox entries failed, will retry", error=repr(error))


def _relay_failed(error: Exception, delay: float) -> None:
    _log.warning("outbox relay failed, will retry", error=repr(error), retry_in_s=delay)


class OutboxRelay:
    """Publishes the outbox: woken after each commit; sweeps for abandoned entries (and
    refreshes the backlog gauge) at most every ``poll_interval_s``."""

    # Events published per round (one publish of all, one delete).
    round_records = 5000

    def __init__(
        self,
        outbox: Outbox,
        publisher: RecordPublisher,
        *,
        kafka: KafkaSettings,
        clock: Clock,
        metrics: ServiceMetrics,
        poll_interval_s: float,
        takeover_after_s: float,
    ) -> None:
        self._outbox = outbox
        self._publisher = publisher
        self._kafka = kafka
        self._clock = clock
        self._metrics = metrics
        self._poll_interval_s = poll_interval_s
        self._takeover_after = timedelta(seconds=takeover_after_s)
        self._task: asyncio.Task[None] | None = None
        self._deleter: asyncio.Task[None] | None = None
        # Published (acknowledged by Kafka), not deleted yet; in publishing order.
        self._published: list[str] = []
        self._to_delete = asyncio.Event()
        self._deleting = asyncio.Lock()
        self.healthy = True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")
        self._deleter = asyncio.create_task(self._delete_loop(), name="outbox-deletes")

    async def stop(self, timeout_s: float) -> None:
        """One last drain, so that what was committed before shutdown is not left
        behind; for at most ``timeout_s`` (what it could not publish, the next start
        reads back). Then the background tasks stop."""
        if self._task is None:
            return
        try:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._last_drain(), timeout_s)
        finally:
            for task in (self._task, self._deleter):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _last_drain(self) -> None:
        with contextlib.suppress(Exception):
            await self.drain()
        await self.delete_published()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def drain(self) -> int:
        """Publish everything this process committed (read back from the database after
        a failure, else from memory). Raises when publishing fails; then the entries are
        read back next time."""
        published = 0
        try:
            if self._outbox.take_read_back():
                # What was published is deleted first: read back, it would go out again.
                await self.delete_published()
                while batch := await self._outbox.own_pending(_READ_DOCS):
                    published += await self._publish(batch)
                    # The next read must not find these again.
                    await self.delete_published()
            while batch := self._outbox.take_committed(self.round_records):
                published += await self._publish(batch)
        except BaseException:
            self._outbox.uncertain()
            raise
        return published

    async def sweep(self) -> int:
        """Publish what other owners left behind for longer than the takeover time."""
        published = 0
        older_than = self._clock() - self._takeover_after
        while batch := await self._outbox.abandoned(older_than=older_than, limit=_READ_DOCS):
            published += await self._publish(batch)
            await self.delete_published()
        return published

    async def _publish(self, batch: list[Document]) -> int:
        records = [record for doc in batch for record in _records(doc)]
        await self._publisher.publish_many(
            (
                self._kafka.topic(record["topic"]),
                record["key"].encode(),
                record["value"],
                {"content-type": CONTENT_TYPE},
            )
            for record in records
        )
        self._published.extend(doc["_id"] for doc in batch)
        self._to_delete.set()
        self._metrics.outbox_published.inc(len(records))
        return len(records)

    async def delete_published(self) -> None:
        """Delete the entries published so far (``IN_QUERY_LIMIT`` ids per delete).
        What a failed delete leaves is deleted next time."""
        async with self._deleting:
            ids, self._published = self._published, []
            deleted = 0
            try:
                while deleted < len(ids):
                    chunk = ids[deleted : deleted + IN_QUERY_LIMIT]
                    await self._outbox.delete(chunk)
                    deleted += len(chunk)
            except BaseException:
                self._published[:0] = ids[deleted:]
                raise

    async def _delete_loop(self) -> None:
        backoff = Backoff(OUTAGE)
        while True:
            await self._to_delete.wait()
            self._to_delete.clear()
            try:
                await self.delete_published()
            except Exception as error:
                self._to_delete.set()
                await backoff.pause(functools.partial(_delete_failed, error))
            else:
                backoff.reset()

    async def _run(self) -> None:
        # Whatever failed (the broker, the database, anything), the relay keeps going:
        # paced by ``OUTAGE``'s backoff, on top of its poll interval.
        backoff = Backoff(OUTAGE)
        next_sweep = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.wakeup.wait(), self._poll_interval_s)
            self._outbox.wakeup.clear()
            try:
                await self.drain()
                if time.monotonic() >= next_sweep:
                    await self.sweep()
                    self._metrics.outbox_backlog.set(await self._outbox.backlog())
                    next_sweep = time.monotonic() + self._poll_interval_s
            except Exception as error:
                # A failed drain has marked its entries for reading back (``drain``).
                self.healthy = False
                await backoff.pause(functools.partial(_relay_failed, error))
            else:
                self.healthy = True
                backoff.reset()
