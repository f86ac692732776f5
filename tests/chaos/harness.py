"""The fault suite's machinery: a whole system of real processes, a traffic generator
that keeps a ledger of what the system accepted, and the audit every scenario ends with.

- ``ChaosSystem``: a local S3 store (SeaweedFS, as ``make up`` runs it), Tansu keeping
  its log there (it survives a broker restart), SecantusDB on a fixed port (its files
  survive a restart), and the four services as ``python -m <service>`` processes; any
  of them can be killed (SIGKILL), stopped (SIGTERM), frozen (SIGSTOP) and restarted
  on the same port, and a second replica of each service can join and leave.
  Registration reaches the database and the broker through proxies a scenario can cut
  and slow.
- ``Traffic``: registrations over Kafka and HTTP (some sent twice on purpose),
  cancellations, attendance, completion and evaluations, each retried with the same
  identity until the system accepts it. ``Ledger`` is what was accepted.
- ``EventTail``: reads ``registration.events`` and ``feedback.events`` from the start,
  continuously (the topic is the truth the audit compares the stores with).
- ``audit``: registrations stored (registration service) = registration decisions on
  ``registration.events`` (distinct registration ids, latest version) = the metrics
  funnel = the distinct accepted requests; cancellations, attendance and evaluations the
  same way; no seminar over capacity, nobody waiting while a seat is free.

Nothing waits by sleeping: conditions are polled with deadlines (the traffic generator
paces itself with ``asyncio.sleep``, and retries back off).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient

from registration.domain import registration_id
from seminarops_devtools.processes import (
    LOCALHOST,
    EmbeddedServer,
    ObjectStore,
    ObjectStorePorts,
    ensure_topics,
    free_port,
    mongo_uri,
    start_object_store,
)
from seminarops_devtools.testing.chaos import (
    ServiceProcess,
    send_signal,
    start_mongo_on,
    start_tansu_s3,
)
from seminarops_devtools.testing.disk import SmallDisk
from seminarops_devtools.testing.network import TcpProxy
from seminarops_shared.clock import utc_now
from seminarops_shared.events import Envelope, envelope_for
from seminarops_shared.events.inbound import (
    Participant,
    RegistrationCancellationRequested,
    RegistrationRequested,
)
from seminarops_shared.events.topics import (
    ALL_TOPICS,
    FEEDBACK_EVENTS,
    REGISTRATION_EVENTS,
    REGISTRATION_REQUESTS,
    SUBSCRIPTIONS,
)

SERVICES: tuple[str, ...] = ("registration", "seminar", "feedback", "metrics")
PARTITIONS = 3
# Room for the whole suite's data (a few hundred MB), in memory; a scenario fills it.
DATABASE_DISK_MB = 2048

TOKENS = {
    "operator": ["chaos-operator-token"],
    "platform": ["chaos-platform-token"],
    "participant": ["chaos-participant-token"],
}
OPERATOR = {"Authorization": f"Bearer {TOKENS['operator'][0]}"}
PLATFORM = {"Authorization": f"Bearer {TOKENS['platform'][0]}"}
PARTICIPANT = {"Authorization": f"Bearer {TOKENS['participant'][0]}"}
PLATFORM_SOURCE = "/platform/chaos-portal"

# ``make chaos-full`` (CHAOS_LOAD=full): every scenario at ten times the load, at least
# 1,000 accepted requests over more than 20 seminars; ``make test`` runs the default.
FULL_LOAD = os.environ.get("CHAOS_LOAD", "default") == "full"
SCENARIO_TIMEOUT_S = 900 if FULL_LOAD else 300

# Every accepted operation must have been accepted by then (it is retried until then).
OPERATION_DEADLINE_S = 300.0 if FULL_LOAD else 90.0
# The audit must hold this long after the fault at the latest.
RECOVERY_DEADLINE_S = 300.0 if FULL_LOAD else 90.0
# The traffic's HTTP connections: up to 1,024 in flight, in pools of 32.
HTTP_POOLS = 32
CONNECTIONS_PER_POOL = 32
# A replay (a group reset to earliest) may take as long as the log is; it fails only when
# a group's committed offsets stop moving for this long.
CATCH_UP_STALL_S = 120.0
# A replica killed in the middle of a transaction leaves it open on the server, holding
# its writes, until the database aborts it: mongod's transactionLifetimeLimitSeconds,
# 60 s by default. The batch redelivered to the restarted replica writes the same
# documents (its processed-event markers, at least) and meets write conflicts until
# then, so recovery from a SIGKILL takes up to that long. The suite runs the database
# with 10 s (what we recommend for production too: every transaction here takes well
# under a second) to stay within its CI budget; CHAOS_DB_TRANSACTION_LIFETIME_S=60
# shows the default (measured: 60-65 s to recover from a SIGKILL of metrics).
TRANSACTION_LIFETIME_S = float(os.environ.get("CHAOS_DB_TRANSACTION_LIFETIME_S", "10"))
# The database journals every commit durably (SecantusDB --sync-on-commit; mongod: j:true,
# implied by w:"majority"). Without it SecantusDB loses the last acknowledged commits
# when it is SIGKILLed, and no application can survive its database forgetting
# acknowledged writes (the first runs of the database scenario showed exactly that:
# attendance answered 202 and emitted, then gone from the seminar service's state).


class TrafficError(AssertionError):
    """The system answered something it must never answer (or never accepted a request)."""


# --- the system ----------------------------------------------------------------------------


@dataclass
class ChaosSystem:
    """The broker, the database and the services, all real processes of this test run."""

    workdir: Path
    prefix: str = field(default_factory=lambda: f"chaos{uuid.uuid4().hex[:6]}")
    object_store: EmbeddedServer | None = None
    s3: ObjectStore | None = None
    kafka: EmbeddedServer | None = None
    mongo: EmbeddedServer | None = None
    registration_database_link: TcpProxy | None = None
    registration_broker_link: TcpProxy | None = None
    database_disk: SmallDisk | None = None
    # Partitions per topic (the soak's --partitions: measured, 12 cost the embedded
    # broker's object store more than 3, not less).
    partitions: int = PARTITIONS
    replicas: dict[str, list[ServiceProcess]] = field(default_factory=dict)

    # ---- addresses ----

    @property
    def bootstrap_servers(self) -> str:
        assert self.kafka is not None
        return self.kafka.address

    @property
    def mongodb_uri(self) -> str:
        assert self.mongo is not None
        return self.mongo.address

    def mongodb_uri_for(self, service: str) -> str:
        link = self.registration_database_link
        if service == "registration" and link is not None:
            return mongo_uri(LOCALHOST, link.port)
        return self.mongodb_uri

    def bootstrap_servers_for(self, service: str) -> str:
        link = self.registration_broker_link
        if service == "registration" and link is not None:
            return f"{LOCALHOST}:{link.port}"
        return self.bootstrap_servers

    def topic(self, logical: str) -> str:
        return f"{self.prefix}.{logical}"

    def group(self, service: str) -> str:
        return f"{self.prefix}.{service}"

    def database(self, service: str) -> str:
        return f"{self.prefix}_{service}"

    def primary(self, service: str) -> ServiceProcess:
        return self.replicas[service][0]

    def urls(self, service: str) -> list[str]:
        """Where the running replicas of ``service`` answer (the first one always listed)."""
        running = [r.url for r in self.replicas[service] if r.running]
        return running or [self.primary(service).url]

    # ---- start and stop ----

    def start_infrastructure(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # The broker's log in SeaweedFS, as ``make up`` keeps it (a Python S3 double made
        # every fetch of a long log slow: the broker lists a partition's batch objects
        # for each fetch, and a replay of the whole suite's log crawled).
        self.object_store, self.s3 = start_object_store(
            data_dir=self.workdir / "s3",
            ports=ObjectStorePorts.free(),
            log_path=self.workdir / "s3.log",
            detached=False,
        )
        self.kafka = start_tansu_s3(self.s3, log_path=self.workdir / "kafka.log")
        # The database's files live on a disk of their own that a scenario fills up.
        self.database_disk = SmallDisk(self.workdir / "mongo", size_mb=DATABASE_DISK_MB).mount()
        self.mongo = start_mongo_on(
            self.workdir / "mongo",
            transaction_lifetime_s=TRANSACTION_LIFETIME_S,
            sync_on_commit=True,
        )
        # Registration reaches the database through a proxy the network scenarios cut
        # and slow; it forwards untouched otherwise.
        self.registration_database_link = TcpProxy(LOCALHOST, self.mongo.port).start()
        # And the broker through one that also points the broker's answers (where the
        # partitions' leaders and the group's coordinator are) at itself, so every
        # connection registration makes to the broker goes through it.
        self.registration_broker_link = TcpProxy(LOCALHOST, self.kafka.port, kafka=True).start()
        ensure_topics(
            self.bootstrap_servers,
            [self.topic(t) for t in ALL_TOPICS],
            partitions=self.partitions,
        )

    def service_env(self, service: str, port: int) -> dict[str, str]:
        p = service.upper()
        return {
            f"{p}_PORT": str(port),
            f"{p}_HOST": "127.0.0.1",
            f"{p}_OUTBOX_TAKEOVER_AFTER_S": "2",
            f"{p}_OUTBOX_POLL_INTERVAL_S": "0.5",
            f"{p}_SCHEDULER_POLL_INTERVAL_S": "0.2",
            f"{p}_LOG_LEVEL": "INFO",
            f"{p}_LOG_JSON": "true",
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers_for(service),
            "KAFKA_TOPIC_PREFIX": f"{self.prefix}.",
            "KAFKA_PARTITIONS": str(self.partitions),
            "KAFKA_SESSION_TIMEOUT_MS": "2000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            # Tansu's S3 storage answers a fetch with what it has read from S3 when the
            # fetch's max wait runs out: with a short wait (the pipeline's 25 ms) it reads
            # nothing from the local S3 server, every time, and consumers never advance.
            # Kafka answers at once when it has data, whatever the wait; 500 ms is the
            # Kafka and aiokafka default.
            "KAFKA_FETCH_MAX_WAIT_MS": "500",
            "MONGODB_URI": self.mongodb_uri_for(service),
            "MONGODB_DATABASE_PREFIX": f"{self.prefix}_",
            "AUTH_TOKENS": json.dumps(TOKENS),
        }

    def add_replica(self, service: str) -> ServiceProcess:
        index = len(self.replicas.setdefault(service, []))
        port = free_port()
        replica = ServiceProcess(
            name=f"{service}#{index}",
            module=service,
            port=port,
            env=self.service_env(service, port),
            log_path=self.workdir / f"{service}-{index}.log",
        )
        self.replicas[service].append(replica)
        return replica

    async def start_services(self, services: Iterable[str] = SERVICES) -> None:
        """Start (all at once) the primary replica of each service and wait until ready."""
        replicas = []
        for service in services:
            if service not in self.replicas:
                self.add_replica(service)
            replica = self.primary(service)
            if not replica.running:
                replica.start()
            replicas.append(replica)
        await asyncio.gather(*(asyncio.to_thread(r.wait_ready, timeout_s=90) for r in replicas))

    async def kill(self, service: str, sig: signal.Signals = signal.SIGKILL) -> int | None:
        """Signal the primary replica and wait for it to exit; its exit code."""
        return await asyncio.to_thread(self.primary(service).kill, sig)

    async def restart(self, service: str) -> None:
        replica = self.primary(service)
        if not replica.running:
            replica.start()
        await asyncio.to_thread(replica.wait_ready, timeout_s=90)

    async def ensure_running(self) -> None:
        """Before a scenario: every primary replica runs and is ready (a scenario that
        failed half-way must not take the following ones down with it)."""
        assert self.kafka is not None
        assert self.mongo is not None
        if not self.kafka.running:
            await self.restart_broker()
        if not self.mongo.running:
            await self.restart_database()
        for service in SERVICES:
            for extra in self.replicas[service][1:]:
                if extra.running:
                    await asyncio.to_thread(extra.kill, signal.SIGTERM)
        await self.start_services()

    async def restart_broker(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Crash (or stop) the broker and start it again on the same port and bucket."""
        assert self.kafka is not None
        assert self.s3 is not None
        old = self.kafka
        if old.running:
            old.process.send_signal(sig)
            await asyncio.to_thread(old.process.wait, 30)
        self.kafka = await asyncio.to_thread(
            start_tansu_s3, self.s3, log_path=old.log_path, port=old.port
        )

    async def restart_database(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Crash (or stop) the database and start it again on the same port and files."""
        assert self.mongo is not None
        old = self.mongo
        if old.running:
            old.process.send_signal(sig)
            await asyncio.to_thread(old.process.wait, 60)
        self.mongo = await asyncio.to_thread(
            start_mongo_on,
            self.workdir / "mongo",
            port=old.port,
            transaction_lifetime_s=TRANSACTION_LIFETIME_S,
            sync_on_commit=True,
        )

    def freeze_broker(self) -> None:
        assert self.kafka is not None
        send_signal(self.kafka, signal.SIGSTOP)

    def thaw_broker(self) -> None:
        assert self.kafka is not None
        send_signal(self.kafka, signal.SIGCONT)

    def close(self) -> None:
        running = [r for rs in self.replicas.values() for r in rs if r.running]
        for replica in running:  # all at once: each takes a moment to stop gracefully
            assert replica.process is not None
            replica.process.terminate()
        for replica in running:
            replica.stop(timeout_s=20)
        for server in (self.kafka, self.mongo):
            if server is not None:
                if server.running:
                    send_signal(server, signal.SIGCONT)
                server.stop(timeout_s=20)
        if self.object_store is not None:
            self.object_store.stop(timeout_s=20)
        if self.database_disk is not None:
            self.database_disk.unmount()
        for link in (self.registration_database_link, self.registration_broker_link):
            if link is not None:
                link.close()

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- {replica.name} (pid {replica.pid}) ---\n{replica.log(lines=lines)}"
            for replicas in self.replicas.values()
            for replica in replicas
        )

    # ---- consumer groups ----

    async def committed_offsets(self, service: str) -> dict[TopicPartition, int]:
        """The group's committed offset per partition of its topics (-1: none)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group(service),
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            offsets: dict[TopicPartition, int] = {}
            for tp in self._partitions(service):
                committed = await consumer.committed(tp)
                offsets[tp] = -1 if committed is None else committed
            return offsets
        finally:
            await consumer.stop()

    async def reset_group_to_earliest(self, service: str) -> None:
        """Commit offset 0 on every partition the service's group reads (replay all).

        The service is stopped, but its member can outlive it: Tansu keeps a member that
        was killed, or stopped while joining, in a stable group until another member
        joins, and refuses a commit from outside the group (``UnknownMemberIdError``)
        meanwhile. So the reset joins the group itself: the join evicts the dead member
        once its session expires, the group hands every partition to this one member,
        and the member commits 0 on all of them and leaves."""
        partitions = self._partitions(service)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group(service),
            enable_auto_commit=False,
            session_timeout_ms=2000,
            heartbeat_interval_ms=500,
        )
        await consumer.start()
        try:
            consumer.subscribe(topics=sorted({tp.topic for tp in partitions}))
            deadline = time.monotonic() + 60
            while consumer.assignment() != set(partitions):
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"group {self.group(service)} never handed all partitions to the "
                        f"reset: {sorted(consumer.assignment())}"
                    )
                # Polling drives the join; the records it may return are not used.
                await consumer.getmany(timeout_ms=200, max_records=1)
            await consumer.commit(dict.fromkeys(partitions, 0))
        finally:
            await consumer.stop()

    async def log_ends(self, service: str) -> dict[TopicPartition, int]:
        """Where each partition the service's group reads ends now."""
        ends: dict[TopicPartition, int] = {}
        for logical in SUBSCRIPTIONS[service]:
            ends |= await self.high_watermarks(logical)
        return ends

    async def wait_caught_up(self, service: str, ends: Mapping[TopicPartition, int]) -> None:
        """Until the service's group has committed ``ends`` on every partition. There is
        no deadline for the whole (a replay's length grows with the log's), only for
        progress: it fails when the group's committed offsets have not moved for
        ``CATCH_UP_STALL_S``."""
        progress, moved_at = -1, time.monotonic()
        while True:
            committed = await self.committed_offsets(service)
            if all(committed[tp] >= end for tp, end in ends.items()):
                return
            done = sum(max(0, min(committed[tp], end)) for tp, end in ends.items())
            if done > progress:
                progress, moved_at = done, time.monotonic()
            elif time.monotonic() - moved_at > CATCH_UP_STALL_S:
                behind = {
                    f"{tp.topic}:{tp.partition}": end - committed[tp] for tp, end in ends.items()
                }
                raise AssertionError(
                    f"group {self.group(service)} made no progress for {CATCH_UP_STALL_S}s: "
                    f"behind {behind}"
                )
            await asyncio.sleep(1.0)  # poll interval: each read is a consumer's round trips

    def _partitions(self, service: str) -> list[TopicPartition]:
        return [
            TopicPartition(self.topic(t), p)
            for t in SUBSCRIPTIONS[service]
            for p in range(self.partitions)
        ]

    async def high_watermarks(self, logical: str) -> dict[TopicPartition, int]:
        """Where each partition of a topic ends now: the high watermark a fetch reports
        (not ``end_offsets``: Tansu's ListOffsets answer can be lower). The fetch starts
        at that lower answer, a valid offset near the end: from offset 0 every sample
        read the log's first batches back from the object store (the soak at 200/s
        stopped on this reader's 30 s bound)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(self.topic(logical), p) for p in range(self.partitions)]
            consumer.assign(partitions)
            near_end = await consumer.end_offsets(partitions)
            for tp in partitions:
                consumer.seek(tp, near_end[tp])
            deadline = time.monotonic() + 30
            while any(consumer.highwater(tp) is None for tp in partitions):
                if time.monotonic() > deadline:
                    raise AssertionError(f"no high watermark for {logical} within 30s")
                await consumer.getmany(*partitions, timeout_ms=200, max_records=1)
            return {tp: consumer.highwater(tp) or 0 for tp in partitions}
        finally:
            await consumer.stop()

    async def topic_size(self, logical: str) -> int:
        """Records on a topic now."""
        return sum((await self.high_watermarks(logical)).values())

    async def diagnose(self) -> str:
        """For a failure message: readiness of every replica and each group's lag."""
        lines: list[str] = []
        async with httpx.AsyncClient(timeout=3) as client:
            for service in SERVICES:
                for replica in self.replicas.get(service, []):
                    if not replica.running:
                        continue
                    try:
                        ready = await client.get(f"{replica.url}/health/ready")
                        lines.append(f"{replica.name}: {ready.status_code} {ready.text}")
                    except httpx.HTTPError as error:
                        lines.append(f"{replica.name}: {error!r}")
        try:
            for service, lag in (await self.lags()).items():
                lines.append(f"group {service} lag: {lag or 0}")
        except (KafkaError, AssertionError, OSError) as error:
            lines.append(f"lag unknown: {error!r}")
        return "\n".join(lines)

    async def lags(self) -> dict[str, dict[str, int]]:
        """Each service group's lag per ``topic:partition`` (lagging partitions only)."""
        ends: dict[TopicPartition, int] = {}
        for logical in {t for s in SERVICES for t in SUBSCRIPTIONS[s]}:
            ends |= await self.high_watermarks(logical)
        lags: dict[str, dict[str, int]] = {}
        for service in SERVICES:
            committed = await self.committed_offsets(service)
            lags[service] = {
                f"{tp.topic.removeprefix(self.prefix + '.')}:{tp.partition}": ends[tp] - max(0, c)
                for tp, c in committed.items()
                if ends[tp] - max(0, c)
            }
        return lags

    async def outbox_backlog(self, service: str) -> int:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self.mongodb_uri, serverSelectionTimeoutMS=5000
        )
        try:
            return await client[self.database(service)]["outbox"].count_documents({})
        finally:
            await client.close()


