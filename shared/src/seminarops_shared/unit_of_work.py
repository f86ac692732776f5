"""A unit of work: one MongoDB transaction holding a state change, the processed-event
markers that guard it, and the events it emits (outbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession

from . import retry
from .clock import Clock
from .events import Envelope, Event, envelope_for
from .idempotency import ProcessedEvents
from .mongo import Document, Mongo
from .outbox import Outbox, OutgoingEvent

T = TypeVar("T")

# The W3C trace context of what is being handled now (an HTTP request or a consumed
# event): events emitted while handling it carry it on.
current_traceparent: ContextVar[str | None] = ContextVar("current_traceparent", default=None)


class UnitOfWork:
    def __init__(self, *, session: AsyncClientSession, source: str, clock: Clock) -> None:
        self.session = session
        self._source = source
        self._clock = clock
        self.now = clock()
        self.outgoing: list[OutgoingEvent] = []

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
    ) -> None:
        self._mongo = mongo
        self._outbox = outbox
        self._processed = processed
        self._source = source
        self._clock = clock

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[UnitOfWork]:
        stored: list[Document] = []
        try:
            async with self._mongo.transaction() as session:
                uow = UnitOfWork(session=session, source=self._source, clock=self._clock)
                yield uow
                stored = await self._outbox.store(uow.outgoing, now=uow.now, session=session)
        except BaseException:
            if stored:
                # The commit failed or its outcome is unknown: the relay reads back.
                self._outbox.uncertain()
            raise
        if stored:
            self._outbox.committed(stored)

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
