"""The transactional outbox and its relay.

Outgoing events are inserted in the same MongoDB transaction as the state change that
caused them; the relay publishes them afterwards and deletes what Kafka acknowledged. A
crash between commit and publish loses nothing (the entry is still there) and at worst
publishes an event twice, which consumers absorb by event id.

Each entry names the process that wrote it (``owner``). A process publishes its own
entries right after commit (low latency, commit order); entries whose owner has not
published them within ``takeover_after_s`` (it crashed) are swept by any replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from .clock import Clock
from .events import Envelope
from .events.envelope import CONTENT_TYPE
from .mongo import Document
from .observability import ServiceMetrics
from .publishing import RecordPublisher
from .settings import KafkaSettings

OUTBOX = "outbox"
_BATCH = 500

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    topic: str  # logical topic name
    key: str
    envelope: Envelope


class Outbox:
    """Stores outgoing events inside a transaction and wakes the relay after commit."""

    def __init__(self, db: AsyncDatabase[Document], *, owner: str | None = None) -> None:
        self._collection = db[OUTBOX]
        self.owner = owner or uuid.uuid4().hex
        self._sequence = itertools.count()
        self.wakeup = asyncio.Event()

    async def ensure_indexes(self) -> None:
        await self._collection.create_indexes(
            [IndexModel([("owner", ASCENDING), ("seq", ASCENDING)]), IndexModel("created_at")]
        )

    async def store(
        self, events: Sequence[OutgoingEvent], *, now: datetime, session: AsyncClientSession
    ) -> None:
        if not events:
            return
        base = time.time_ns()
        await self._collection.insert_many(
            [
                {
                    "_id": event.envelope.id,
                    "topic": event.topic,
                    "key": event.key,
                    "value": event.envelope.to_json_bytes(),
                    "owner": self.owner,
                    # Wall-clock nanoseconds plus a counter: commit order within a process.
                    "seq": base + next(self._sequence),
                    "created_at": now,
                }
                for event in events
            ],
            session=session,
        )

    def notify(self) -> None:
        self.wakeup.set()

    async def own_pending(self, limit: int) -> list[Document]:
        cursor = self._collection.find({"owner": self.owner}).sort("seq", ASCENDING).limit(limit)
        return await cursor.to_list()

    async def abandoned(self, *, older_than: datetime, limit: int) -> list[Document]:
        cursor = (
            self._collection.find({"created_at": {"$lt": older_than}})
            .sort("created_at", ASCENDING)
            .limit(limit)
        )
        return await cursor.to_list()

    async def delete(self, ids: Sequence[str]) -> None:
        await self._collection.delete_many({"_id": {"$in": list(ids)}})

    async def backlog(self) -> int:
        return await self._collection.count_documents({})


class OutboxRelay:
    """Publishes the outbox: woken after each commit, and polling for abandoned entries."""

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
        self.healthy = True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is None:
            return
        # One last drain, so what was committed before shutdown is not left behind.
        with contextlib.suppress(Exception):
            await self.drain()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def drain(self) -> int:
        """Publish everything this process wrote, then what others abandoned."""
        published = 0
        while batch := await self._outbox.own_pending(_BATCH):
            published += await self._publish(batch)
        older_than = self._clock() - self._takeover_after
        while batch := await self._outbox.abandoned(older_than=older_than, limit=_BATCH):
            published += await self._publish(batch)
        return published

    async def _publish(self, batch: list[Document]) -> int:
        await self._publisher.publish_many(
            (
                self._kafka.topic(doc["topic"]),
                doc["key"].encode(),
                doc["value"],
                {"content-type": CONTENT_TYPE},
            )
            for doc in batch
        )
        await self._outbox.delete([doc["_id"] for doc in batch])
        self._metrics.outbox_published.inc(len(batch))
        return len(batch)

    async def _run(self) -> None:
        delay = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.wakeup.wait(), self._poll_interval_s + delay)
            self._outbox.wakeup.clear()
            try:
                await self.drain()
                self._metrics.outbox_backlog.set(await self._outbox.backlog())
            except Exception as error:
                self.healthy = False
                delay = min(5.0, delay * 2 or 0.1)
                _log.warning("outbox relay failed, will retry", error=repr(error), retry_in_s=delay)
            else:
                self.healthy = True
                delay = 0.0
