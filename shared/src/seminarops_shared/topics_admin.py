"""Topic administration the services do themselves: at start-up each service creates the
system's topics that are missing (local runs, tests). In production the platform declares
them (deploy/kubernetes) and nothing is asked for. Needs only aiokafka, imported where it
is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class StartupError(RuntimeError):
    """A process did not become ready in time, or exited while starting; or the broker
    refused to create a topic a service needs to start."""


def admin_options(bootstrap_servers: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` (security, as ``kafka_clients.client_options`` builds them from
    ``KafkaSettings``) with ``bootstrap_servers`` taking the place of any address in them."""
    return {**options, "bootstrap_servers": bootstrap_servers}


async def create_topics(
    bootstrap_servers: str,
    topics: Sequence[str],
    *,
    partitions: int,
    replication_factor: int,
    options: Mapping[str, Any],
) -> list[str]:
    """Create the topics of ``topics`` that do not exist yet; returns the names created.
    Idempotent: existing topics are left as they are, and a topic another process creates
    at the same moment counts as existing. Any other refusal raises ``StartupError`` with
    the broker's reason."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(**admin_options(bootstrap_servers, options))
    try:
        await admin.start()
    except KafkaError as exc:
        await admin.close()
        raise StartupError(
            f"cannot reach Kafka at {bootstrap_servers} to create topics: {exc}"
        ) from exc
    try:
        # Only what is missing: where the topics are declared by the platform (with
        # ACLs that allow no Create), nothing is asked for.
        existing = set(await admin.list_topics())
        missing = [name for name in topics if name not in existing]
        if not missing:
            return []
        try:
            response = await admin.create_topics(
                [NewTopic(name, partitions, replication_factor) for name in missing]
            )
        except TopicAlreadyExistsError:
            return []  # some aiokafka versions raise on the first error instead of reporting
        created: list[str] = []
        problems: list[str] = []
        for name, code, message, *_ in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:
                problems.append(f"{name}: error {code} {message or ''}".strip())
        if problems:
            raise StartupError("could not create topics: " + "; ".join(problems))
        return created
    finally:
        await admin.close()
