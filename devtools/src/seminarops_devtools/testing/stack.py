"""Helpers for tests that run services against the real broker and database: a unique
namespace per test (topics and databases), service apps with their lifespan, and raw
Kafka access for publishing and reading records."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.structs import TopicPartition
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr

from seminarops_shared.clock import utc_now
from seminarops_shared.events import Envelope, Event, envelope_for
from seminarops_shared.kafka_clients import client_options, read_to_end
from seminarops_shared.settings import KafkaSettings, MongoSettings, ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


@dataclass(frozen=True)
class Namespace:
    """Topics and databases of one test, so tests never see each other's data."""

    kafka_bootstrap_servers: str
    mongodb_uri: str
    prefix: str
    # How every client of this namespace connects to the broker, the probe's included
    # (``KafkaSettings`` fields: ``security_protocol``, ``ssl_cafile``, SASL). Empty:
    # plaintext, as the session's embedded broker speaks.
    kafka_security: Mapping[str, Any] = field(default_factory=dict)

    def kafka(self, **overrides: Any) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.kafka_bootstrap_servers,
            topic_prefix=f"{self.prefix}.",
            partitions=overrides.pop("partitions", 3),
            batch_timeout_ms=overrides.pop("batch_timeout_ms", 5),
            session_timeout_ms=overrides.pop("session_timeout_ms", 1000),
            heartbeat_interval_ms=overrides.pop("heartbeat_interval_ms", 250),
            **{**self.kafka_security, **overrides},
        )

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection options for plain aiokafka clients, as the services connect."""
        return client_options(self.kafka())

    def mongo(self) -> MongoSettings:
        return MongoSettings(uri=SecretStr(self.mongodb_uri), database_prefix=f"{self.prefix}_")

    def topic(self, logical: str) -> str:
        return f"{self.prefix}.{logical}"

    def settings(self, cls: type[S], **overrides: Any) -> S:
        overrides.setdefault("kafka", self.kafka())
        overrides.setdefault("mongo", self.mongo())
        overrides.setdefault("port", 1)
        overrides.setdefault("outbox_poll_interval_s", 0.2)
        return cls(**overrides)


def new_namespace(kafka_bootstrap_servers: str, mongodb_uri: str) -> Namespace:
    return Namespace(kafka_bootstrap_servers, mongodb_uri, f"t{uuid.uuid4().hex[:10]}")


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan (database, broker, consumers, relay) and talk HTTP to it."""
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


@contextmanager
def served(app: FastAPI, *, startup_timeout_s: float = 60.0) -> Iterator[str]:
    """Serve the app over real HTTP (uvicorn, its own thread and event loop, a free
    port on 127.0.0.1) for tools that send requests themselves (schemathesis'
    re-sending checks); yields its base URL. Shut down (lifespan included) on exit."""
    import uvicorn

    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=20)
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listening]}, name=f"served:{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the app did not start serving on port {port}")
        time.sleep(0.05)  # polling a flag with a deadline, not synchronising by sleep
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        listening.close()


class KafkaProbe:
    """Raw Kafka access for tests: publish envelopes or arbitrary bytes, read topics."""

    def __init__(self, namespace: Namespace) -> None:
        self._namespace = namespace
        self._producer = AIOKafkaProducer(
            **namespace.kafka_client_options(), max_request_size=4 * 1024 * 1024
        )

    async def __aenter__(self) -> KafkaProbe:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send_raw(
        self,
        logical_topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        partition: int | None = None,
    ) -> None:
        """``partition``: this one instead of the key's murmur2 hash (as a producer with
        another partitioner would)."""
        await self._producer.send_and_wait(
            self._namespace.topic(logical_topic),
            value=value,
            key=key,
            headers=list(headers),
            partition=partition,
        )

    async def send_event(
        self,
        data: Event,
        *,
        source: str = "/platform/teacher-portal",
        event_id: str | None = None,
        topic: str | None = None,
    ) -> Envelope:
        envelope = envelope_for(data, source=source, time=utc_now(), event_id=event_id)
        await self.send_envelope(envelope, topic=topic or data.topic, key=data.key)
        return envelope

    async def send_envelope(
        self, envelope: Envelope, *, topic: str, key: str, partition: int | None = None
    ) -> None:
        await self.send_raw(topic, envelope.to_json_bytes(), key=key.encode(), partition=partition)

    async def read_all(self, logical_topic: str) -> list[ConsumerRecord[bytes, bytes]]:
        """Every record on the topic now (all partitions, from the start, no group)."""
        topic = self._namespace.topic(logical_topic)
        consumer = AIOKafkaConsumer(
            **self._namespace.kafka_client_options(),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic) or set()
            assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
            if not assignment:
                return []
            consumer.assign(assignment)
            return [record async for record in read_to_end(consumer, assignment)]
        finally:
            await consumer.stop()

    async def events(self, logical_topic: str) -> list[Envelope]:
        return [
            Envelope.from_json_bytes(r.value) for r in await self.read_all(logical_topic) if r.value
        ]
