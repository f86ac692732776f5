"""The whole system on one machine: ``python -m seminarops_devtools.devstack up|down|status``
(``make up`` / ``make down`` / ``make status``).

``up`` is idempotent: it starts what is not running (the embedded Kafka-compatible
broker, the embedded MongoDB-compatible database, the topics, the four services), leaves
alone what is, and returns once every ``/health/ready`` answers 200. ``down`` stops only
what ``up`` started. State lives in ``.run/`` at the repository root:

- ``<name>.pid``: JSON ``{"pid", "command", "address", "started_at"}``. The command is
  kept so a pid the kernel has since handed to an unrelated process is recognised as
  stale and never signalled.
- ``<name>.log``: stdout and stderr of each process, appended, one header per start.
- ``kafka-log/``: the broker's log (topics, records, committed offsets) as objects in a
  local S3 store (SeaweedFS), written with fsync.
- ``mongo-data/``: the database files (SecantusDB with ``--sync-on-commit``).

Both survive ``down``, a crash of any process and a SIGKILL of all of them: ``up``
finds stale pid files and half-dead processes, clears them away and carries on where
the log and the database stood. ``make clean`` wipes ``.run/``.

``down`` stops the doors first (SIGUSR1: HTTP answers 503, the inbound topic is paused),
waits (``SEMINAROPS_DRAIN_TIMEOUT_S``) until every outbox is empty and every consumer
group has read every internal topic to its end, then stops the services, the broker
and the database, and last the object store.

Environment:

- ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI``: use that cluster / deployment; no
  embedded server is started for it. ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*`` and
  ``KAFKA_SSL_CAFILE`` are honoured for topic creation: they are read into the same
  ``KafkaSettings`` as the services read them.
- ``KAFKA_PORT`` (9092) / ``MONGODB_PORT`` (27017): ports of the embedded servers;
  ``S3_PORT`` (8333): the object store's S3 port, and the seven after it its own.
- ``KAFKA_LOG`` (``durable``): ``memory`` keeps the embedded broker's log in memory
  (lost at every stop; for a throwaway stack or a comparison, never for data you keep).
- ``KAFKA_PARTITIONS`` (6), ``KAFKA_REPLICATION_FACTOR`` (1), ``KAFKA_TOPIC_PREFIX``:
  how the topics are created, matching the services' ``KafkaSettings``.
- ``<SERVICE>_PORT`` / ``<SERVICE>_HOST``: where each service listens.
- ``SEMINAROPS_READY_TIMEOUT_S`` (120): how long ``up`` waits for the services.
- ``SEMINAROPS_DRAIN_TIMEOUT_S`` (60): how long ``down`` waits for the services to pass
  on what they hold before it stops them anyway (nothing is lost then either: it stays
  in the outbox and on the broker for the next ``up``).
- ``AUTH_JWKS`` unset: the services trust a development identity, a key pair ``up``
  generates once into ``.run/identity/`` (``make token ROLE=participant SUB=p-1`` prints
  a token it signed; ``seminarops_devtools.tokens``). Without ``AUTH_TOKENS`` they
  still let calls without a token through (``AUTH_ALLOW_ANONYMOUS``), as an open API
  does, while presented tokens are checked. ``up`` and ``status`` print a warning for
  that and for the public development pseudonym key (no ``PRIVACY_PSEUDONYM_KEY``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr, ValidationError

from seminarops_shared.events.topics import ALL_TOPICS, REGISTRATION_REQUESTS, SUBSCRIPTIONS
from seminarops_shared.kafka_clients import client_options, end_offsets
from seminarops_shared.privacy import DEVELOPMENT_PSEUDONYM_KEY, PrivacySettings
from seminarops_shared.settings import AuthSettings, KafkaSettings, development_warnings
from seminarops_shared.topics_admin import StartupError

from .processes import (
    DEFAULT_START_TIMEOUT_S,
    LOCALHOST,
    MEMORY_STORAGE,
    S3_STORAGE,
    Deadline,
    EmbeddedServer,
    ObjectStore,
    ObjectStorePorts,
    connect_host,
    ensure_topics,
    is_same_process,
    kafka_address,
    kafka_command,
    kafka_ready,
    log_tail,
    mongo_command,
    mongo_ready,
    mongo_uri,
    object_store_address,
    object_store_command,
    object_store_credentials,
    pid_alive,
    port_open,
    process_command,
    run_coroutine,
    spawn,
    start_kafka,
    start_mongo,
    start_object_store,
    stop_pids,
    utc_timestamp,
    wait_until,
)
from .tokens import DevelopmentIdentity, ensure_development_identity, identity_directory

SERVICE_PORTS: Mapping[str, int] = {
    "registration": 8001,
    "seminar": 8002,
    "feedback": 8003,
    "metrics": 8004,
}
KAFKA = "kafka"
MONGODB = "mongodb"
S3 = "s3"
DURABLE = "durable"
MEMORY = "memory"

_DEFAULT_READY_TIMEOUT_S = 120.0
_DEFAULT_DRAIN_TIMEOUT_S = 60
# Services drain their consumers and the outbox relay on SIGTERM; the database
# checkpoints. Both normally take well under a second.
_SERVICE_STOP_TIMEOUT_S = 20.0
_INFRA_STOP_TIMEOUT_S = 20.0
# SeaweedFS's filer waits 15 s for the S3 gateway's metadata subscription to end before
# it exits on SIGTERM. Every object and its metadata are already synced to disk when
# the write is acknowledged, so a kill after a short wait loses nothing.
_OBJECT_STORE_STOP_TIMEOUT_S = 3.0
# A recorded process that is alive but has not answered in this long is half dead
# (stopped, hung, or still holding its port after a crash of its children).
_HALF_DEAD_AFTER_S = 20.0
_READY_POLL_INTERVAL_S = 0.2
_DRAIN_POLL_INTERVAL_S = 0.5
# Tansu's S3 storage answers a fetch with what it has read from the store when the
# fetch's max wait runs out: with the services' 25 ms it would read nothing, every
# time. 500 ms is Kafka's and aiokafka's default; a fetch with data answers at once.
_DURABLE_LOG_FETCH_MAX_WAIT_MS = "500"


class StackError(RuntimeError):
    """``up``/``down`` cannot do what was asked; the message says why and what to do."""


class _ReadyCheck(Protocol):
    def __call__(self, address: str, /, *, wait_s: float) -> bool: ...


# --- configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    host: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{connect_host(self.host)}:{self.port}"

    @property
    def env_prefix(self) -> str:
        return self.name.upper()


@dataclass(frozen=True)
class StackConfig:
    """Everything ``up``/``down``/``status`` need, read once from the environment."""

    root: Path
    kafka_port: int
    mongo_port: int
    s3_port: int
    kafka_log: str
    external_kafka: str | None
    external_mongo: str | None
    partitions: int
    replication_factor: int
    topic_prefix: str
    services: tuple[ServiceSpec, ...]
    ready_timeout_s: float
    drain_timeout_s: float
    env: Mapping[str, str]
    infra_host: str = LOCALHOST

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, root: Path | None = None
    ) -> StackConfig:
        env = dict(os.environ if env is None else env)
        services = tuple(
            ServiceSpec(
                name=name,
                host=env.get(f"{name.upper()}_HOST") or LOCALHOST,
                port=_port_env(env, f"{name.upper()}_PORT", default),
            )
            for name, default in SERVICE_PORTS.items()
        )
        kafka_log = env.get("KAFKA_LOG") or DURABLE
        if kafka_log not in {DURABLE, MEMORY}:
            raise StackError(f"KAFKA_LOG={kafka_log!r}: use {DURABLE!r} (default) or {MEMORY!r}")
        s3_port = _port_env(env, "S3_PORT", 8333)
        if s3_port + 7 > 65535:
            raise StackError(f"S3_PORT={s3_port}: the object store needs it and the 7 after it")
        return cls(
            root=root or find_root(),
            kafka_port=_port_env(env, "KAFKA_PORT", 9092),
            mongo_port=_port_env(env, "MONGODB_PORT", 27017),
            s3_port=s3_port,
            kafka_log=kafka_log,
            external_kafka=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            external_mongo=env.get("MONGODB_URI") or None,
            partitions=_int_env(env, "KAFKA_PARTITIONS", 6),
            replication_factor=_int_env(env, "KAFKA_REPLICATION_FACTOR", 1),
            topic_prefix=env.get("KAFKA_TOPIC_PREFIX", ""),
            services=services,
            ready_timeout_s=float(
                _int_env(env, "SEMINAROPS_READY_TIMEOUT_S", int(_DEFAULT_READY_TIMEOUT_S))
            ),
            drain_timeout_s=float(
                _int_env(env, "SEMINAROPS_DRAIN_TIMEOUT_S", _DEFAULT_DRAIN_TIMEOUT_S)
            ),
            env=env,
        )

    @property
    def run_dir(self) -> Path:
        return self.root / ".run"

    @property
    def mongo_data(self) -> Path:
        return self.run_dir / "mongo-data"

    @property
    def kafka_log_dir(self) -> Path:
        return self.run_dir / "kafka-log"

    @property
    def durable_log(self) -> bool:
        """The embedded broker keeps its log in the object store (not: an external
        cluster, or ``KAFKA_LOG=memory``)."""
        return self.external_kafka is None and self.kafka_log == DURABLE

    @property
    def object_store_ports(self) -> ObjectStorePorts:
        return ObjectStorePorts.block(self.s3_port)

    def object_store(self) -> ObjectStore:
        access_key, secret_key = object_store_credentials(self.kafka_log_dir)
        return ObjectStore(
            endpoint=object_store_address(self.infra_host, self.object_store_ports),
            access_key=access_key,
            secret_key=secret_key,
        )

    @property
    def kafka_bootstrap_servers(self) -> str:
        return self.external_kafka or kafka_address(self.infra_host, self.kafka_port)

    def kafka_settings(self) -> KafkaSettings:
        """The ``KafkaSettings`` the services get from ``service_env``: the ``KAFKA_*``
        variables of this environment, with the bootstrap servers chosen here."""
        # Strings, as in the environment: KafkaSettings validates and converts them.
        given: dict[str, Any] = {
            field: self.env[variable]
            for field in KafkaSettings.model_fields
            if (variable := f"KAFKA_{field.upper()}") in self.env
        }
        try:
            return KafkaSettings(**{**given, "bootstrap_servers": self.kafka_bootstrap_servers})
        except ValidationError as exc:
            raise StackError(f"invalid KAFKA_* settings: {exc}") from None

    def kafka_client_options(self) -> dict[str, Any]:
        """aiokafka connection options (security, SASL, CA file) as the services use them."""
        return client_options(self.kafka_settings())

    @property
    def mongodb_uri(self) -> str:
        return self.external_mongo or mongo_uri(self.infra_host, self.mongo_port)

    def log_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"

    def pid_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def service_env(self, spec: ServiceSpec) -> dict[str, str]:
        """The service's environment: the caller's, plus where everything is, so a
        moved port or an external cluster reaches every service the same way."""
        env = dict(self.env)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
                "MONGODB_URI": self.mongodb_uri,
                f"{spec.env_prefix}_HOST": spec.host,
                f"{spec.env_prefix}_PORT": str(spec.port),
                # Logs go to a file: without this, Python buffers them until exit.
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.durable_log:
            env.setdefault("KAFKA_FETCH_MAX_WAIT_MS", _DURABLE_LOG_FETCH_MAX_WAIT_MS)
        env.update(self.identity_env())
        return env

    def identity_env(self) -> dict[str, str]:
        """Unless ``AUTH_JWKS`` names the platform's identity provider, the services
        trust the development identity (``make token``). Without ``AUTH_TOKENS`` they
        still let calls without a token through, as an open API does, while the tokens
        presented are checked: participants are held to their own data."""
        if self.env.get("AUTH_JWKS", "").strip():
            return {}
        env = DevelopmentIdentity(identity_directory(self.run_dir)).service_env()
        if not _has_tokens(self.env.get("AUTH_TOKENS")) and not _truthy(
            self.env.get("AUTH_REQUIRED")
        ):
            env["AUTH_ALLOW_ANONYMOUS"] = "true"
        return env

    def development_warnings(self) -> list[str]:
        """What makes the services' configuration fit for local development only."""
        env = {**self.env, **self.identity_env()}
        try:
            auth = AuthSettings(
                tokens=json.loads(env.get("AUTH_TOKENS") or "{}"),
                required=_truthy(env.get("AUTH_REQUIRED")),
                jwks=env.get("AUTH_JWKS"),
                jwt_issuer=env.get("AUTH_JWT_ISSUER"),
                jwt_audience=env.get("AUTH_JWT_AUDIENCE"),
                allow_anonymous=_truthy(env.get("AUTH_ALLOW_ANONYMOUS")),
            )
            privacy = PrivacySettings(
                pseudonym_key=SecretStr(
                    env.get("PRIVACY_PSEUDONYM_KEY") or DEVELOPMENT_PSEUDONYM_KEY
                )
            )
        except (ValueError, ValidationError) as exc:
            raise StackError(f"invalid AUTH_* / PRIVACY_* settings: {exc}") from None
        return development_warnings(auth, privacy)

    def embedded_command(self, name: str) -> list[str]:
        """The command line ``up`` starts an embedded server with (also how a process
        left behind by an earlier run is recognised)."""
        host = self.infra_host
        if name == S3:
            return object_store_command(
                data_dir=self.kafka_log_dir, ports=self.object_store_ports, host=host
            )
        if name == KAFKA:
            storage = S3_STORAGE if self.durable_log else MEMORY_STORAGE
            return kafka_command(host=host, port=self.kafka_port, storage_engine=storage)
        return mongo_command(
            host=host,
            port=self.mongo_port,
            storage_path=self.mongo_data,
            config_path=self.run_dir / "secantusd.toml",
            sync_on_commit=True,
        )