async def service_counter(
    url: str, name: str = "seminarops_events_processed", **labels: str
) -> float:
    """The sum of a counter's samples on a service's ``/metrics`` matching ``labels``."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{url}/metrics")
        response.raise_for_status()
    total = 0.0
    for family in text_string_to_metric_families(response.text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                total += sample.value
    return total


# --- the event log, read continuously -------------------------------------------------------


@dataclass
class Decision:
    event_id: str
    type: str
    registration_id: str
    seminar_id: str
    participant_id: str
    version: int


_STATUS_OF_TYPE = {
    "registration.confirmed.v1": "confirmed",
    "registration.promoted.v1": "confirmed",
    "registration.waitlisted.v1": "waitlisted",
    "registration.cancelled.v1": "cancelled",
    "registration.rejected.v1": "rejected",
}


class EventTail:
    """Reads ``registration.events`` and ``feedback.events`` from offset 0 for as long as
    it runs (a plain consumer, no group); survives broker restarts (the client
    reconnects). ``caught_up`` says whether it has read up to the high watermark of the
    latest fetch on every partition (Tansu's ListOffsets cannot be trusted for that)."""

    def __init__(self, system: ChaosSystem) -> None:
        self._system = system
        self.decisions: dict[str, list[Decision]] = defaultdict(list)
        self.evaluations: dict[str, str] = {}  # evaluation id -> seminar id
        self.records = 0
        self.event_ids: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions = [
            TopicPartition(system.topic(t), p)
            for t in (REGISTRATION_EVENTS, FEEDBACK_EVENTS)
            for p in range(system.partitions)
        ]
        self._positions: dict[TopicPartition, int] = dict.fromkeys(self._partitions, 0)

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._system.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=10_000,
        )
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        for tp in self._partitions:
            self._consumer.seek(tp, 0)
        self._task = asyncio.create_task(self._run(), name="chaos-event-tail")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            except KafkaError:
                await asyncio.sleep(0.2)  # the broker is away; the client reconnects
                continue
            for tp, records in batches.items():
                for record in records:
                    self._positions[tp] = record.offset + 1
                    if record.value:
                        self._add(Envelope.from_json_bytes(record.value))

    def _add(self, envelope: Envelope) -> None:
        self.records += 1
        self.event_ids[envelope.id] += 1
        data = envelope.data
        if envelope.type in _STATUS_OF_TYPE:
            self.decisions[data["registration_id"]].append(
                Decision(
                    event_id=envelope.id,
                    type=envelope.type,
                    registration_id=data["registration_id"],
                    seminar_id=data["seminar_id"],
                    participant_id=data["participant_id"],
                    version=int(data["version"]),
                )
            )
        elif envelope.type == "evaluation.submitted.v1":
            self.evaluations[data["evaluation_id"]] = data["seminar_id"]

    @property
    def caught_up(self) -> bool:
        consumer = self._consumer
        if consumer is None:
            return False
        for tp in self._partitions:
            highwater = consumer.highwater(tp)
            if highwater is None or self._positions[tp] < highwater:
                return False
        return True

    @property
    def duplicate_records(self) -> int:
        """Records whose event id appeared before (a republished outbox entry)."""
        return sum(n - 1 for n in self.event_ids.values())

    def latest(self, registration: str) -> Decision:
        return max(self.decisions[registration], key=lambda d: d.version)


