"""Processed-event markers: the same event id takes effect once per consumer.

The marker is written in the same transaction as the state change it guards, so either
both exist or neither does; a redelivered event finds its marker and is skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid

from .mongo import Document

PROCESSED_EVENTS = "processed_events"


def marker_id(consumer: str, event_id: str) -> str:
    return f"{consumer}:{event_id}"


class ProcessedEvents:
    """The markers, keyed by ``consumer:event id``. `_id` is the only lookup key, so
    there is no other index: nothing queries `processed_at` (nothing prunes markers
    yet), and on the embedded database every secondary index costs about as much per
    insert as the document itself, on every event of every consumer. A pruning job
    should bring its own (TTL) index."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db
        self._collection = db[PROCESSED_EVENTS]

    async def ensure_collection(self) -> None:
        """Create the collection at start-up: two lanes whose first transactions would
        both create it (their first markers) conflict, and one of them starts again."""
        if PROCESSED_EVENTS not in await self._db.list_collection_names():
            with contextlib.suppress(CollectionInvalid):  # another replica was first
                await self._db.create_collection(PROCESSED_EVENTS)

    async def claim(
        self,
        consumer: str,
        event_ids: Iterable[str],
        *,
        now: datetime,
        session: AsyncClientSession,
    ) -> set[str]:
        """Mark these events processed by ``consumer``; returns those not seen before.

        One query and one insert per batch. A concurrent claim of the same id (only
        during a rebalance) makes the transaction fail and retry, and then it is seen.
        """
        wanted = {marker_id(consumer, event_id): event_id for event_id in event_ids}
        if not wanted:
            return set()
        seen = {
            doc["_id"]
            async for doc in self._collection.find(
                {"_id": {"$in": list(wanted)}}, {"_id": 1}, session=session
            )
        }
        fresh = [key for key in wanted if key not in seen]
        if fresh:
            await self._collection.insert_many(
                [{"_id": key, "processed_at": now} for key in fresh], session=session
            )
        return {wanted[key] for key in fresh}