def _truthy(raw: str | None) -> bool:
    return (raw or "").strip().lower() in {"1", "true", "yes", "on"}


def _has_tokens(raw: str | None) -> bool:
    """Whether an ``AUTH_TOKENS`` value holds a token (unparsable: assume it does, and
    let the services say what is wrong with it)."""
    try:
        parsed = json.loads(raw or "{}")
    except ValueError:
        return True
    return not isinstance(parsed, dict) or any(parsed.values())


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a whole number") from None


def _port_env(env: Mapping[str, str], name: str, default: int) -> int:
    port = _int_env(env, name, default)
    if not 1 <= port <= 65535:
        # Port 0 would let the OS pick one, and nobody could then find the service.
        raise StackError(f"{name}={port} is not a TCP port (1-65535)")
    return port


def find_root() -> Path:
    """The repository root: ``SEMINAROPS_ROOT``, or the nearest directory above the
    working directory (then above this file) holding ``uv.lock`` and ``services/``."""
    if explicit := os.environ.get("SEMINAROPS_ROOT"):
        return Path(explicit).resolve()
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for candidate in (start, *start.parents):
            if (candidate / "uv.lock").is_file() and (candidate / "services").is_dir():
                return candidate
    raise StackError("cannot find the repository root (uv.lock + services/); set SEMINAROPS_ROOT")


