"""A unit of work: one MongoDB transaction holding a state change, the processed-event
markers that guard it, the events it emits (outbox), and what the service's
repositories hold for the length of the transaction (``TransactionCache``: the seat
books a transaction claimed, the projection documents a batch folds).

The unit of work owns those caches: they are made when a repository first asks for
them in a transaction and dropped with it, so a retried attempt starts from what the
database holds, never from a rolled-back attempt's documents. A cache with a ``flush``
is written at commit, before the outbox document, in the order the caches were first
used.

The commit writes the transaction's outgoing events as ONE outbox document (a few for
thousands; the shape ``outbox`` reads back), then hands it to the relay in memory."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Generic, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession

from . import retry
from .clock import Clock
from .events import Envelope, Event, envelope_for
from .idempotency import ProcessedEvents
from .mongo import Document, Mongo
from .outbox import OUTBOX, RECORDS_PER_DOCUMENT, Outbox, OutgoingEvent

T = TypeVar("T")

# The W3C trace context of what is being handled now (an HTTP request or a consumed
# event): events emitted while handling it carry it on.
current_traceparent: ContextVar[str | None] = ContextVar("current_traceparent", default=None)


class TransactionCache(Generic[T]):
    """What a repository keeps for the length of one transaction (an identity map), held
    by the unit of work (``UnitOfWork.cache``). ``make`` builds it empty; ``flush``, when
    given, writes what it holds changed at commit (see the module docstring)."""

    def __init__(
        self,
        make: Callable[[], T],
        *,
        flush: Callable[[T, UnitOfWork], Awaitable[None]] | None = None,
    ) -> None:
        self.make = make
        self.flush = flush


class UnitOfWork:
    def __init__(self, *, session: AsyncClientSession, source: str, clock: Clock) -> None:
        self.session = session
        self._source = source
        self._clock = clock
        self.now = clock()
        self.outgoing: list[OutgoingEvent] = []
        # The repositories' per-transaction caches, in the order first used.
        self._caches: dict[TransactionCache[Any], Any] = {}

    def cache(self, kind: TransactionCache[T]) -> T:
        """``kind``'s cache in this transaction: made on first use, gone with it."""
        if kind not in self._caches:
            self._caches[kind] = kind.make()
        held: T = self._caches[kind]
        return held

    async def flush(self) -> None:
        """Write what the caches hold changed (the factory does this at commit)."""
        for kind, held in list(self._caches.items()):
            if kind.flush is not None:
                await kind.flush(held, self)

    def emit(self, data: Event) -> Envelope:
        """Queue an event for the outbox; it is stored when the transaction commits."""
        envelope = envelope_for(
            data, source=self._source, time=self._clock(), traceparent=current_traceparent.get()
        )
        self.outgoing.append(OutgoingEvent(topic=data.topic, key=data.key, envelope=envelope))
        return envelope


class UnitOfWorkFactory:
    def __init__(
        self,
        *,
        mongo: Mongo,
        outbox: Outbox,
        processed: ProcessedEvents,
        source: str,
        clock: Clock,
        max_concurrent: int = 3,
    ) -> None:
        self._mongo = mongo
        self._slots = asyncio.Semaphore(max_concurrent)
        self._outbox = outbox
        self._processed = processed
        self._source = source
        self._clock = clock
        self._outbox_documents = mongo.db[OUTBOX]
        # Wall-clock nanoseconds plus this counter: the write order of this process's
        # outbox documents (the relay reads its own back in that order).
        self._sequence = itertools.count()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[UnitOfWork]:
        stored: list[Document] = []
        try:
            # A slot of this process's few open transactions (MongoSettings); callers
            # take their keys' turns before it, so no slot holder waits for a turn.
            async with self._slots, self._mongo.transaction() as session:
                uow = UnitOfWork(session=session, source=self._source, clock=self._clock)
                yield uow
                await uow.flush()
                documents = self._outbox_documents_of(uow.outgoing, now=uow.now)
                if len(documents) == 1:
                    await self._outbox_documents.insert_one(documents[0], session=session)
                elif documents:
                    await self._outbox_documents.insert_many(documents, session=session)
                stored = documents
        except BaseException:
            if stored:
                # The commit failed or its outcome is unknown: the relay reads back.
                self._outbox.uncertain()
            raise
        if stored:
            self._outbox.committed(stored)

    def _outbox_documents_of(
        self, events: Sequence[OutgoingEvent], *, now: datetime
    ) -> list[Document]:
        base = time.time_ns()
        return [
            {
                "_id": chunk[0].envelope.id,
                "owner": self._outbox.owner,
                "seq": base + next(self._sequence),
                "created_at": now,
                "count": len(chunk),
                "records": [
                    {
                        "id": event.envelope.id,
                        "topic": event.topic,
                        "key": event.key,
                        "value": event.envelope.to_json_bytes(),
                    }
                    for event in chunk
                ],
            }
            for start in range(0, len(events), RECORDS_PER_DOCUMENT)
            if (chunk := events[start : start + RECORDS_PER_DOCUMENT])
        ]

    async def claim(self, uow: UnitOfWork, consumer: str, event_ids: Iterable[str]) -> set[str]:
        """Inside ``uow``: mark events processed; returns the ids not seen before."""
        return await self._processed.claim(consumer, event_ids, now=uow.now, session=uow.session)

    async def run(self, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        """Run ``work`` in a transaction, again on transient database errors for a few
        seconds (``retry.HTTP``); then the last error propagates."""

        async def attempt() -> T:
            async with self.begin() as uow:
                return await work(uow)

        return await retry.run(retry.HTTP, attempt)