# --- what the system accepted -------------------------------------------------------------


@dataclass
class SeminarPlan:
    id: str
    capacity: int
    year: int
    lifecycle: bool = False


@dataclass
class Ledger:
    """What the system accepted (and what was sent, duplicates and retries included)."""

    seminars: dict[str, SeminarPlan] = field(default_factory=dict)
    # request id -> (seminar, participant); a request resent keeps its id.
    requests: dict[str, tuple[str, str]] = field(default_factory=dict)
    cancelled: set[tuple[str, str]] = field(default_factory=set)
    attended: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    completed: set[str] = field(default_factory=set)
    evaluated: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    sent: Counter[str] = field(default_factory=Counter)
    retries: int = 0

    def merge(self, other: Ledger) -> None:
        self.seminars |= other.seminars
        self.requests |= other.requests
        self.cancelled |= other.cancelled
        for s, ids in other.attended.items():
            self.attended[s] |= ids
        self.completed |= other.completed
        for s, ids in other.evaluated.items():
            self.evaluated[s] |= ids
        self.sent.update(other.sent)
        self.retries += other.retries

    def pairs(self, seminar: str) -> set[str]:
        return {p for s, p in self.requests.values() if s == seminar}

    @property
    def events_sent(self) -> int:
        return sum(self.sent.values())


