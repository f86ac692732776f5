"""A real broker and database for the test session.

Chosen in this order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI`` from the environment (an existing
   cluster; each variable on its own);
2. testcontainers (Apache Kafka, a one-node MongoDB replica set), only when the
   package is installed and a Docker engine answers;
3. the embedded servers (Tansu, SecantusDB) as child processes on free ports.

``SEMINAROPS_TEST_INFRASTRUCTURE=embedded`` (or ``containers``) skips the choice.

The embedded servers stay in the caller's process group (not detached): whoever stops
the test run's group (a CI runner, ``.ci/run``'s trap) stops them too, even if pytest
itself is killed before its fixtures are torn down.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seminarops_shared.topics_admin import StartupError

from ..processes import (
    DEFAULT_START_TIMEOUT_S,
    LOCALHOST,
    EmbeddedServer,
    free_port,
    mongo_ready,
    port_open,
    start_kafka,
    start_mongo,
    wait_until,
)

__all__ = [
    "EmbeddedServer",
    "docker_engine_answers",
    "resolve_test_infrastructure",
    "start_embedded_kafka",
    "start_embedded_mongo",
]

_log = logging.getLogger(__name__)

# The port a free-port probe returned can be taken by someone else before the server
# binds it; a few fresh attempts make that race harmless.
_PORT_ATTEMPTS = 3
_KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.1"
_MONGO_IMAGE = "mongo:7.0"


def start_embedded_kafka(
    workdir: Path, *, timeout_s: float = DEFAULT_START_TIMEOUT_S
) -> EmbeddedServer:
    """Tansu on a free port, log in ``workdir/kafka.log``; returns once it answers a
    metadata request. Stop it with ``.stop()`` (or use it as a context manager)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = free_port()
        try:
            return start_kafka(
                port=port, log_path=workdir / "kafka.log", detached=False, timeout_s=timeout_s
            )
        except StartupError:
            if attempt == _PORT_ATTEMPTS or not port_open(LOCALHOST, port):
                raise
            _log.info("port %d was taken before the broker bound it; trying another", port)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def start_embedded_mongo(
    workdir: Path, *, timeout_s: float = DEFAULT_START_TIMEOUT_S
) -> EmbeddedServer:
    """SecantusDB on a free port with its files in ``workdir/mongo-data`` (a single-node
    replica set: transactions and change streams work); returns once it answers ``ping``."""
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = free_port()
        try:
            return start_mongo(
                port=port,
                storage_path=workdir / "mongo-data",
                config_path=workdir / "secantusd.toml",
                log_path=workdir / "mongodb.log",
                detached=False,
                timeout_s=timeout_s,
            )
        except StartupError:
            if attempt == _PORT_ATTEMPTS or not port_open(LOCALHOST, port):
                raise
            _log.info("port %d was taken before the database bound it; trying another", port)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


@contextlib.contextmanager
def resolve_test_infrastructure(workdir: Path | None = None) -> Iterator[tuple[str, str]]:
    """Yield ``(kafka_bootstrap_servers, mongodb_uri)`` for the test session and stop
    whatever was started for it on exit (see the module docstring for the order)."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(
                stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="seminarops-", ignore_cleanup_errors=True)
                )
            )
        kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
        mongo = os.environ.get("MONGODB_URI") or None
        if kafka is None or mongo is None:
            mode = os.environ.get("SEMINAROPS_TEST_INFRASTRUCTURE", "auto")
            if mode not in {"auto", "embedded", "containers"}:
                raise ValueError(
                    f"SEMINAROPS_TEST_INFRASTRUCTURE={mode!r}: use auto, embedded or containers"
                )
            containers = mode == "containers" or (mode == "auto" and docker_engine_answers())
            if kafka is None:
                kafka = stack.enter_context(
                    _kafka_container() if containers else _embedded_kafka(workdir)
                )
            if mongo is None:
                mongo = stack.enter_context(
                    _mongo_container() if containers else _embedded_mongo(workdir)
                )
        _log.info("test infrastructure: kafka=%s mongodb=%s", kafka, mongo)
        yield kafka, mongo


@contextlib.contextmanager
def _embedded_kafka(workdir: Path) -> Iterator[str]:
    with start_embedded_kafka(workdir) as server:
        yield server.address


@contextlib.contextmanager
def _embedded_mongo(workdir: Path) -> Iterator[str]:
    with start_embedded_mongo(workdir) as server:
        yield server.address


# --- testcontainers (optional; not a dependency) ---------------------------------------


def docker_engine_answers() -> bool:
    """Whether testcontainers is installed and a Docker engine answers a ping.

    Both are looked up lazily, so the plugin costs nothing and fails nothing where
    neither exists (the embedded servers are used then).
    """
    try:
        importlib.import_module("testcontainers")
        docker: Any = importlib.import_module("docker")
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure to reach the engine means "no Docker"
        return False


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    module: Any = importlib.import_module("testcontainers.kafka")
    container = module.KafkaContainer(os.environ.get("SEMINAROPS_KAFKA_IMAGE", _KAFKA_IMAGE))
    container.start()
    try:
        yield str(container.get_bootstrap_server())
    finally:
        container.stop()


@contextlib.contextmanager
def _mongo_container() -> Iterator[str]:
    """A one-node replica set: transactions (the outbox, processed-event markers) need one."""
    module: Any = importlib.import_module("testcontainers.core.container")
    container = (
        module.DockerContainer(os.environ.get("SEMINAROPS_MONGO_IMAGE", _MONGO_IMAGE))
        .with_command("--replSet rs0 --bind_ip_all")
        .with_exposed_ports(27017)
    )
    container.start()
    try:
        host = container.get_container_host_ip()
        port = int(container.get_exposed_port(27017))
        uri = f"mongodb://{host}:{port}/?directConnection=true"
        wait_until(
            lambda left: mongo_ready(uri, wait_s=left), what="MongoDB container", timeout_s=60
        )
        # The member is named as the container sees itself; directConnection keeps the
        # driver from resolving that name from the host.
        initiate = (
            "try { rs.status() } catch (e) { rs.initiate("
            "{_id: 'rs0', members: [{_id: 0, host: 'localhost:27017'}]}) }"
        )
        container.exec(["mongosh", "--quiet", "--eval", initiate])
        wait_until(
            lambda left: _is_writable_primary(uri, wait_s=left),
            what="MongoDB replica set primary",
            timeout_s=60,
        )
        yield uri
    finally:
        container.stop()


def _is_writable_primary(uri: str, *, wait_s: float) -> bool:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, Any]] = MongoClient(
        uri, serverSelectionTimeoutMS=max(100, int(wait_s * 1000))
    )
    try:
        return bool(client.admin.command("hello").get("isWritablePrimary"))
    except PyMongoError:
        return False
    finally:
        client.close()
