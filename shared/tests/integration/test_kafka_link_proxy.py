"""The fault suite cuts one service's links to the broker through a proxy. A Kafka client
connects wherever the broker's answers point it (the cluster's brokers, its group's
coordinator), so the proxy rewrites those answers: every connection of a client that
bootstrapped through it, the coordinator's included, must go through it, or a cut would
leave part of the client connected."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from seminarops_devtools.testing.network import TcpProxy
from seminarops_devtools.testing.stack import KafkaProbe, Namespace
from seminarops_shared.topics_admin import create_topics

pytestmark = pytest.mark.integration

# How long a commit may look for the coordinator while the link is cut: a coordinator
# reached around the proxy would answer in milliseconds.
COMMIT_WAIT_S = 5.0


@pytest.fixture
def broker_link(namespace: Namespace) -> Iterator[TcpProxy]:
    host, port = namespace.kafka_bootstrap_servers.rsplit(":", 1)
    link = TcpProxy(host, int(port), kafka=True).start()
    try:
        yield link
    finally:
        link.close()


async def test_a_cut_link_stops_every_connection_of_the_client_and_healing_restores_them(
    namespace: Namespace, kafka: KafkaProbe, broker_link: TcpProxy
) -> None:
    topic = namespace.topic("link")
    await create_topics(
        namespace.kafka_bootstrap_servers, [topic], partitions=1, replication_factor=1, options={}
    )
    through_link = f"127.0.0.1:{broker_link.port}"
    producer = AIOKafkaProducer(bootstrap_servers=through_link, request_timeout_ms=3000)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=through_link,
        group_id=f"{namespace.prefix}.link",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(topic, b"before")
        first = await consumer.getone()
        await consumer.commit()  # through the group's coordinator
        assert first.value == b"before"
        # Metadata on both clients' bootstrap and node connections, and the coordinator.
        assert broker_link.answers_rewritten >= 3
        assert broker_link.unknown_kafka_versions == set()

        broker_link.cut()
        # Nothing the client does reaches the broker: not the partition's leader...
        with pytest.raises(KafkaError):
            await producer.send_and_wait(topic, b"during")
        # ...and not the coordinator (a commit keeps looking for it until it gives up).
        partition = next(iter(consumer.assignment()))
        with pytest.raises((KafkaError, TimeoutError)):
            await asyncio.wait_for(consumer.commit({partition: first.offset + 1}), COMMIT_WAIT_S)
        assert broker_link.connections_refused > 0

        broker_link.heal()
        await producer.send_and_wait(topic, b"after")
        after = await consumer.getone()
        await consumer.commit()
    finally:
        await asyncio.gather(consumer.stop(), producer.stop(), return_exceptions=True)
    assert after.value == b"after"
