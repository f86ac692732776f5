"""The broker's durable log as ``make up`` runs it: Tansu on SeaweedFS. Four producers
at once (each batch's offset is a conditional write: a store that ignored
``If-None-Match`` / ``If-Match`` lost a quarter of such records), then a SIGKILL of the
broker and the store together: every acknowledged record and the committed offset are
there after both restart on the same data."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from seminarops_devtools.processes import (
    S3_STORAGE,
    EmbeddedServer,
    ObjectStore,
    ObjectStorePorts,
    ensure_topics,
    free_port,
    start_kafka,
    start_object_store,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PRODUCERS = 4
RECORDS_EACH = 5_500  # 22,000 in all, as in the measurement that chose SeaweedFS
PARTITIONS = 3


def start_log(
    workdir: Path, ports: ObjectStorePorts, kafka_port: int
) -> tuple[EmbeddedServer, EmbeddedServer, ObjectStore]:
    s3, store = start_object_store(
        data_dir=workdir / "kafka-log", ports=ports, log_path=workdir / "s3.log", detached=False
    )
    broker = start_kafka(
        port=kafka_port,
        log_path=workdir / "kafka.log",
        detached=False,
        storage_engine=S3_STORAGE,
        env={**os.environ, **store.broker_env()},
    )
    return s3, broker, store


async def produce(bootstrap: str, topic: str, producer_index: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(
                topic, f"{producer_index}-{n}".encode(), key=f"seminar-{n % 50}".encode()
            )
            for n in range(RECORDS_EACH)
        ]
        await asyncio.gather(*sent)  # every one acknowledged
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, expected: int) -> set[bytes]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=500
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen: set[bytes] = set()
        async with asyncio.timeout(120):
            while len(seen) < expected:
                batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
                seen.update(r.value for records in batches.values() for r in records if r.value)
        return seen
    finally:
        await consumer.stop()


async def commit(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> int | None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        if offset >= 0:
            consumer.assign([tp])
            await consumer.commit({tp: offset})
        committed: int | None = await consumer.committed(tp)
        return committed
    finally:
        await consumer.stop()


async def test_concurrent_producers_then_sigkill_of_broker_and_store_lose_nothing(
    tmp_path: Path,
) -> None:
    ports = ObjectStorePorts.free()
    kafka_port = free_port()
    s3, broker, _ = start_log(tmp_path, ports, kafka_port)
    topic = f"durable-{uuid.uuid4().hex[:8]}"
    group = f"durable-group-{uuid.uuid4().hex[:8]}"
    tp = TopicPartition(topic, 1)
    try:
        ensure_topics(broker.address, [topic], partitions=PARTITIONS)
        await asyncio.gather(*(produce(broker.address, topic, i) for i in range(PRODUCERS)))
        assert await commit(broker.address, group, tp, 1234) == 1234

        broker.process.send_signal(signal.SIGKILL)
        s3.process.send_signal(signal.SIGKILL)
        broker.process.wait(30)
        s3.process.wait(30)
        s3, broker, _ = start_log(tmp_path, ports, kafka_port)

        seen = await read_all(broker.address, topic, PRODUCERS * RECORDS_EACH)
        committed = await commit(broker.address, group, tp, -1)
    finally:
        broker.stop()
        s3.stop(timeout_s=5)

    expected = {f"{i}-{n}".encode() for i in range(PRODUCERS) for n in range(RECORDS_EACH)}
    assert seen == expected
    assert committed == 1234
