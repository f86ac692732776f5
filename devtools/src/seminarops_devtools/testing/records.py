"""Kafka records as a consumer's poll returns them, for unit tests of code that reads
polls without a broker (lanes, offset checks)."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord


def consumer_record(topic: str, partition: int, offset: int) -> ConsumerRecord[Any, Any]:
    """An empty record at ``offset`` of ``topic``'s ``partition``."""
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=(),
    )