# --- pid files -------------------------------------------------------------------------


@dataclass(frozen=True)
class PidRecord:
    name: str
    pid: int
    command: tuple[str, ...]
    address: str
    started_at: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PidRecord:
        raw: dict[str, Any] = json.loads(text)
        return cls(
            name=str(raw["name"]),
            pid=int(raw["pid"]),
            command=tuple(str(part) for part in raw["command"]),
            address=str(raw["address"]),
            started_at=str(raw["started_at"]),
        )


def read_record(config: StackConfig, name: str) -> PidRecord | None:
    try:
        return PidRecord.from_json(config.pid_path(name).read_text())
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        # A torn or hand-edited file: nothing can be trusted about it, treat as stale.
        return None


def running_record(config: StackConfig, name: str) -> PidRecord | None:
    """The record of ``name`` if that very process still runs, else None."""
    record = read_record(config, name)
    if record is not None and is_same_process(record.pid, record.command):
        return record
    return None


def write_record(
    config: StackConfig, name: str, *, pid: int, command: Sequence[str], address: str
) -> PidRecord:
    record = PidRecord(name, pid, tuple(command), address, utc_timestamp())
    path = config.pid_path(name)
    # Write-then-rename: a crash mid-write never leaves a torn pid file behind.
    tmp = path.with_suffix(".pid.tmp")
    tmp.write_text(record.to_json())
    tmp.replace(path)
    return record


