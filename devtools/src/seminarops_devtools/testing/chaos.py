"""Processes a fault-injection test can kill and restart: the Tansu broker keeping its
log in a local S3 store (``processes.start_object_store``: SeaweedFS, as ``make up``
runs it), so the log survives a broker restart; the database on a fixed port; and the
services as real ``python -m <service>`` processes.

Everything here is a child process in the caller's process group (never detached), so
whoever stops the test run stops it too. Ports are picked once and kept across
restarts: clients hold the addresses.

Tansu (0.6) and ListOffsets: its answer for the *latest* offset is not the high
watermark (it can be far lower), with the memory and the S3 storage engines alike;
the high watermark in fetch responses is right. Readers that need "everything on the
topic now" must go by the fetch high watermark (``AIOKafkaConsumer.highwater``), not
by ``end_offsets``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..processes import (
    DEFAULT_START_TIMEOUT_S,
    LOCALHOST,
    EmbeddedServer,
    ObjectStore,
    free_port,
    log_tail,
    mongo_command,
    spawn,
    start_kafka,
    start_mongo,
    stop_popen,
    wait_until,
)

__all__ = [
    "ServiceProcess",
    "start_mongo_on",
    "start_tansu_s3",
]


def _http_ok(url: str, *, method: str = "GET", timeout_s: float = 1.0) -> bool:
    request = urllib.request.Request(url, method=method)  # noqa: S310 - local http URL
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError):
        return False


def start_tansu_s3(
    s3: ObjectStore,
    *,
    log_path: Path,
    port: int | None = None,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> EmbeddedServer:
    """Tansu with its log in ``s3``'s bucket, on ``port`` (a free one if None); returns
    once it answers a metadata request. Started again on the same port and bucket, it
    serves the same topics, records and committed offsets."""
    return start_kafka(
        port=port or free_port(),
        log_path=log_path,
        detached=False,
        storage_engine=f"s3://{s3.bucket}/",
        env={**os.environ, **s3.broker_env()},
        timeout_s=timeout_s,
    )


# Runs SecantusDB's own command line with another transaction lifetime: mongod's
# ``transactionLifetimeLimitSeconds`` server parameter, which SecantusDB 0.7 has as a
# constructor argument only (60 s, like mongod) and not as a flag or setParameter.
_MONGO_LAUNCHER = """
import sys
import secantus.server
from secantus.cli import main
lifetime = float(sys.argv[1])
original = secantus.server.SecantusDBServer.__init__
def init(self, *args, **kwargs):
    kwargs.setdefault("transaction_lifetime_seconds", lifetime)
    original(self, *args, **kwargs)
secantus.server.SecantusDBServer.__init__ = init
raise SystemExit(main(sys.argv[2:]))
"""


def start_mongo_on(
    workdir: Path,
    *,
    port: int | None = None,
    transaction_lifetime_s: float | None = None,
    sync_on_commit: bool = False,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> EmbeddedServer:
    """SecantusDB with its files in ``workdir/mongo-data`` on ``port`` (a free one if
    None). Started again with the same arguments it reopens the same files.

    ``transaction_lifetime_s``: after how long a transaction nobody finishes is aborted
    (mongod's ``transactionLifetimeLimitSeconds``, 60 s by default). A client killed in
    the middle of a transaction leaves it open, holding its writes: whoever writes the
    same documents (the restarted replica redelivered the same batch, say) gets write
    conflicts until then.

    ``sync_on_commit``: fsync the journal at every commit (see ``mongo_command``).
    """
    port = port or free_port()
    storage_path = workdir / "mongo-data"
    command = mongo_command(
        host=LOCALHOST,
        port=port,
        storage_path=storage_path,
        config_path=workdir / "secantusd.toml",
        sync_on_commit=sync_on_commit,
    )
    if transaction_lifetime_s is not None:
        # [python, -m, secantus, *args] -> [python, -c, launcher, lifetime, *args]
        command = [command[0], "-c", _MONGO_LAUNCHER, str(transaction_lifetime_s), *command[3:]]
    return start_mongo(
        port=port,
        storage_path=storage_path,
        log_path=workdir / "mongodb.log",
        detached=False,
        command=command,
        timeout_s=timeout_s,
    )


@dataclass
class ServiceProcess:
    """One replica of a service as a real process: ``python -m <module>`` with ``env``.

    ``start`` spawns it, ``wait_ready`` polls ``/health/ready``; ``kill`` sends any
    signal (SIGKILL: a crash; SIGTERM: a graceful stop) and waits for the exit. The port
    stays the same across restarts.
    """

    name: str
    module: str
    port: int
    env: Mapping[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is running already")
        self.process = spawn(
            [sys.executable, "-m", self.module],
            log_path=self.log_path,
            detached=False,
            env={**os.environ, **self.env},
        )
        self.starts += 1

    def is_ready(self, *, timeout_s: float = 1.0) -> bool:
        return _http_ok(f"{self.url}/health/ready", timeout_s=timeout_s)

    def wait_ready(self, *, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        wait_until(
            lambda left: self.is_ready(timeout_s=min(left, 2.0)),
            what=f"{self.name} on port {self.port}",
            timeout_s=timeout_s,
            process=self.process,
            log_path=self.log_path,
        )

    def kill(self, sig: signal.Signals = signal.SIGKILL, *, timeout_s: float = 30.0) -> int | None:
        """Send ``sig`` and wait for the exit (SIGKILL after ``timeout_s``); the exit code."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(sig)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=5.0)

    def stop(self, *, timeout_s: float = 30.0) -> None:
        if self.process is not None:
            stop_popen(self.process, timeout_s=timeout_s)

    def log(self, *, lines: int = 40) -> str:
        return log_tail(self.log_path, lines=lines)


def send_signal(server: EmbeddedServer, sig: signal.Signals) -> None:
    """SIGSTOP / SIGCONT / SIGKILL to an embedded server (freeze, thaw, crash)."""
    if server.process.poll() is None:
        server.process.send_signal(sig)
