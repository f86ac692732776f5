"""Typed settings shared by every service.

Each service has its own prefix (``REGISTRATION_``, ``SEMINAR_``, ...) for what is its
own (port, database name, tokens); the broker and the database are shared infrastructure,
so ``KAFKA_*`` and ``MONGODB_*`` apply to all services at once (the contract's
``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI``). Settings are built in ``__main__`` or by a
test, never at import time.
"""

from __future__ import annotations

import enum
import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
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
    # A consumer fetches a partition again when its records jump past an offset (the
    # embedded broker can skip a batch written while another producer writes:
    # ``offset_gaps``); a hole still there after this long is accepted as real. 0: no
    # check (Apache Kafka, whose fetches never skip: docker-compose.yml, Kubernetes).
    offset_gap_patience_s: float = Field(default=2.0, ge=0)

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
    # Transactions this process keeps open at once; more wait for a slot. The embedded
    # database runs one statement at a time, and with tens of transactions open it
    # stalls (README, "Benchmarks": the season's opening fell to 20 requests/s); a few
    # keep it busy. A MongoDB replica set runs them in parallel: raise it there (16).
    max_concurrent_transactions: int = Field(default=3, ge=1, le=10_000)


class Role(enum.StrEnum):
    """Who is calling: operators run the programme, platform systems integrate,
    participants act for themselves."""

    OPERATOR = "operator"
    PLATFORM = "platform"
    PARTICIPANT = "participant"


# Asymmetric signatures only: a JWKS holds public keys, and an HS* algorithm would let
# anyone holding a public key (everyone) sign tokens with it as the shared secret.
ASYMMETRIC_JWT_ALGORITHMS: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a URL's host name) is this machine."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AuthSettings(BaseSettings):
    """Who may call: static bearer tokens per role for machines
    (``AUTH_TOKENS='{"operator": ["..."], "platform": ["..."]}'``) and JWTs of the
    platform's identity provider for people (``AUTH_JWKS``: a JWKS file path or an https
    URL, with ``AUTH_JWT_ISSUER`` and ``AUTH_JWT_AUDIENCE``; see docs/security.md).

    No tokens and no JWKS means the service runs open, for local development only; it
    says so in a warning at start-up. ``AUTH_REQUIRED=true`` (docker-compose.yml, deploy/)
    turns that into a refusal to start: ``AUTH_TOKENS='{}'`` cannot open a production API.
    ``AUTH_ALLOW_ANONYMOUS=true`` (``make up`` only) lets calls without any token through
    unrestricted while presented tokens are still verified; ``AUTH_REQUIRED`` refuses it.
    """

    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore")

    tokens: dict[Role, list[SecretStr]] = Field(default_factory=dict)
    required: bool = False
    jwks: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_algorithms: tuple[str, ...] = ASYMMETRIC_JWT_ALGORITHMS
    # Clock skew tolerated on exp / nbf / iat.
    jwt_leeway_s: int = Field(default=30, ge=0, le=300)
    # An unknown kid re-reads the JWKS (key rotation), at most once per this interval,
    # so a stream of forged kids cannot turn every request into a fetch.
    jwks_refresh_interval_s: float = Field(default=30.0, ge=0)
    # A JWKS is re-read after this long even without an unknown kid (revoked keys go).
    jwks_max_age_s: float = Field(default=3600.0, gt=0)
    # Plain http for a JWKS URL on a host other than loopback: tests only.
    jwks_allow_http: bool = False
    allow_anonymous: bool = False

    @field_validator("jwt_algorithms")
    @classmethod
    def _asymmetric_only(cls, algorithms: tuple[str, ...]) -> tuple[str, ...]:
        refused = [a for a in algorithms if a not in ASYMMETRIC_JWT_ALGORITHMS]
        if refused or not algorithms:
            raise ValueError(
                f"AUTH_JWT_ALGORITHMS may only hold asymmetric algorithms "
                f"({', '.join(ASYMMETRIC_JWT_ALGORITHMS)}); refused: {refused or 'an empty list'}"
            )
        return algorithms

    @field_validator("jwks")
    @classmethod
    def _blank_is_unset(cls, jwks: str | None) -> str | None:
        # ``AUTH_JWKS=`` (an empty variable, as compose files write "unset") is no JWKS.
        if jwks is None or not jwks.strip():
            return None
        return jwks.strip()

    @model_validator(mode="after")
    def _identity_complete(self) -> AuthSettings:
        if self.jwks is None:
            return self
        missing = [
            name
            for name, value in (
                ("AUTH_JWT_ISSUER", self.jwt_issuer),
                ("AUTH_JWT_AUDIENCE", self.jwt_audience),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"AUTH_JWKS is set, so {' and '.join(missing)} must be set too")
        if "://" in self.jwks:
            url = urlsplit(self.jwks)
            if url.scheme not in {"https", "http"} or not url.hostname:
                raise ValueError(f"AUTH_JWKS={self.jwks!r} is neither a file path nor an https URL")
            if url.scheme == "http" and not (is_loopback(url.hostname) or self.jwks_allow_http):
                raise ValueError(
                    f"AUTH_JWKS={self.jwks!r}: keys must come over https (plain http only "
                    "from a loopback address, or with AUTH_JWKS_ALLOW_HTTP for tests)"
                )
        return self

    @property
    def open(self) -> bool:
        """No credential of any kind is configured: every call is let through."""
        return not any(self.tokens.values()) and self.jwks is None

    @property
    def anonymous_allowed(self) -> bool:
        """Calls without a token are let through unrestricted (open, or ``make up``'s
        development identity beside an open API)."""
        return self.open or self.allow_anonymous

    @property
    def jwks_is_url(self) -> bool:
        return self.jwks is not None and "://" in self.jwks


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
    # HTTP admission: API requests in flight at once; one more is answered 503 with
    # Retry-After at once, so a flood costs a bounded amount of memory and the requests
    # already admitted are decided at full speed.
    http_max_in_flight: int = Field(default=256, ge=1, le=100_000)

    @property
    def database_name(self) -> str:
        return f"{self.mongo.database_prefix}{self.service_name}"


def development_warnings(auth: AuthSettings, privacy: PrivacySettings) -> list[str]:
    """What makes this configuration fit for local development only, said for a person:
    logged by every service at start-up, printed by ``make up`` and ``make status``."""
    warnings = []
    if auth.open:
        warnings.append(
            "no auth tokens or JWKS configured: the API is OPEN to anyone; local development only"
        )
    elif auth.allow_anonymous:
        warnings.append(
            "the API runs OPEN: calls without a token are let through unrestricted "
            "(AUTH_ALLOW_ANONYMOUS; tokens presented are still checked); "
            "local development only"
        )
    if privacy.development_key:
        warnings.append(
            "no PRIVACY_PSEUDONYM_KEY configured: erasure pseudonyms use the public "
            "development key; local development only"
        )
    return warnings