# --- traffic ------------------------------------------------------------------------------


@dataclass
class StreamPlan:
    """The shape of one scenario's traffic."""

    flow_seminars: int = 3
    requests_per_seminar: int = 40
    capacity: int = 15
    rate_per_s: float = 20.0
    kafka_share: float = 0.5
    duplicate_share: float = 0.2
    cancel_share: float = 0.2
    lifecycle_registrations: int = 16
    attendees: int = 12
    evaluations: int = 9
    # Operations in flight at once (each retried until accepted: with every service
    # down, HTTP ones wait while Kafka ones still go through).
    concurrency: int = 32

    @classmethod
    def for_load(cls, **changes: Any) -> StreamPlan:
        """The default plan, or ten times its load under ``CHAOS_LOAD=full``."""
        if FULL_LOAD:
            changes = {
                "flow_seminars": 20,
                "requests_per_seminar": 60,
                "capacity": 25,
                "rate_per_s": 200.0,
                "concurrency": 128,
                **changes,
            }
        return cls(**changes)


class Traffic:
    """Sends a scenario's traffic and records what was accepted in a ``Ledger``."""

    def __init__(self, system: ChaosSystem, *, seed: int) -> None:
        self.system = system
        self.rng = random.Random(seed)  # test traffic, not cryptography
        # Many small connection pools, not one large one: httpcore's pool walks its
        # connections (and, for each idle one, all of them again) on every request. One
        # pool holding the soak's 800 flows in flight took the generator's whole core,
        # and the soak at 200/s offered under 40 requests/s.
        self._clients = [
            httpx.AsyncClient(
                timeout=httpx.Timeout(10.0, connect=2.0),
                limits=httpx.Limits(
                    max_connections=CONNECTIONS_PER_POOL,
                    max_keepalive_connections=CONNECTIONS_PER_POOL,
                ),
            )
            for _ in range(HTTP_POOLS)
        ]
        self.producer: AIOKafkaProducer | None = None
        self.accepted = 0
        # Answers that said "not now" (status, whether Retry-After came with it): counted.
        self.refusals: Counter[tuple[int, bool]] = Counter()
        self._progress = asyncio.Condition()
        # Time in which no operation's deadline ran (``deadlines_paused``).
        self._paused_total_s = 0.0
        self._paused_since: float | None = None

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.system.bootstrap_servers,
            acks="all",
            request_timeout_ms=5000,
            linger_ms=5,
        )
        await self.producer.start()

    async def close(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self._clients))
        if self.producer is not None:
            await self.producer.stop()

    # ---- retrying one operation ----

    def _paused_s(self) -> float:
        ongoing = 0.0 if self._paused_since is None else time.monotonic() - self._paused_since
        return self._paused_total_s + ongoing

    @contextlib.asynccontextmanager
    async def deadlines_paused(self) -> AsyncIterator[None]:
        """Operations keep being tried, but this time does not count against their
        deadline: a replay keeps every service on old records, and an operation that
        needs a new one decided (an HTTP cancellation of a request sent over Kafka) waits as
        long as it does."""
        self._paused_since = time.monotonic()
        try:
            yield
        finally:
            self._paused_total_s += time.monotonic() - self._paused_since
            self._paused_since = None

    async def _until(
        self,
        what: str,
        attempt: Callable[[], Awaitable[bool | str]],
        *,
        ledger: Ledger | None = None,
        counter: str | None = None,
    ) -> None:
        """Try until ``attempt`` answers True (accepted; any other answer says why not,
        for the error message); counts the accepted send as ``counter`` and every other
        try as a retry."""
        started, paused_before = time.monotonic(), self._paused_s()
        delay = 0.05
        last: object = None
        while True:
            try:
                answer = await attempt()
                if answer is True:
                    if ledger is not None and counter is not None:
                        ledger.sent[counter] += 1
                    return
                last = answer
            except (httpx.HTTPError, KafkaError, TimeoutError, OSError) as error:
                last = error
            if ledger is not None:
                ledger.retries += 1
            counted_s = time.monotonic() - started - (self._paused_s() - paused_before)
            if counted_s > OPERATION_DEADLINE_S:
                raise TrafficError(
                    f"{what}: not accepted within {OPERATION_DEADLINE_S}s ({last!r})"
                )
            await asyncio.sleep(delay)  # back off before the next try
            delay = min(1.0, delay * 2)

    def _url(self, service: str) -> str:
        return self.rng.choice(self.system.urls(service))

    async def _accepted(self) -> None:
        async with self._progress:
            self.accepted += 1
            self._progress.notify_all()

    async def wait_accepted(self, count: int, *, timeout_s: float = 60.0) -> None:
        """Until ``count`` operations of the running stream have been accepted."""
        async with asyncio.timeout(timeout_s), self._progress:
            await self._progress.wait_for(lambda: self.accepted >= count)

    async def _http(
        self, method: str, service: str, path: str, *, headers: Mapping[str, str], body: Any = None
    ) -> httpx.Response:
        return await self.rng.choice(self._clients).request(
            method, f"{self._url(service)}{path}", headers=dict(headers), json=body
        )

    # ---- seminars ----

    async def schedule(
        self, ledger: Ledger, seminar_id: str, *, capacity: int, lifecycle: bool
    ) -> None:
        now = datetime.now(UTC)
        body = {
            "id": seminar_id,
            "title": f"Chaos {seminar_id}",
            "kind": "online_seminar",
            "programme": "etwinning",
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(),
            "timezone": "Europe/Brussels",
            "capacity": capacity,
            "language": "en",
            "theme": "resilience",
        }
        year: list[int] = []

        async def attempt() -> bool | str:
            response = await self._http(
                "POST", "seminar", "/v1/seminars", headers=OPERATOR, body=body
            )
            if response.status_code in {200, 201}:
                year.append(int(response.json()["year"]))
                return True
            return self._retryable(response, "schedule")

        await self._until(f"schedule {seminar_id}", attempt, ledger=ledger, counter="seminars")
        ledger.seminars[seminar_id] = SeminarPlan(seminar_id, capacity, year[0], lifecycle)

        async def known() -> bool | str:
            response = await self._http(
                "GET",
                "registration",
                f"/v1/seminars/{seminar_id}/registrations?limit=1",
                headers=PLATFORM,
            )
            return response.status_code == 200 or f"{response.status_code}"

        # The registration service learns of it from seminar.events: only then are
        # requests decided rather than parked (a parked request that is cancelled is
        # withdrawn without an event, which the ledger could not tell apart).
        await self._until(f"registration knows {seminar_id}", known)

    def _retryable(self, response: httpx.Response, what: str) -> str:
        if response.status_code >= 500 or response.status_code in {404, 409, 425, 429}:
            self.refusals[response.status_code, "Retry-After" in response.headers] += 1
            # not (yet) possible, or the service is restarting: try again
            return f"{response.status_code} {response.text[:200]}"
        raise TrafficError(f"{what}: unexpected {response.status_code} {response.text[:300]}")

    # ---- registrations ----

    def _participant(self, participant_id: str) -> dict[str, Any]:
        return {
            "id": participant_id,
            "display_name": f"Teacher {participant_id}",
            "email": f"{participant_id}@school.example.org",
            "country": self.rng.choice(["BE", "PT", "PL", "IT"]),
            "school_id": f"school-{self.rng.randint(1, 5)}",
        }

    async def register_http(
        self, ledger: Ledger, seminar_id: str, participant_id: str, *, duplicate: bool = False
    ) -> None:
        body = {"seminar_id": seminar_id, "participant": self._participant(participant_id)}

        async def attempt() -> bool | str:
            response = await self._http(
                "POST", "registration", "/v1/registrations", headers=PLATFORM, body=body
            )
            if response.status_code in {200, 201, 202}:
                return True
            return self._retryable(response, "register over HTTP")

        await self._until(
            f"register {participant_id} at {seminar_id} (HTTP)",
            attempt,
            ledger=ledger,
            counter="duplicates_http" if duplicate else "registrations_http",
        )
        ledger.requests[f"http:{seminar_id}:{participant_id}"] = (seminar_id, participant_id)
        await self._accepted()

    async def register_kafka(
        self, ledger: Ledger, seminar_id: str, participant_id: str
    ) -> Envelope:
        envelope = envelope_for(
            RegistrationRequested(
                seminar_id=seminar_id, participant=Participant(**self._participant(participant_id))
            ),
            source=PLATFORM_SOURCE,
            time=utc_now(),
        )
        await self._send(ledger, envelope, key=seminar_id, counter="registrations_kafka")
        ledger.requests[envelope.id] = (seminar_id, participant_id)
        await self._accepted()
        return envelope

    async def _send(self, ledger: Ledger, envelope: Envelope, *, key: str, counter: str) -> None:
        value = envelope.to_json_bytes()
        producer = self.producer
        assert producer is not None

        async def attempt() -> bool | str:
            await producer.send_and_wait(
                self.system.topic(REGISTRATION_REQUESTS), value=value, key=key.encode()
            )
            return True

        await self._until(
            f"send {envelope.type} {envelope.id}", attempt, ledger=ledger, counter=counter
        )

    async def resend_kafka(self, ledger: Ledger, envelope: Envelope, *, key: str) -> None:
        """The same record again (same event id): at-least-once delivery from the platform."""
        await self._send(ledger, envelope, key=key, counter="duplicates_kafka")

    async def cancel(self, ledger: Ledger, seminar_id: str, participant_id: str) -> None:
        if self.rng.random() < 0.5:
            envelope = envelope_for(
                RegistrationCancellationRequested(
                    seminar_id=seminar_id, participant_id=participant_id
                ),
                source=PLATFORM_SOURCE,
                time=utc_now(),
            )
            await self._send(ledger, envelope, key=seminar_id, counter="cancellations_kafka")
        else:
            registration = registration_id(seminar_id, participant_id)

            async def attempt() -> bool | str:
                response = await self._http(
                    "DELETE", "registration", f"/v1/registrations/{registration}", headers=PLATFORM
                )
                if response.status_code == 200:
                    return True
                # 404: a request sent over Kafka is not decided yet.
                return self._retryable(response, "cancel over HTTP")

            await self._until(
                f"cancel {registration}", attempt, ledger=ledger, counter="cancellations_http"
            )
        ledger.cancelled.add((seminar_id, participant_id))
        await self._accepted()

    async def _registration_flow(
        self, ledger: Ledger, seminar_id: str, participant_id: str, plan: StreamPlan
    ) -> None:
        if self.rng.random() < plan.kafka_share:
            envelope = await self.register_kafka(ledger, seminar_id, participant_id)
            if self.rng.random() < plan.duplicate_share:
                await asyncio.sleep(self.rng.uniform(0.0, 1.0))  # pacing
                await self.resend_kafka(ledger, envelope, key=seminar_id)
        else:
            await self.register_http(ledger, seminar_id, participant_id)
            if self.rng.random() < plan.duplicate_share:
                await asyncio.sleep(self.rng.uniform(0.0, 1.0))  # pacing
                await self.register_http(ledger, seminar_id, participant_id, duplicate=True)
        if self.rng.random() < plan.cancel_share:
            await asyncio.sleep(self.rng.uniform(0.0, 1.5))  # pacing
            await self.cancel(ledger, seminar_id, participant_id)

    # ---- attendance, completion, evaluations ----

    async def attend(self, ledger: Ledger, seminar_id: str, participant_ids: Sequence[str]) -> None:
        waiting = set(participant_ids)

        async def attempt() -> bool | str:
            response = await self._http(
                "POST",
                "seminar",
                f"/v1/seminars/{seminar_id}/attendance",
                headers=PLATFORM,
                body={"participant_ids": sorted(waiting)},
            )
            if response.status_code != 202:
                return self._retryable(response, "attendance")
            answer = response.json()
            for pid in [*answer["recorded"], *answer["already_recorded"]]:
                ledger.attended[seminar_id].add(pid)
                waiting.discard(pid)
            for pid, reason in answer["rejected_reasons"].items():
                if reason != "not_registered":  # the roster has not caught up yet: again
                    raise TrafficError(f"attendance of confirmed {pid} refused: {reason}")
            return not waiting or f"not yet on the roster: {sorted(waiting)[:5]}"

        await self._until(
            f"attendance at {seminar_id}", attempt, ledger=ledger, counter="attendance_calls"
        )
        await self._accepted()

    async def complete(self, ledger: Ledger, seminar_id: str) -> None:
        async def attempt() -> bool | str:
            response = await self._http(
                "POST", "seminar", f"/v1/seminars/{seminar_id}/complete", headers=OPERATOR
            )
            return response.status_code == 202 or self._retryable(response, "complete")

        await self._until(f"complete {seminar_id}", attempt, ledger=ledger, counter="completions")
        ledger.completed.add(seminar_id)
        await self._accepted()

    async def evaluate(self, ledger: Ledger, seminar_id: str, participant_id: str) -> None:
        body = {
            "seminar_id": seminar_id,
            "participant_id": participant_id,
            "overall": self.rng.choice(["excellent", "very_good", "good", "fair", "poor"]),
            "comments": "resilient",
            "answers": {"content": self.rng.randint(1, 5)},
        }

        async def attempt() -> bool | str:
            response = await self._http(
                "POST", "feedback", "/v1/evaluations", headers=PARTICIPANT, body=body
            )
            if response.status_code in {201, 409}:
                return True  # 409: it was stored (an earlier try whose answer got lost)
            if response.status_code == 403:
                return "403: window not open yet"  # feedback has not seen the completion
            return self._retryable(response, "evaluate")

        await self._until(
            f"evaluate {seminar_id} by {participant_id}",
            attempt,
            ledger=ledger,
            counter="evaluations",
        )
        ledger.evaluated[seminar_id].add(participant_id)
        await self._accepted()

    async def _lifecycle(
        self, ledger: Ledger, seminar_id: str, registered: list[str], plan: StreamPlan
    ) -> None:
        attendees = registered[: plan.attendees]
        third = max(1, len(attendees) // 3)
        for start in range(0, len(attendees), third):
            await self.attend(ledger, seminar_id, attendees[start : start + third])
            await asyncio.sleep(0.3)  # pacing
        await self.complete(ledger, seminar_id)
        for participant in attendees[: plan.evaluations]:
            await self.evaluate(ledger, seminar_id, participant)
            await asyncio.sleep(0.1)  # pacing

    # ---- one scenario's traffic ----

    async def prepare(self, tag: str, plan: StreamPlan) -> tuple[Ledger, list[str], str, list[str]]:
        """Schedule the scenario's seminars and register the lifecycle seminar's
        participants (before any fault)."""
        ledger = Ledger()
        flow = [f"chaos-{tag}-{k}" for k in range(plan.flow_seminars)]
        lifecycle = f"chaos-{tag}-life"
        await asyncio.gather(
            *(self.schedule(ledger, s, capacity=plan.capacity, lifecycle=False) for s in flow),
            self.schedule(
                ledger, lifecycle, capacity=plan.lifecycle_registrations + 5, lifecycle=True
            ),
        )
        registered = [f"{tag}-att-{i}" for i in range(plan.lifecycle_registrations)]
        await asyncio.gather(*(self.register_http(ledger, lifecycle, p) for p in registered))
        return ledger, flow, lifecycle, registered

    async def stream(
        self,
        ledger: Ledger,
        flow: list[str],
        lifecycle: str,
        registered: list[str],
        plan: StreamPlan,
        tag: str,
    ) -> None:
        """Registrations (Kafka and HTTP, some twice), cancellations, and the lifecycle
        seminar's attendance, completion and evaluations, all at once, paced."""
        self.accepted = 0
        limit = asyncio.Semaphore(plan.concurrency)

        async def limited(seminar_id: str, participant_id: str) -> None:
            async with limit:
                await self._registration_flow(ledger, seminar_id, participant_id, plan)

        jobs: list[asyncio.Task[None]] = [
            asyncio.create_task(self._lifecycle(ledger, lifecycle, registered, plan))
        ]
        order = [(s, f"{tag}-p-{i}") for i in range(plan.requests_per_seminar) for s in flow]
        start = time.monotonic()
        for i, (seminar_id, participant_id) in enumerate(order):
            jobs.append(asyncio.create_task(limited(seminar_id, participant_id)))
            # Against the schedule, not one pause after another: on a busy event loop
            # each pause overshoots and the overshoots add up (the soak's minute at
            # 60/s took 85-91 s with 240 operations allowed in flight).
            if (delay := start + (i + 1) / plan.rate_per_s - time.monotonic()) > 0:
                await asyncio.sleep(delay)  # pacing
        results = await asyncio.gather(*jobs, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    def planned_operations(self, plan: StreamPlan) -> int:
        return plan.flow_seminars * plan.requests_per_seminar


# --- the audit ----------------------------------------------------------------------------


@dataclass
class AuditResult:
    holds: bool
    lost: int
    double_counted: int
    problems: list[str]
    duplicate_records: int = 0

    def __str__(self) -> str:
        return "holds" if self.holds else "; ".join(self.problems[:20])


async def _json(
    client: httpx.AsyncClient, url: str, headers: Mapping[str, str] | None = None
) -> Any:
    response = await client.get(url, headers=dict(headers or {}))
    response.raise_for_status()
    return response.json()


async def audit(system: ChaosSystem, tail: EventTail, ledger: Ledger) -> AuditResult:
    """Every count the system holds against the ledger, once. ``lost``: accepted things
    missing somewhere; ``double_counted``: things counted more often than accepted."""
    problems: list[str] = []
    lost = 0
    double = 0

    def compare(what: str, have: int, want: int) -> None:
        nonlocal lost, double
        if have < want:
            lost = max(lost, want - have)
            problems.append(f"{what}: {have} < {want}")
        elif have > want:
            double = max(double, have - want)
            problems.append(f"{what}: {have} > {want}")

    if not tail.caught_up:
        problems.append("event tail not caught up")
    async with httpx.AsyncClient(timeout=10) as client:
        try:
            funnels: dict[str, dict[str, Any]] = {}
            for year in sorted({s.year for s in ledger.seminars.values()}):
                report = await _json(
                    client, f"{system.urls('metrics')[0]}/v1/reports/funnel?year={year}"
                )
                funnels |= {row["seminar_id"]: row for row in report["seminars"]}
            for seminar_id, plan in sorted(ledger.seminars.items()):
                expected = {registration_id(seminar_id, p): p for p in ledger.pairs(seminar_id)}
                cancelled = {registration_id(s, p) for s, p in ledger.cancelled if s == seminar_id}
                # 1. the registration service's store
                stored_doc = await _json(
                    client,
                    f"{system.urls('registration')[0]}/v1/seminars/{seminar_id}/registrations?limit=10000",
                    PLATFORM,
                )
                stored = {r["id"]: r for r in stored_doc["registrations"]}
                compare(f"{seminar_id} registrations stored", len(stored), len(expected))
                if set(stored) != set(expected):
                    missing = set(expected) - set(stored)
                    extra = set(stored) - set(expected)
                    if missing or extra:
                        problems.append(
                            f"{seminar_id} stored ids differ: missing {len(missing)}, unexpected {len(extra)}"
                        )
                        lost = max(lost, len(missing))
                        double = max(double, len(extra))
                # 2. the decisions on registration.events (latest version per registration)
                on_topic = {
                    r: tail.latest(r)
                    for r, ds in tail.decisions.items()
                    if ds and ds[0].seminar_id == seminar_id
                }
                compare(
                    f"{seminar_id} registrations on registration.events",
                    len(on_topic),
                    len(expected),
                )
                latest_status = {r: _STATUS_OF_TYPE[d.type] for r, d in on_topic.items()}
                stored_status = {r: doc["status"] for r, doc in stored.items()}
                diverged = [r for r in stored_status if latest_status.get(r) != stored_status[r]]
                if diverged:
                    problems.append(
                        f"{seminar_id}: {len(diverged)} stored statuses differ from the latest event"
                    )
                # 3. the metrics funnel
                funnel = funnels.get(seminar_id, {})
                compare(
                    f"{seminar_id} metrics requested",
                    int(funnel.get("requested", 0)),
                    len(expected),
                )
                ever = {
                    status: sum(
                        1
                        for r in on_topic
                        if any(_STATUS_OF_TYPE[d.type] == status for d in tail.decisions[r])
                    )
                    for status in ("confirmed", "waitlisted")
                }
                promoted = sum(
                    1
                    for r in on_topic
                    if any(d.type == "registration.promoted.v1" for d in tail.decisions[r])
                )
                compare(
                    f"{seminar_id} metrics confirmed (ever)",
                    int(funnel.get("confirmed", 0)),
                    ever["confirmed"],
                )
                compare(
                    f"{seminar_id} metrics waitlisted (ever)",
                    int(funnel.get("waitlisted", 0)),
                    ever["waitlisted"],
                )
                compare(f"{seminar_id} metrics promoted", int(funnel.get("promoted", 0)), promoted)
                now_counts = Counter(latest_status.values())
                compare(
                    f"{seminar_id} metrics cancelled",
                    int(funnel.get("cancelled", 0)),
                    now_counts["cancelled"],
                )
                compare(
                    f"{seminar_id} metrics rejected",
                    int(funnel.get("rejected", 0)),
                    now_counts["rejected"],
                )
                # 4. cancellations: exactly those accepted
                stored_cancelled = {r for r, s in stored_status.items() if s == "cancelled"}
                compare(f"{seminar_id} cancellations stored", len(stored_cancelled), len(cancelled))
                if stored_cancelled != cancelled and len(stored_cancelled) == len(cancelled):
                    problems.append(f"{seminar_id}: other registrations cancelled than requested")
                if now_counts["rejected"]:
                    problems.append(
                        f"{seminar_id}: {now_counts['rejected']} rejected (the seminar is open)"
                    )
                # 5. capacity and the waiting list
                confirmed_now = sum(1 for s in stored_status.values() if s == "confirmed")
                waiting_now = sum(1 for s in stored_status.values() if s == "waitlisted")
                if confirmed_now > plan.capacity or now_counts["confirmed"] > plan.capacity:
                    problems.append(
                        f"{seminar_id} OVER CAPACITY: {confirmed_now} stored / {now_counts['confirmed']} on the topic > {plan.capacity}"
                    )
                    double = max(double, confirmed_now - plan.capacity)
                if (
                    stored_doc["confirmed"] != confirmed_now
                    or stored_doc["waitlisted"] != waiting_now
                ):
                    problems.append(
                        f"{seminar_id}: seat book {stored_doc['confirmed']}/{stored_doc['waitlisted']} "
                        f"!= registrations {confirmed_now}/{waiting_now}"
                    )
                if waiting_now and confirmed_now < plan.capacity:
                    problems.append(
                        f"{seminar_id}: {waiting_now} waiting while {plan.capacity - confirmed_now} seats are free"
                    )
                # 6. attendance and evaluations
                attended = ledger.attended.get(seminar_id, set())
                compare(
                    f"{seminar_id} metrics attended", int(funnel.get("attended", 0)), len(attended)
                )
                evaluated = ledger.evaluated.get(seminar_id, set())
                compare(
                    f"{seminar_id} metrics evaluated",
                    int(funnel.get("evaluated", 0)),
                    len(evaluated),
                )
                if plan.lifecycle:
                    seminar = await _json(
                        client, f"{system.urls('seminar')[0]}/v1/seminars/{seminar_id}"
                    )
                    compare(
                        f"{seminar_id} attendees (seminar)",
                        int(seminar["attendee_count"]),
                        len(attended),
                    )
                    on_feedback = sum(1 for s in tail.evaluations.values() if s == seminar_id)
                    compare(
                        f"{seminar_id} evaluation.submitted events", on_feedback, len(evaluated)
                    )
                    if seminar_id in ledger.completed:
                        rate = await _json(
                            client,
                            f"{system.urls('feedback')[0]}/v1/seminars/{seminar_id}/response-rate",
                        )
                        compare(
                            f"{seminar_id} evaluations stored (feedback)",
                            int(rate["responses"]),
                            len(evaluated),
                        )
                        compare(
                            f"{seminar_id} attendees (feedback)",
                            int(rate["attendees"]),
                            len(attended),
                        )
        except (httpx.HTTPError, KeyError) as error:
            problems.append(f"could not read a count: {error!r}")
    return AuditResult(
        holds=not problems,
        lost=lost,
        double_counted=double,
        problems=problems,
        duplicate_records=tail.duplicate_records,
    )


async def audit_until_holds(
    system: ChaosSystem, tail: EventTail, ledger: Ledger, *, timeout_s: float = RECOVERY_DEADLINE_S
) -> AuditResult:
    """Poll the audit until it holds; the last result (not holding) at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await audit(system, tail, ledger)
        if os.environ.get("CHAOS_DEBUG"):
            print(f"[audit {time.monotonic():.1f}] {result}", flush=True)  # noqa: T201
        if result.holds or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.3)  # poll interval


# --- results --------------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    scenario: str
    events_sent: int
    requests_accepted: int
    lost: int
    double_counted: int
    recovery_s: float | None
    duplicates_absorbed: int = 0
    notes: dict[str, Any] = field(default_factory=dict)
    breakdown: dict[str, int] = field(default_factory=dict)
    passed: bool = False


RESULTS: list[ScenarioResult] = []


def summary_table(results: Sequence[ScenarioResult]) -> str:
    header = f"{'scenario':<34} {'sent':>6} {'accepted':>8} {'lost':>5} {'double':>6} {'recover s':>9} {'dup abs.':>8}  notes"
    lines = [header, "-" * len(header)]
    for r in results:
        recovery = f"{r.recovery_s:.1f}" if r.recovery_s is not None else "-"
        notes = ", ".join(f"{k}={v}" for k, v in r.notes.items())
        flag = "" if r.passed else "  FAILED"
        lines.append(
            f"{r.scenario:<34} {r.events_sent:>6} {r.requests_accepted:>8} {r.lost:>5} "
            f"{r.double_counted:>6} {recovery:>9} {r.duplicates_absorbed:>8}  {notes}{flag}"
        )
    return "\n".join(lines)


def write_results(results: Sequence[ScenarioResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "scenarios": [
            {
                "scenario": r.scenario,
                "events_sent": r.events_sent,
                "requests_accepted": r.requests_accepted,
                "lost": r.lost,
                "double_counted": r.double_counted,
                "time_to_recover_s": None if r.recovery_s is None else round(r.recovery_s, 2),
                "duplicates_absorbed": r.duplicates_absorbed,
                "passed": r.passed,
                "sent": r.breakdown,
                **({"notes": r.notes} if r.notes else {}),
            }
            for r in results
        ],
    }
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(payload, indent=2) + "\n")
    partial.replace(path)


# --- one scenario from start to audit ---------------------------------------------------------

# A fault to inject, and a check to make once the audit holds; each may return notes
# for the summary.
Fault = Callable[["Chaos"], Awaitable[dict[str, Any] | None]]
Check = Callable[["Chaos"], Awaitable[dict[str, Any] | None]]


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


class Chaos:
    """The suite's system, event tail, traffic and the ledger of every scenario so far."""

    def __init__(self, system: ChaosSystem) -> None:
        self.system = system
        self.tail = EventTail(system)
        self.traffic = Traffic(system, seed=7)
        self.ledger = Ledger()
        self._count = 0

    async def start(self) -> None:
        self.system.start_infrastructure()
        await self.system.start_services()
        await self.tail.start()
        await self.traffic.start()

    async def close(self) -> None:
        await self.traffic.close()
        await self.tail.stop()
        self.system.close()

    async def duplicates_by_pid(self) -> dict[int, float]:
        """Consumed records each running replica skipped as duplicates (its markers)."""
        counts: dict[int, float] = {}
        for replicas in self.system.replicas.values():
            for replica in replicas:
                if replica.running and replica.pid is not None:
                    with contextlib.suppress(httpx.HTTPError):
                        counts[replica.pid] = await service_counter(
                            replica.url, outcome="duplicate"
                        )
        return counts

    async def run(
        self,
        name: str,
        fault: Fault,
        *,
        plan: StreamPlan | None = None,
        fault_after: float = 0.25,
        audit_everything: bool = False,
        check: Check | None = None,
    ) -> ScenarioResult:
        """Traffic with ``fault`` injected once ``fault_after`` of the planned requests
        were accepted, then the audit until it holds (over this scenario's seminars, or
        over every seminar of the suite so far with ``audit_everything``), then
        ``check``. Records and returns the result; fails the test when the audit does
        not hold within the deadline or ``check`` fails."""
        plan = plan or StreamPlan.for_load()
        self._count += 1
        tag = f"{self._count:02d}{uuid.uuid4().hex[:4]}"
        await self.system.ensure_running()
        before = await self.duplicates_by_pid()
        ledger, flow, lifecycle, registered = await self.traffic.prepare(tag, plan)
        stream = asyncio.create_task(
            self.traffic.stream(ledger, flow, lifecycle, registered, plan, tag),
            name=f"stream-{name}",
        )
        record = ScenarioResult(name, 0, 0, -1, -1, None)
        RESULTS.append(record)
        fault_at = time.monotonic()
        try:
            await self.traffic.wait_accepted(
                max(1, int(self.traffic.planned_operations(plan) * fault_after))
            )
            fault_at = time.monotonic()
            record.notes.update(await fault(self) or {})
            record.notes.setdefault("fault_s", round(time.monotonic() - fault_at, 1))
            await asyncio.wait_for(asyncio.shield(stream), OPERATION_DEADLINE_S + 30)
            record.notes["stream_done_s"] = round(time.monotonic() - fault_at, 1)
        except Exception as error:
            await _cancel(stream)
            raise AssertionError(
                f"{name}: the traffic failed: {error}\n"
                + await self.system.diagnose()
                + "\n"
                + self.system.log_tails()
            ) from error
        except BaseException:
            await _cancel(stream)
            raise
        finally:
            self.ledger.merge(ledger)
            record.events_sent = ledger.events_sent
            record.requests_accepted = len(ledger.requests)
            record.breakdown = dict(ledger.sent) | {"retries": ledger.retries}
        audited = self.ledger if audit_everything else ledger
        result = await audit_until_holds(self.system, self.tail, audited)
        recovered_at = time.monotonic()
        after = await self.duplicates_by_pid()
        record.lost = result.lost
        record.double_counted = result.double_counted
        record.recovery_s = recovered_at - fault_at if result.holds else None
        record.duplicates_absorbed = int(sum(v - before.get(pid, 0.0) for pid, v in after.items()))
        if audit_everything:
            record.notes["audited_registrations"] = len(audited.requests)
        assert result.holds, (
            f"{name}: the audit does not hold {RECOVERY_DEADLINE_S}s after the fault: "
            f"lost {result.lost}, double counted {result.double_counted}\n"
            + "\n".join(result.problems[:40])
            + "\n"
            + await self.system.diagnose()
            + "\n"
            + self.system.log_tails()
        )
        if check is not None:
            record.notes.update(await check(self) or {})
        record.passed = True
        return record
