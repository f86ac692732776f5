"""Reading a topic "to its end" works on the embedded broker too, whose ListOffsets
counts record batches rather than records."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from seminarops_devtools.testing.stack import KafkaProbe, Namespace
from seminarops_shared.kafka_clients import end_offsets

pytestmark = pytest.mark.integration


async def test_end_offsets_count_records_written_in_multi_record_batches(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    topic = namespace.topic("batched")
    admin = AIOKafkaAdminClient(bootstrap_servers=namespace.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=namespace.kafka_bootstrap_servers, linger_ms=20)
    await producer.start()
    try:
        # Sent without waiting in between: the producer packs them into few batches.
        sent = [
            await producer.send(topic, value=str(i).encode(), partition=i % 2) for i in range(40)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=namespace.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        consumer.assign(partitions)
        assert await end_offsets(consumer, partitions) == {partitions[0]: 20, partitions[1]: 20}
    finally:
        await consumer.stop()
    records = await kafka.read_all("batched")
    assert sorted(int(r.value) for r in records) == list(range(40))
