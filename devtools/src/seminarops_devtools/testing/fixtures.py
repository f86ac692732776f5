"""pytest fixtures over the real stack: a namespace per test and a Kafka probe."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .server_fixtures import Infrastructure
from .stack import KafkaProbe, Namespace, new_namespace


@pytest.fixture
def namespace(infrastructure: Infrastructure) -> Namespace:
    """Fresh topics and databases for this test (nothing to wipe, nothing shared)."""
    return new_namespace(infrastructure.kafka_bootstrap_servers, infrastructure.mongodb_uri)


@pytest.fixture
async def kafka(namespace: Namespace) -> AsyncIterator[KafkaProbe]:
    async with KafkaProbe(namespace) as probe:
        yield probe
