"""Typed settings shared by every service.

Each service has its own prefix (``REGISTRATION_``, ``SEMINAR_``, ...) for what is its
own (port, database name, tokens); the broker and the database are shared infrastructure,
so ``KAFKA_*`` and ``MONGODB_*`` apply to all services at once (the contract's
``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI``). Settings are built in ``__main__`` or by a
test, never at import time.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .privacy import PrivacySettings


class KafkaSettings(BaseSettings):
    """Broker connection and producer durability (``KAFKA_*``)."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id_prefix: str = "seminarops"
    # Prepended to every topic and consumer-group name; tests use it to give each test
    # its own topics and groups.
    topic_prefix: str = ""
    # Durability: acks=all always; idempotent producers only where the broker supports
    # InitProducerId (real Kafka: on; the embedded Tansu broker: off, it fails there).
    acks: Literal["all", "1", "0"] = "all"
    enable_idempotence: bool = False
    # Used when the services create their own topics (local runs); production topics
    # are declared by the platform (deploy/kubernetes) with replication 3, min ISR 2.
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    # Consumption: how many records one batch (one transaction) may take at most.
    max_batch_records: int = Field(default=500, ge=1)
    # How long a consumer waits for records when none are buffered; FastStream then
    # also sleeps this long before asking again: a hop's idle latency is up to twice it.
    batch_timeout_ms: int = Field(default=10, ge=0)
    # How long the broker may hold a fetch that finds no new records. Kafka answers as
    # soon as a record arrives, whatever this is; the embedded broker (Tansu) holds the
    # fetch for all of it, so each hop between services waited ~half of Kafka's 500 ms
    # default (measured: p50 137 ms at 500, 8 ms at 20). Idle consumers fetch more often.
    fetch_max_wait_ms: int = Field(default=25, ge=1)
    # Group membership. The embedded broker completes a join after half the session
    # timeout, so tests use a short one; production keeps Kafka's usual values.
    session_timeout_ms: int = Field(default=10_000, ge=500)
    # On shutdown, in-flight batches get this long to finish and commit their offsets.
    graceful_timeout_s: float = Field(default=15.0, gt=0)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)

    def topic(self, name: str) -> str:
        """The physical topic name of a logical topic."""
        return f"{self.topic_prefix}{name}"

    def group(self, name: str) -> str:
        """The consumer-group id of a service."""
        return f"{self.topic_prefix}{name}"


class MongoSettings(BaseSettings):
    """Database connection (``MONGODB_*``); credentials and TLS live in the URI."""

    model_config = SettingsConfigDict(env_prefix="MONGODB_", extra="ignore")

    uri: SecretStr = SecretStr("mongodb://127.0.0.1:27017/?directConnection=true")
    # Prepended to each service's database name; tests give each test its own databases.
    database_prefix: str = ""
    server_selection_timeout_ms: int = 5000


class Role(enum.StrEnum):
    """Who is calling: operators run the programme, platform systems integrate,
    participants act for themselves."""

    OPERATOR = "operator"
    PLATFORM = "platform"
    PARTICIPANT = "participant"


class AuthSettings(BaseSettings):
    """Bearer tokens per role (``AUTH_TOKENS='{"operator": ["..."], "platform": ["..."]}'``).

    No tokens at all means the service runs open, for local development only; it says
    so in a warning at start-up. ``AUTH_REQUIRED=true`` (docker-compose.yml, deploy/)
    turns that into a refusal to start: ``AUTH_TOKENS='{}'`` cannot open a production API.
    """

    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore")

    tokens: dict[Role, list[SecretStr]] = Field(default_factory=dict)
    required: bool = False

    @property
    def open(self) -> bool:
        return not any(self.tokens.values())


class ServiceSettings(BaseSettings):
    """What every service has; a service subclasses it with its own prefix and fields."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")

    service_name: str
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # None: JSON when stderr is not a TTY, colours otherwise.
    log_json: bool | None = None
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    # The erasure pseudonym key, the same in every service (``PRIVACY_PSEUDONYM_KEY``).
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    # Outbox relay: poll interval for entries left by a crashed replica, and how old an
    # entry of another replica must be before this one takes it over.
    outbox_poll_interval_s: float = Field(default=1.0, gt=0)
    outbox_takeover_after_s: float = Field(default=10.0, gt=0)
    # Durable timers (reminders, windows, parked requests): how often due jobs are looked for.
    scheduler_poll_interval_s: float = Field(default=1.0, gt=0)

    @property
    def database_name(self) -> str:
        return f"{self.mongo.database_prefix}{self.service_name}"
