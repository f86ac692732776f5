"""The whole system on one machine: ``python -m seminarops_shared.devstack up|down|status``
(``make up`` / ``make down`` / ``make status``).

``up`` is idempotent: it starts what is not running (the embedded Kafka-compatible
broker, the embedded MongoDB-compatible database, the topics, the four services), leaves
alone what is, and returns once every ``/health/ready`` answers 200. ``down`` stops only
what ``up`` started. State lives in ``.run/`` at the repository root:

- ``<name>.pid``: JSON ``{"pid", "command", "address", "started_at"}``. The command is
  kept so a pid the kernel has since handed to an unrelated process is recognised as
  stale and never signalled.
- ``<name>.log``: stdout and stderr of each process, appended, one header per start.
- ``mongo-data/``: the database files; they survive ``down`` and restarts.

The embedded broker keeps its log in memory only: after ``down`` (or a crash) the
topics are recreated empty, while the database keeps its state.

Environment:

- ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI``: use that cluster / deployment; no
  embedded server is started for it. ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*`` and
  ``KAFKA_SSL_CAFILE`` are honoured for topic creation: they are read into the same
  ``KafkaSettings`` as the services read them.
- ``KAFKA_PORT`` (9092) / ``MONGODB_PORT`` (27017): ports of the embedded servers.
- ``KAFKA_PARTITIONS`` (6), ``KAFKA_REPLICATION_FACTOR`` (1), ``KAFKA_TOPIC_PREFIX``:
  how the topics are created, matching the services' ``KafkaSettings``.
- ``<SERVICE>_PORT`` / ``<SERVICE>_HOST``: where each service listens.
- ``SEMINAROPS_READY_TIMEOUT_S`` (120): how long ``up`` waits for the services.
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
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from .events.topics import ALL_TOPICS
from .kafka_clients import client_options
from .processes import (
    DEFAULT_START_TIMEOUT_S,
    LOCALHOST,
    Deadline,
    StartupError,
    connect_host,
    ensure_topics,
    is_same_process,
    kafka_address,
    kafka_ready,
    log_tail,
    mongo_ready,
    mongo_uri,
    pid_alive,
    port_open,
    spawn,
    start_kafka,
    start_mongo,
    stop_pids,
    utc_timestamp,
    wait_until,
)
from .settings import KafkaSettings

SERVICE_PORTS: Mapping[str, int] = {
    "registration": 8001,
    "seminar": 8002,
    "feedback": 8003,
    "metrics": 8004,
}
KAFKA = "kafka"
MONGODB = "mongodb"

_DEFAULT_READY_TIMEOUT_S = 120.0
# Services drain their consumers and the outbox relay on SIGTERM; the database
# checkpoints. Both normally take well under a second.
_SERVICE_STOP_TIMEOUT_S = 20.0
_INFRA_STOP_TIMEOUT_S = 20.0
_READY_POLL_INTERVAL_S = 0.2


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
    external_kafka: str | None
    external_mongo: str | None
    partitions: int
    replication_factor: int
    topic_prefix: str
    services: tuple[ServiceSpec, ...]
    ready_timeout_s: float
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
        return cls(
            root=root or find_root(),
            kafka_port=_port_env(env, "KAFKA_PORT", 9092),
            mongo_port=_port_env(env, "MONGODB_PORT", 27017),
            external_kafka=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            external_mongo=env.get("MONGODB_URI") or None,
            partitions=_int_env(env, "KAFKA_PARTITIONS", 6),
            replication_factor=_int_env(env, "KAFKA_REPLICATION_FACTOR", 1),
            topic_prefix=env.get("KAFKA_TOPIC_PREFIX", ""),
            services=services,
            ready_timeout_s=float(
                _int_env(env, "SEMINAROPS_READY_TIMEOUT_S", int(_DEFAULT_READY_TIMEOUT_S))
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
        return env


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
        kafka_started = _ensure_kafka(config)
        _ensure_mongo(config)
        _ensure_topics(config)
        if not infra_only:
            running_before = _running_services(config)
            if kafka_started and running_before:
                _say(
                    "note: the broker was (re)started empty while "
                    + ", ".join(running_before)
                    + " kept running; `make down && make up` gives them a clean start"
                )
            spawned = _ensure_services(config)
            _wait_services_ready(config, spawned)
    _print_summary(config, infra_only=infra_only, elapsed_s=time.monotonic() - started_at)


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
    return _ensure_embedded(config, KAFKA, config.kafka_port, ready=kafka_ready)


def _ensure_mongo(config: StackConfig) -> bool:
    if config.external_mongo:
        _say(f"mongodb: using MONGODB_URI={redact(config.external_mongo)}")
        _wait_external(
            lambda left: mongo_ready(config.external_mongo or "", wait_s=left),
            what=f"MongoDB at {redact(config.external_mongo)}",
        )
        return False
    return _ensure_embedded(config, MONGODB, config.mongo_port, ready=mongo_ready)


def _ensure_embedded(config: StackConfig, name: str, port: int, *, ready: _ReadyCheck) -> bool:
    record = running_record(config, name)
    if record is not None:
        # Ours and alive; it may still be starting (a concurrent or interrupted `up`).
        wait_until(
            lambda left: port_open(config.infra_host, port) and ready(record.address, wait_s=left),
            what=f"{name} (pid {record.pid})",
            timeout_s=DEFAULT_START_TIMEOUT_S,
            log_path=config.log_path(name),
        )
        _say(f"{name}: already running (pid {record.pid})")
        return False
    remove_record(config, name)
    if port_open(config.infra_host, port):
        variable = "KAFKA" if name == KAFKA else "MONGODB"
        target = "KAFKA_BOOTSTRAP_SERVERS" if name == KAFKA else "MONGODB_URI"
        raise StackError(
            f"{name}: port {port} is taken by a process `make up` did not start. Stop it, "
            f"set {variable}_PORT to run the embedded {name} elsewhere, or set {target} "
            "to use the server that is there."
        )
    started = time.monotonic()
    try:
        if name == KAFKA:
            server = start_kafka(
                port=port, log_path=config.log_path(name), detached=True, host=config.infra_host
            )
        else:
            server = start_mongo(
                port=port,
                storage_path=config.mongo_data,
                config_path=config.run_dir / "secantusd.toml",
                log_path=config.log_path(name),
                detached=True,
                host=config.infra_host,
            )
    except StartupError as exc:
        raise StackError(str(exc)) from exc
    write_record(config, name, pid=server.pid, command=server.command, address=server.address)
    _say(f"{name}: started (pid {server.pid}, ready in {time.monotonic() - started:.2f}s)")
    return True


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
        remove_record(config, spec.name)
        if port_open(spec.host, spec.port):
            raise StackError(
                f"{spec.name}: port {spec.port} is taken by a process `make up` did not "
                f"start. Stop it or set {spec.env_prefix}_PORT."
            )
        if importlib.util.find_spec(spec.name) is None:
            raise StackError(
                f"{spec.name}: the package is not installed in {sys.prefix} (run `make sync`)"
            )
        command = [sys.executable, "-m", spec.name]
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
    kafka_note = "external" if config.external_kafka else "embedded Tansu, log kept in memory"
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
        f"logs and pid files in {_relative(config, config.run_dir)}/; `make down` stops it all",
    ]
    _say("\n".join(lines))


def _relative(config: StackConfig, path: Path) -> str:
    try:
        return str(path.relative_to(config.root))
    except ValueError:
        return str(path)


# --- down ------------------------------------------------------------------------------


def down(config: StackConfig) -> None:
    """Stop what ``up`` started: the services first (they finish their in-flight work
    against a live broker and database), then the broker and the database. The
    database files stay."""
    with _locked(config):
        stopped_any = _stop_group(config, [spec.name for spec in config.services])
        stopped_any |= _stop_group(config, [MONGODB, KAFKA])
    if not stopped_any:
        _say("nothing was running")


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
    timeout_s = _SERVICE_STOP_TIMEOUT_S if names[0] in SERVICE_PORTS else _INFRA_STOP_TIMEOUT_S
    killed = set(stop_pids([r.pid for r in records], timeout_s=timeout_s, group=True))
    for record in records:
        remove_record(config, record.name)
        how = "killed after not stopping in time" if record.pid in killed else "stopped"
        _say(f"{record.name}: {how} (pid {record.pid}, {time.monotonic() - started:.1f}s)")
    return True


# --- status ----------------------------------------------------------------------------


def status(config: StackConfig) -> bool:
    """Print what runs; True when everything ``up`` would start is running and ready."""
    rows: list[tuple[str, str, str]] = []
    healthy = True
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
    return healthy


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
