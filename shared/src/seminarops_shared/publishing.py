"""Publishing raw records through the FastStream broker (outbox relay, dead letters)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from faststream.kafka import KafkaBroker

# (physical topic, key, value, headers)
Record = tuple[str, bytes | None, bytes, dict[str, str]]


class RecordPublisher:
    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def publish(
        self, topic: str, *, key: bytes | None, value: bytes, headers: dict[str, str]
    ) -> None:
        await self._broker.publish(value, topic=topic, key=key, headers=headers)

    async def publish_many(self, records: Iterable[Record]) -> None:
        """Send all, then wait for every acknowledgement: the producer batches them, and
        per-partition order is kept because sends are issued in order."""
        await asyncio.gather(
            *(
                self._broker.publish(value, topic=topic, key=key, headers=headers)
                for topic, key, value, headers in records
            )
        )
