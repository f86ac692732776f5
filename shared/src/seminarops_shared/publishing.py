"""Publishing raw records through the FastStream broker (outbox relay, dead letters)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

# Records sent between two turns of the event loop (``publish_many``).
_SEND_TURN = 100

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
        per-partition order is kept because sends are issued in order.

        Straight to the broker's aiokafka producer (the same connection and settings):
        FastStream's per-message publish path (middlewares, codec) costs several times
        the send itself, and the outbox relay sends every event the service emits."""
        producer = self._aiokafka_producer()
        if producer is None:
            await asyncio.gather(
                *(
                    self._broker.publish(value, topic=topic, key=key, headers=headers)
                    for topic, key, value, headers in records
                )
            )
            return
        acknowledged = []
        for n, (topic, key, value, headers) in enumerate(records, start=1):
            if n % _SEND_TURN == 0:
                # Sending thousands is one long stretch of CPU: the consumer's lanes
                # (same event loop) get a turn to send their next database statement.
                await asyncio.sleep(0)
            acknowledged.append(
                await producer.send(
                    topic,
                    value=value,
                    key=key,
                    headers=[(name, text.encode()) for name, text in headers.items()],
                )
            )
        await asyncio.gather(*acknowledged)

    def _aiokafka_producer(self) -> AIOKafkaProducer | None:
        # FastStream 0.6 keeps it at config.producer._producer.producer; anything else
        # (another version, the test broker) goes through broker.publish.
        state: Any = getattr(getattr(self._broker.config, "producer", None), "_producer", None)
        producer = getattr(state, "producer", None)
        return producer if isinstance(producer, AIOKafkaProducer) else None