def remove_record(config: StackConfig, name: str) -> None:
    config.pid_path(name).unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(config: StackConfig) -> Iterator[None]:
    """One ``up``/``down`` at a time: two concurrent ``make up`` would both see a
    component missing and start it twice."""
    config.run_dir.mkdir(parents=True, exist_ok=True)
    with (config.run_dir / "devstack.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say("another `make up`/`make down` is running; waiting for it ...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(message: str) -> None:
    print(message, flush=True)  # noqa: T201 - a command-line tool talks on stdout


# --- up --------------------------------------------------------------------------------


def up(config: StackConfig, *, infra_only: bool = False) -> None:
    """Start whatever is missing and wait until everything is ready."""
    started_at = time.monotonic()
    with _locked(config):
        if config.durable_log:
            _ensure_embedded(config, S3, config.s3_port)
        kafka_started = _ensure_kafka(config)
        _ensure_mongo(config)
        _ensure_topics(config)
        if not infra_only:
            running_before = _running_services(config)
            if kafka_started and running_before and not config.durable_log:
                _say(
                    "note: the broker was (re)started empty while "
                    + ", ".join(running_before)
                    + " kept running; `make down && make up` gives them a clean start"
                )
            if config.identity_env():
                ensure_development_identity(config.run_dir)
            spawned = _ensure_services(config)
            _wait_services_ready(config, spawned)
    _print_summary(config, infra_only=infra_only, elapsed_s=time.monotonic() - started_at)
    if not infra_only:
        _print_development_warnings(config)


def _ensure_kafka(config: StackConfig) -> bool:
    """Make the broker reachable; True if this call started it."""
    options = config.kafka_client_options()
    if config.external_kafka:
        _say(f"kafka: using KAFKA_BOOTSTRAP_SERVERS={config.external_kafka}")
        _wait_external(
            lambda left: kafka_ready(config.external_kafka or "", options=options, wait_s=left),
            what=f"Kafka at {config.external_kafka}",
        )
        return False
    return _ensure_embedded(config, KAFKA, config.kafka_port)


def _ensure_mongo(config: StackConfig) -> bool:
    if config.external_mongo:
        _say(f"mongodb: using MONGODB_URI={redact(config.external_mongo)}")
        _wait_external(
            lambda left: mongo_ready(config.external_mongo or "", wait_s=left),
            what=f"MongoDB at {redact(config.external_mongo)}",
        )
        return False
    return _ensure_embedded(config, MONGODB, config.mongo_port)


def _answers(config: StackConfig, name: str, address: str, *, wait_s: float) -> bool:
    """Whether the embedded server ``name`` at ``address`` answers as it should."""
    if name == S3:
        # An HTTP answer, whatever it says (403 without a signature): a stopped process's
        # socket still accepts connections, it only never answers.
        status, _ = http_get(f"{address}/", timeout_s=max(0.5, min(wait_s, 2.0)))
        return status is not None
    if name == KAFKA:
        return port_open(config.infra_host, config.kafka_port) and kafka_ready(
            address, wait_s=wait_s
        )
    return port_open(config.infra_host, config.mongo_port) and mongo_ready(address, wait_s=wait_s)


def _ensure_embedded(config: StackConfig, name: str, port: int) -> bool:
    """Start the embedded server ``name`` unless it runs and answers; True if started.

    What a crash leaves behind is cleared first: a pid file whose process is gone, a
    recorded process that is alive but does not answer (stopped, hung), and a process
    of ours that runs without a pid file (the pid file was lost).
    """
    record = running_record(config, name)
    if record is not None:
        try:
            # Ours and alive; it may still be starting (a concurrent or interrupted `up`).
            wait_until(
                lambda left: _answers(config, name, record.address, wait_s=left),
                what=f"{name} (pid {record.pid})",
                timeout_s=_HALF_DEAD_AFTER_S,
            )
        except StartupError:
            _say(f"{name}: pid {record.pid} runs but does not answer; stopping it")
            stop_pids([record.pid], timeout_s=_INFRA_STOP_TIMEOUT_S, group=True)
        else:
            _say(f"{name}: already running (pid {record.pid})")
            return False
    elif (stale := read_record(config, name)) is not None:
        _say(f"{name}: pid {stale.pid} from an earlier run is gone (stale pid file removed)")
    remove_record(config, name)
    _stop_strays(config, name, config.embedded_command(name))
    busy = [p for p in _ports_of(config, name) if port_open(config.infra_host, p)]
    if busy:
        raise StackError(_port_taken_message(name, busy))
    started = time.monotonic()
    try:
        server = _start_embedded(config, name)
    except StartupError as exc:
        raise StackError(str(exc)) from exc
    write_record(config, name, pid=server.pid, command=server.command, address=server.address)
    _say(f"{name}: started (pid {server.pid}, ready in {time.monotonic() - started:.2f}s)")
    return True


def _start_embedded(config: StackConfig, name: str) -> EmbeddedServer:
    host = config.infra_host
    if name == S3:
        server, _ = start_object_store(
            data_dir=config.kafka_log_dir,
            ports=config.object_store_ports,
            log_path=config.log_path(name),
            detached=True,
            host=host,
        )
        return server
    if name == KAFKA:
        durable = config.durable_log
        return start_kafka(
            port=config.kafka_port,
            log_path=config.log_path(name),
            detached=True,
            host=host,
            storage_engine=S3_STORAGE if durable else MEMORY_STORAGE,
            env={**os.environ, **config.object_store().broker_env()} if durable else None,
        )
    return start_mongo(
        port=config.mongo_port,
        storage_path=config.mongo_data,
        log_path=config.log_path(name),
        detached=True,
        host=host,
        command=config.embedded_command(name),
    )


def _ports_of(config: StackConfig, name: str) -> tuple[int, ...]:
    if name == S3:
        return config.object_store_ports.all()
    return (config.kafka_port,) if name == KAFKA else (config.mongo_port,)


def _port_taken_message(name: str, ports: Sequence[int]) -> str:
    listed = ", ".join(str(p) for p in ports)
    if name == S3:
        return (
            f"s3: port(s) {listed} taken by a process `make up` did not start. Stop it, or "
            "set S3_PORT to run the object store elsewhere (it uses S3_PORT and the 7 after it)."
        )
    variable = "KAFKA" if name == KAFKA else "MONGODB"
    target = "KAFKA_BOOTSTRAP_SERVERS" if name == KAFKA else "MONGODB_URI"
    return (
        f"{name}: port {listed} is taken by a process `make up` did not start. Stop it, "
        f"set {variable}_PORT to run the embedded {name} elsewhere, or set {target} "
        "to use the server that is there."
    )


def _stop_strays(
    config: StackConfig, name: str, command: Sequence[str], cwd: Path | None = None
) -> None:
    """Stop processes running exactly ``command`` (in ``cwd``, when given) that no pid
    file knows: left behind by an ``up`` that died between starting them and writing
    their pid file, or whose pid file was deleted. The command lines name this
    checkout's data directories and ports, so nobody else's process matches."""
    strays = _processes_running(command, cwd=cwd)
    if not strays:
        return
    stop_pids(strays, timeout_s=_INFRA_STOP_TIMEOUT_S, group=False)
    _say(
        f"{name}: stopped {len(strays)} process(es) left by an earlier run (pid {', '.join(map(str, strays))})"
    )


def _processes_running(command: Sequence[str], *, cwd: Path | None) -> list[int]:
    proc = Path("/proc")
    if not proc.is_dir():
        return []  # no /proc (macOS): only pid files can tell
    wanted = " ".join(command)
    found: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        if process_command(pid) != wanted or not pid_alive(pid):
            continue
        if cwd is not None:
            try:
                if Path(os.readlink(entry / "cwd")).resolve() != cwd.resolve():
                    continue
            except OSError:
                continue
        found.append(pid)
    return found


def _wait_external(check: Callable[[float], bool], *, what: str) -> None:
    try:
        wait_until(check, what=what, timeout_s=DEFAULT_START_TIMEOUT_S)
    except StartupError as exc:
        raise StackError(f"{exc}; is it running and are the credentials right?") from exc


def _ensure_topics(config: StackConfig) -> None:
    topics = [f"{config.topic_prefix}{topic}" for topic in ALL_TOPICS]
    try:
        created = ensure_topics(
            config.kafka_bootstrap_servers,
            topics,
            partitions=config.partitions,
            replication_factor=config.replication_factor,
            options=config.kafka_client_options(),
        )
    except StartupError as exc:
        raise StackError(str(exc)) from exc
    if created:
        _say(f"topics: created {len(created)} ({config.partitions} partitions each)")
    else:
        _say(f"topics: all {len(topics)} exist")


def _running_services(config: StackConfig) -> list[str]:
    return [spec.name for spec in config.services if running_record(config, spec.name)]


def _ensure_services(config: StackConfig) -> dict[str, subprocess.Popen[bytes]]:
    """Start each service that is not running; returns the ones started now."""
    spawned: dict[str, subprocess.Popen[bytes]] = {}
    for spec in config.services:
        record = running_record(config, spec.name)
        if record is not None:
            _say(f"{spec.name}: already running (pid {record.pid})")
            continue
        if (stale := read_record(config, spec.name)) is not None:
            _say(
                f"{spec.name}: pid {stale.pid} from an earlier run is gone (stale pid file removed)"
            )
        remove_record(config, spec.name)
        command = [sys.executable, "-m", spec.name]
        _stop_strays(config, spec.name, command, cwd=config.root)
        if port_open(spec.host, spec.port):
            raise StackError(
                f"{spec.name}: port {spec.port} is taken by a process `make up` did not "
                f"start. Stop it or set {spec.env_prefix}_PORT."
            )
        if importlib.util.find_spec(spec.name) is None:
            raise StackError(
                f"{spec.name}: the package is not installed in {sys.prefix} (run `make sync`)"
            )
        process = spawn(
            command,
            log_path=config.log_path(spec.name),
            detached=True,
            env=config.service_env(spec),
            cwd=config.root,
        )
        write_record(config, spec.name, pid=process.pid, command=command, address=spec.base_url)
        spawned[spec.name] = process
        _say(f"{spec.name}: started (pid {process.pid}) on {spec.base_url}")
    return spawned


def _wait_services_ready(
    config: StackConfig, spawned: Mapping[str, subprocess.Popen[bytes]]
) -> None:
    """Poll every service's ``/health/ready`` until all answer 200.

    Fails at once when a service process exits, and at the deadline otherwise; either
    way the message names the service, its last readiness answer and its log tail.
    Whatever runs is left running, so ``make status`` and the logs can be inspected;
    ``make down`` stops it.
    """
    started = time.monotonic()
    deadline = Deadline(config.ready_timeout_s)
    pending = {spec.name: spec for spec in config.services}
    last_answer: dict[str, str] = {}
    while pending:
        for name, spec in list(pending.items()):
            exit_code = _exit_code(config, name, spawned.get(name))
            if exit_code is not None:
                remove_record(config, name)
                raise StackError(
                    f"{name} exited with code {exit_code} while starting; "
                    f"last lines of {config.log_path(name)}:\n{log_tail(config.log_path(name))}"
                )
            status, body = http_get(f"{spec.base_url}/health/ready")
            if status == 200:
                del pending[name]
                _say(f"{name}: ready ({time.monotonic() - started:.1f}s)")
            else:
                last_answer[name] = f"{status} {body}" if status else body
        if pending and deadline.expired:
            raise StackError(
                "\n".join(
                    f"{name}: not ready within {config.ready_timeout_s:.0f}s "
                    f"(GET {pending[name].base_url}/health/ready -> {last_answer.get(name, '?')}); "
                    f"last lines of {config.log_path(name)}:\n{log_tail(config.log_path(name))}"
                    for name in pending
                )
                + "\nit is still running: see `make status`; `make down` stops everything"
            )
        if pending:
            time.sleep(_READY_POLL_INTERVAL_S)


def _exit_code(
    config: StackConfig, name: str, process: subprocess.Popen[bytes] | None
) -> int | None:
    """The exit code if the service has died, else None. A service started by an
    earlier ``up`` is not our child, so its code is unknown: -1."""
    if process is not None:
        return process.poll()
    record = read_record(config, name)
    if record is None or not pid_alive(record.pid):
        return -1
    return None


def http_get(url: str, *, timeout_s: float = 2.0) -> tuple[int | None, str]:
    """``(status, body)``; ``(None, reason)`` when nothing answers."""
    try:
        # Only http:// URLs built from our own configuration reach this.
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            return int(response.status), _short(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _short(exc.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return None, f"no answer ({reason})"


def _short(body: bytes, limit: int = 300) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else text[:limit] + " ..."


def redact(uri: str) -> str:
    """A connection URI without its password, for printing."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", uri)


def _print_summary(config: StackConfig, *, infra_only: bool, elapsed_s: float) -> None:
    if config.external_kafka:
        kafka_note = "external"
    elif config.durable_log:
        kafka_note = (
            f"embedded Tansu, log on disk in {_relative(config, config.kafka_log_dir)} "
            f"through a local S3 store on {config.object_store_ports.s3}"
        )
    else:
        kafka_note = "embedded Tansu, log IN MEMORY (KAFKA_LOG=memory): lost at every stop"
    mongo_note = (
        "external"
        if config.external_mongo
        else f"embedded SecantusDB, data in {_relative(config, config.mongo_data)}"
    )
    lines = [f"seminar-ops is up ({elapsed_s:.1f}s):"]
    if not infra_only:
        lines += [f"  {spec.name:<13} {spec.base_url}/docs" for spec in config.services]
        metrics = next(spec for spec in config.services if spec.name == "metrics")
        lines.append(f"  {'dashboard':<13} {metrics.base_url}/")
    lines += [
        f"  {'kafka':<13} {config.kafka_bootstrap_servers} ({kafka_note})",
        f"  {'mongodb':<13} {redact(config.mongodb_uri)} ({mongo_note})",
        f"logs and pid files in {_relative(config, config.run_dir)}/; `make down` stops it all "
        "and keeps the data; `make clean` wipes it",
    ]
    _say("\n".join(lines))


def _relative(config: StackConfig, path: Path) -> str:
    try:
        return str(path.relative_to(config.root))
    except ValueError:
        return str(path)


# --- down ------------------------------------------------------------------------------


def down(config: StackConfig) -> None:
    """Stop what ``up`` started, losing nothing: the services' doors first, then, once
    they have passed on what they hold (or the drain timeout ran out), the services,
    the broker and the database, and last the object store holding the broker's log.
    The data stays."""
    with _locked(config):
        services = [
            record
            for spec in config.services
            if (record := running_record(config, spec.name)) is not None
        ]
        if services:
            drain(config, services)
        stopped_any = _stop_group(config, [spec.name for spec in config.services])
        stopped_any |= _stop_group(config, [MONGODB, KAFKA])
        stopped_any |= _stop_group(config, [S3])
    if not stopped_any:
        _say("nothing was running")


@dataclass(frozen=True)
class DrainState:
    """One look at what the running services still hold."""

    outbox_backlog: Mapping[str, int | None]  # None: the service did not say
    lag: Mapping[str, int]  # per consumer group, over the internal topics
    ends: Mapping[str, int]  # records per internal topic: a change means new work
    inbound_waiting: int  # inbound requests published but not consumed (doors closed)

    @property
    def empty(self) -> bool:
        return all(v == 0 for v in self.outbox_backlog.values()) and not any(self.lag.values())

    def describe(self) -> str:
        parts = [
            f"{name} outbox {count if count is not None else 'unknown'}"
            for name, count in self.outbox_backlog.items()
            if count != 0
        ]
        parts += [f"{group} behind by {lag}" for group, lag in self.lag.items() if lag]
        return ", ".join(parts) or "nothing held"


def drain(config: StackConfig, services: Sequence[PidRecord]) -> DrainState | None:
    """Close the services' doors and wait until they have passed on what they hold:
    every outbox empty and every consumer group at the end of every internal topic,
    twice in a row with no record appended in between. Returns the last state seen
    (None when the broker could not be asked); says what it did either way."""
    started = time.monotonic()
    for record in services:
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGUSR1)
    _say(
        "doors closed ("
        + ", ".join(r.name for r in services)
        + "): HTTP answers 503, inbound requests wait on the broker; passing on what is in flight"
    )
    names = [r.name for r in services]
    deadline = Deadline(config.drain_timeout_s)
    previous: DrainState | None = None
    state: DrainState | None = None
    while True:
        try:
            state = _drain_state(config, names)
        except StartupError as exc:
            _say(f"drain: cannot see the consumer groups ({exc}); stopping without waiting")
            return None
        if state.empty and previous is not None and previous.empty and previous.ends == state.ends:
            waiting = (
                f"; {state.inbound_waiting} inbound request(s) wait on {REGISTRATION_REQUESTS} "
                "for the next start"
                if state.inbound_waiting
                else ""
            )
            _say(
                f"drained in {time.monotonic() - started:.1f}s: outboxes empty, every "
                f"consumer group at the end of every internal topic{waiting}"
            )
            return state
        if deadline.expired:
            _say(
                f"not drained within {config.drain_timeout_s:.0f}s ({state.describe()}); "
                "stopping anyway: what is left stays in the outbox and on the broker and "
                "goes on at the next `make up`"
            )
            return state
        previous = state
        time.sleep(_DRAIN_POLL_INTERVAL_S)


def _drain_state(config: StackConfig, names: Sequence[str]) -> DrainState:
    # Lag first, outboxes after: an event consumed (offset committed) before the lag
    # was read has its outgoing events in the outbox already, so they are counted.
    ends, committed = run_coroutine(_offsets(config, names))
    backlog: dict[str, int | None] = {}
    for spec in config.services:
        if spec.name in names:
            status, body = http_get(f"{spec.base_url}/health/drain")
            backlog[spec.name] = _backlog(body) if status == 200 else None
    lag: dict[str, int] = {}
    inbound_waiting = 0
    inbound = config.kafka_settings().topic(REGISTRATION_REQUESTS)
    for group, offsets in committed.items():
        for (topic, partition), offset in offsets.items():
            behind = max(0, ends.get((topic, partition), 0) - max(offset, 0))
            if topic == inbound:
                inbound_waiting += behind
            else:
                lag[group] = lag.get(group, 0) + behind
    per_topic: dict[str, int] = {}
    for (topic, _), end in ends.items():
        per_topic[topic] = per_topic.get(topic, 0) + end
    return DrainState(
        outbox_backlog=backlog, lag=lag, ends=per_topic, inbound_waiting=inbound_waiting
    )


async def _committed(
    options: Mapping[str, Any], group: str, partitions: Sequence[Any]
) -> dict[tuple[str, int], int]:
    """The group's committed offsets (-1: none). A consumer that names the group but
    subscribes to nothing asks the coordinator without joining the group (the admin
    client's OffsetFetch is not understood by the embedded broker)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(**options, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offsets: dict[tuple[str, int], int] = {}
        for tp in partitions:
            offset = await consumer.committed(tp)
            offsets[(tp.topic, tp.partition)] = -1 if offset is None else offset
        return offsets
    finally:
        await consumer.stop()


def _backlog(body: str) -> int | None:
    try:
        value = json.loads(body).get("outbox_backlog")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


async def _offsets(
    config: StackConfig, names: Sequence[str]
) -> tuple[dict[tuple[str, int], int], dict[str, dict[tuple[str, int], int]]]:
    """Where every partition of the services' topics ends, and each group's committed
    offset on its own topics (-1: nothing committed yet)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    settings = config.kafka_settings()
    options = {**config.kafka_client_options(), "bootstrap_servers": settings.bootstrap_servers}
    topics = sorted({settings.topic(t) for name in names for t in SUBSCRIPTIONS.get(name, ())})
    reader = AIOKafkaConsumer(**options, enable_auto_commit=False)
    try:
        await reader.start()
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(reader.partitions_for_topic(topic) or ())
        ]
        reader.assign(partitions)
        ends = {
            (tp.topic, tp.partition): end
            for tp, end in (await end_offsets(reader, partitions)).items()
        }
        committed: dict[str, dict[tuple[str, int], int]] = {}
        for name in names:
            own = {settings.topic(t) for t in SUBSCRIPTIONS.get(name, ())}
            committed[name] = await _committed(
                options, settings.group(name), [tp for tp in partitions if tp.topic in own]
            )
    except KafkaError as exc:
        raise StartupError(f"Kafka at {settings.bootstrap_servers}: {exc!r}") from exc
    finally:
        await reader.stop()
    return ends, committed


def _stop_group(config: StackConfig, names: Sequence[str]) -> bool:
    records: list[PidRecord] = []
    for name in names:
        if not config.pid_path(name).exists():
            continue
        record = running_record(config, name)
        if record is None:
            _say(f"{name}: not running (stale pid file removed)")
            remove_record(config, name)
        else:
            records.append(record)
    if not records:
        return False
    started = time.monotonic()
    if names[0] in SERVICE_PORTS:
        timeout_s = _SERVICE_STOP_TIMEOUT_S
    elif names[0] == S3:
        timeout_s = _OBJECT_STORE_STOP_TIMEOUT_S
    else:
        timeout_s = _INFRA_STOP_TIMEOUT_S
    killed = set(stop_pids([r.pid for r in records], timeout_s=timeout_s, group=True))
    for record in records:
        remove_record(config, record.name)
        if record.pid not in killed:
            how = "stopped"
        elif record.name == S3:
            # Not a failure: see _OBJECT_STORE_STOP_TIMEOUT_S.
            how = "stopped (its data was already on disk; the filer's 15 s wait was cut short)"
        else:
            how = "killed after not stopping in time"
        _say(f"{record.name}: {how} (pid {record.pid}, {time.monotonic() - started:.1f}s)")
    return True


# --- status ----------------------------------------------------------------------------


def status(config: StackConfig) -> bool:
    """Print what runs; True when everything ``up`` would start is running and ready."""
    rows: list[tuple[str, str, str]] = []
    healthy = True
    if config.durable_log:
        state, healthy = _process_state(config, S3, config.infra_host, config.s3_port)
        rows.append((S3, state, f"{config.object_store().endpoint} ({config.kafka_log_dir})"))
    for name, external, port, address in (
        (KAFKA, config.external_kafka, config.kafka_port, config.kafka_bootstrap_servers),
        (MONGODB, config.external_mongo, config.mongo_port, redact(config.mongodb_uri)),
    ):
        if external:
            rows.append((name, "external", address))
            continue
        state, ok = _process_state(config, name, config.infra_host, port)
        healthy &= ok
        rows.append((name, state, address))
    for spec in config.services:
        state, ok = _process_state(config, spec.name, spec.host, spec.port)
        if ok:
            code, _ = http_get(f"{spec.base_url}/health/ready")
            ok = code == 200
            state += ", ready" if ok else f", not ready ({code or 'no answer'})"
        healthy &= ok
        rows.append((spec.name, state, spec.base_url))
    for name, state, address in rows:
        _say(f"{name:<13} {state:<42} {address}")
    _print_development_warnings(config)
    return healthy


def _print_development_warnings(config: StackConfig) -> None:
    """Said on stdout, not only in the services' logs: nobody reads those before
    trusting a stack with real data."""
    for warning in config.development_warnings():
        _say(f"WARNING: {warning}")
    if "AUTH_JWKS" in config.identity_env():
        _say(
            "tokens: `make token ROLE=participant SUB=p-1` prints a development JWT "
            f"(keys in {_relative(config, identity_directory(config.run_dir))}/)"
        )


def _process_state(config: StackConfig, name: str, host: str, port: int) -> tuple[str, bool]:
    record = running_record(config, name)
    if record is not None:
        return f"running (pid {record.pid})", True
    if port_open(host, port):
        return f"port {port} used by another process", False
    if config.pid_path(name).exists():
        return "stopped (stale pid file)", False
    return "stopped", False


# --- command line ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="seminarops-stack",
        description="Run seminar-ops locally: embedded broker and database plus the services.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start what is missing, wait until all is ready")
    up_parser.add_argument(
        "--infra-only",
        action="store_true",
        help="only the broker, the database and the topics (run the services yourself)",
    )
    commands.add_parser("down", help="stop what `up` started (the database files stay)")
    commands.add_parser("status", help="what runs (exit code 3 when something is missing)")
    args = parser.parse_args(argv)

    try:
        config = StackConfig.from_env()
        if args.command == "up":
            up(config, infra_only=args.infra_only)
        elif args.command == "down":
            down(config)
        elif not status(config):
            return 3  # the LSB code for "not running", so scripts can ask `status`
    except (StackError, StartupError) as exc:
        print(f"seminarops-stack {args.command}: {exc}", file=sys.stderr, flush=True)  # noqa: T201
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the reader left: not our failure to report.
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
