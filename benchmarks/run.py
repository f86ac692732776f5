"""The end-to-end benchmark (issues 8 and 18), ``make bench``.

One run measures, on one broker and one database, in this order (``--phases`` picks
a subset by name):

- **census**: the pipeline's traffic (``--census-events``, default 500) through
  registration and metrics against a second database that keeps an oplog, counted
  document by document: the "writes per event" table (inserts, updates, deletes and
  index entries per collection, transactions and their sizes), printed, and checked
  against the model baseline's table (``model_baseline.MODEL``): a difference is a
  warning that names it (``write_census``).
- **baseline**: a bare aiokafka consumer reading N real ``registration.requested.v1``
  envelopes and writing them with PyMongo bulk writes (``insert_many``, one per poll)
  into one collection, offsets committed after each write. No services: the limit of
  this broker, database and machine for "consume and store".
- **latency**: events at a sustained rate (default 100/s), each second of traffic to
  its own seminar in its own year; the report is polled every ``--poll-ms``; an event
  is visible when its seminar's ``requested`` count covers it (one seminar, one
  partition: decided, published and projected in order, so a count of ``c`` means the
  first ``c`` events). Latency = arrival of the first report answer that covers it -
  the moment it was handed to the producer (an upper bound: it includes the report's
  own time and up to one poll period).
- **latency_400**: the same at ``--rate-high`` (default 400/s).
- **pipeline**: the same N events into ``registration.requests`` for one scheduled
  seminar with a large capacity, through ``python -m registration`` and
  ``python -m metrics`` (real processes), timed from the first send until the metrics
  funnel report (``GET /v1/reports/funnel?year=``) counts every one of them (the
  services' in-memory counters say when to ask it). Also: the database's CPU per event
  and its busy share (CPU seconds over wall seconds), and its write statements per
  collection (``top``), from which each service's events per transaction.
- **model**: ``model_baseline.run_model``: the pipeline's own writes (the census's
  table) for N events in the pipeline's transaction sizes, by a bare loop (no Kafka, no
  services, no reads); ``model_ratio`` = pipeline events/s over it.
- **rush**: ``registration_rush.run_rush`` (10,000 requests, capacity 500, Kafka and
  HTTP mixed, 10% Kafka duplicates, two registration replicas).
- **scaling**: the same rush with one replica (``scaling`` = its time over the rush's).
- **season**: ``season_open.run_season``: ``--season-requests`` (100,000) over 200
  seminars, two registration and two metrics replicas, timed until the metrics reports
  show every seminar's outcome; exact counts checked.
- **durable**: latency and pipeline again, on the stack ``make up`` runs (the broker's
  log in SeaweedFS on disk, the database syncing every commit), started beside the
  first for these two phases. ``durable_log_ratio`` is its pipeline throughput over the
  memory log's (the phases above run on a memory log and a database that does not
  sync, as every earlier run did, so their figures stay comparable).

Against ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI`` when both are set (no durable
phases then: that cluster is what it is; the census still starts its own database);
otherwise it starts the embedded broker and database
(``seminarops_devtools.testing.servers``) and stops them at the end. Every phase has
its own topic and database prefix.

    .venv/bin/python benchmarks/run.py [--events N] [--latency-s S] [--phases a,b]
        [--season-requests N] [--census-events N] [--skip-rush] [--skip-durable]
        [--profile DIR]   # py-spy records the services and the database in the pipeline phase

Prints a table and, as its last line, one JSON object (``summary``: every figure by
name, ``None`` for a phase that did not run, and ``targets``, issue 18's); saves the
result with machine details in ``benchmarks/results/<timestamp>.json`` and
``benchmarks/results/latest.json``. Exits 1 when a correctness check failed (pipeline,
rush, season); a missed performance target is reported, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from model_baseline import MODEL, compare, run_model
from profile_summary import write_summary
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from registration_rush import run_rush, scheduled_event
from season_open import run_season
from write_census import Census, database_with_oplog, oplog_marker, take_census, top_counts

from seminarops_devtools.processes import ensure_topics, free_port
from seminarops_devtools.testing.chaos import ServiceProcess
from seminarops_devtools.testing.polling import eventually
from seminarops_shared.events import envelope_for
from seminarops_shared.events.inbound import Participant, RegistrationRequested
from seminarops_shared.events.topics import (
    ALL_TOPICS,
    REGISTRATION_EVENTS,
    REGISTRATION_REQUESTS,
    SEMINAR_EVENTS,
)
from seminarops_shared.settings import KafkaSettings

RESULTS = Path(__file__).resolve().parent / "results"
PLATFORM_SOURCE = "/platform/bench-portal"
SEMINAR_SOURCE = "/services/seminar"
TOKEN = "bench-platform-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PARTITIONS = 6  # the services' default (KAFKA_PARTITIONS)
COUNTRIES = ("FR", "IT", "PL", "ES", "GR", "UA", "DE", "PT")

# Issue 18's targets.
TARGET_DATABASE_CPU_PER_EVENT_RATIO = 6.0
TARGET_RATIO = 0.15
TARGET_MODEL_RATIO = 0.6
TARGET_DATABASE_BUSY_PCT = 85.0
TARGET_P99_MS = 100.0
TARGET_P99_AT_400_MS = 250.0
TARGET_RUSH_S = 15.0
TARGET_SCALING = 1.8
# Every phase, in the order they run (``--phases`` picks a subset).
PHASES = (
    "census",
    "baseline",
    "latency",
    "latency_400",
    "pipeline",
    "model",
    "rush",
    "scaling",
    "season",
    "durable",
)
# How often set-up steps (readiness, a seminar known, the warm-up counted) are polled.
SETUP_POLL_S = 0.1


# --- events ----------------------------------------------------------------------------


def requests_for(seminar_id: str, count: int, *, tag: str) -> list[bytes]:
    """``count`` real ``registration.requested.v1`` envelopes (JSON) for one seminar."""
    now = datetime.now(UTC)
    values = []
    for n in range(count):
        pid = f"{tag}-{n:07d}"
        data = RegistrationRequested(
            seminar_id=seminar_id,
            participant=Participant(
                id=pid,
                display_name=f"Teacher {n}",
                email=f"{pid}@school.example",
                country=COUNTRIES[n % len(COUNTRIES)],
                school_id=f"school-{n % 977}",
            ),
        )
        values.append(envelope_for(data, source=PLATFORM_SOURCE, time=now).to_json_bytes())
    return values


def scheduled(seminar_id: str, *, capacity: int, year: int) -> bytes:
    data = scheduled_event(seminar_id, capacity=capacity, year=year, title="Benchmark seminar")
    return envelope_for(data, source=SEMINAR_SOURCE, time=datetime.now(UTC)).to_json_bytes()


async def publish_all(
    producer: AIOKafkaProducer, topic: str, key: bytes, values: Sequence[bytes]
) -> float:
    """Send everything (the producer batches), wait for every acknowledgement; returns
    when the last was acknowledged (perf_counter)."""
    futures = [await producer.send(topic, value, key=key) for value in values]
    await asyncio.gather(*futures)
    return time.perf_counter()


def new_producer(bootstrap: str, *, linger_ms: int) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=linger_ms, max_batch_size=256 * 1024, acks="all"
    )


# --- the machine -----------------------------------------------------------------------


def machine(stack: str) -> dict[str, Any]:
    def first(path: str, prefix: str) -> str | None:
        with contextlib.suppress(OSError):
            for line in Path(path).read_text().splitlines():
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
        return None

    memory_kb = first("/proc/meminfo", "MemTotal")
    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                check=False,
                cwd=Path(__file__).parent,
            ).stdout.strip()
            or None
        )
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(int(memory_kb.split()[0]) / 1024 / 1024, 1) if memory_kb else None,
        "cpu_model": first("/proc/cpuinfo", "model name"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "stack": stack,
        "git_commit": commit,
    }


# --- where the CPU goes --------------------------------------------------------------------


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), None if unknown."""
    if pid is None:
        return None
    if pid == os.getpid():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds each named process spent between ``start()`` and ``stop()``."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self._pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._start: dict[str, float | None] = {}

    def start(self) -> CpuMeter:
        self._start = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        spent = {}
        for name, pid in self._pids.items():
            now, then = cpu_seconds(pid), self._start.get(name)
            if now is not None and then is not None:
                spent[name] = round(now - then, 2)
        return spent


# --- infrastructure and services -------------------------------------------------------


@dataclass
class Bench:
    kafka: str
    mongo: str
    workdir: Path
    stack: str
    database_pid: int | None = None
    broker_pid: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    services: list[ServiceProcess] = field(default_factory=list)

    def env(self, prefix: str, service: str, port: int) -> dict[str, str]:
        upper = service.upper()
        return {
            f"{upper}_PORT": str(port),
            f"{upper}_HOST": "127.0.0.1",
            f"{upper}_LOG_LEVEL": "WARNING",
            f"{upper}_LOG_JSON": "true",
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "KAFKA_TOPIC_PREFIX": f"{prefix}.",
            "KAFKA_PARTITIONS": str(PARTITIONS),
            # The embedded broker completes a group join after half the session timeout.
            "KAFKA_SESSION_TIMEOUT_MS": "3000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "MONGODB_URI": self.mongo,
            "MONGODB_DATABASE_PREFIX": f"{prefix}_",
            "AUTH_TOKENS": json.dumps({"platform": [TOKEN]}),
        } | self.extra_env

    def start(self, prefix: str, service: str, index: int = 0) -> ServiceProcess:
        port = free_port()
        process = ServiceProcess(
            name=f"{service}#{index}",
            module=service,
            port=port,
            env=self.env(prefix, service, port),
            log_path=self.workdir / f"{prefix}-{service}-{index}.log",
        )
        process.start()
        self.services.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.services:
            process.stop(timeout_s=30)
        self.services.clear()


@contextlib.contextmanager
def durable_infrastructure(workdir: Path) -> Iterator[Bench]:
    """The broker and database as ``make up`` runs them: Tansu with its log in a local
    SeaweedFS (fsync on every object), SecantusDB with ``--sync-on-commit``."""
    from seminarops_devtools.processes import (
        S3_STORAGE,
        ObjectStorePorts,
        start_kafka,
        start_object_store,
    )
    from seminarops_devtools.testing.chaos import start_mongo_on

    store, s3 = start_object_store(
        data_dir=workdir / "s3",
        ports=ObjectStorePorts.free(),
        log_path=workdir / "s3.log",
        detached=False,
    )
    with (
        store,
        start_kafka(
            port=free_port(),
            log_path=workdir / "kafka-durable.log",
            detached=False,
            storage_engine=S3_STORAGE,
            env={**os.environ, **s3.broker_env()},
        ) as broker,
        start_mongo_on(workdir / "mongo-durable", sync_on_commit=True) as database,
    ):
        bench = embedded_bench(
            broker,
            database,
            workdir,
            stack="embedded, durable (Tansu on SeaweedFS, SecantusDB --sync-on-commit)",
        )
        # As `make up` sets it: see devstack._DURABLE_LOG_FETCH_MAX_WAIT_MS.
        bench.extra_env["KAFKA_FETCH_MAX_WAIT_MS"] = "500"
        yield bench


@contextlib.contextmanager
def infrastructure(workdir: Path) -> Iterator[Bench]:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    mongo = os.environ.get("MONGODB_URI")
    if kafka and mongo:
        yield Bench(kafka=kafka, mongo=mongo, workdir=workdir, stack="external")
        return
    from seminarops_devtools.testing.servers import start_embedded_kafka, start_embedded_mongo

    with (
        start_embedded_kafka(workdir / "kafka") as broker,
        start_embedded_mongo(workdir / "mongo") as database,
    ):
        yield embedded_bench(
            broker, database, workdir, stack="embedded (Tansu broker, SecantusDB database)"
        )


def embedded_bench(broker: Any, database: Any, workdir: Path, *, stack: str) -> Bench:
    """A ``Bench`` on embedded servers this run started (their CPU is measured)."""
    return Bench(
        kafka=broker.address,
        mongo=database.address,
        workdir=workdir,
        stack=stack,
        database_pid=database.pid,
        broker_pid=broker.pid,
    )


async def ready(processes: Sequence[ServiceProcess], *, timeout_s: float = 90) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for process in processes:

            async def answers(p: ServiceProcess = process) -> bool:
                if not p.running:
                    raise RuntimeError(f"{p.name} exited:\n{p.log()}")
                with contextlib.suppress(httpx.HTTPError):
                    return (await client.get(f"{p.url}/health/ready")).status_code == 200
                return False

            await eventually(
                answers,
                what=f"{process.name} ready",
                timeout_s=timeout_s,
                interval_s=SETUP_POLL_S,
            )


async def funnel_row(
    client: httpx.AsyncClient, url: str, year: int, seminar_id: str
) -> dict[str, Any] | None:
    response = await client.get(f"{url}/v1/reports/funnel", params={"year": year})
    response.raise_for_status()
    for row in response.json()["seminars"]:
        if row["seminar_id"] == seminar_id:
            return dict(row)
    return None


async def seat_book(client: httpx.AsyncClient, url: str, seminar_id: str) -> dict[str, Any] | None:
    response = await client.get(
        f"{url}/v1/seminars/{seminar_id}/registrations", params={"limit": 1}, headers=AUTH
    )
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return dict(response.json())


async def open_seminar(
    producer: AIOKafkaProducer,
    client: httpx.AsyncClient,
    *,
    prefix: str,
    seminar_id: str,
    year: int,
    capacity: int,
    registration_url: str,
    metrics_url: str,
) -> None:
    """Schedule a seminar and wait until both services know it."""
    await producer.send_and_wait(
        f"{prefix}.{SEMINAR_EVENTS}",
        scheduled(seminar_id, capacity=capacity, year=year),
        key=seminar_id.encode(),
    )
    await eventually(
        lambda: seat_book(client, registration_url, seminar_id),
        what="registration knows the seminar",
        timeout_s=60,
        interval_s=SETUP_POLL_S,
    )
    await eventually(
        lambda: funnel_row(client, metrics_url, year, seminar_id),
        what="metrics knows the seminar",
        timeout_s=60,
        interval_s=SETUP_POLL_S,
    )


# --- profiling (optional) ----------------------------------------------------------------


@contextlib.contextmanager
def profiled(targets: dict[str, int | None], directory: Path | None) -> Iterator[None]:
    """py-spy records each pid while inside: collapsed stacks in ``<name>.txt`` (what
    flamegraph.pl or speedscope draw), the top frames in ``<name>-top.txt``
    (``profile_summary``). The database is a Python server too: it is recorded."""
    if directory is None:
        yield
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("--profile: py-spy not installed, not profiling", file=sys.stderr)
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    recorders = [
        subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(pid),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(directory / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in targets.items()
        if pid is not None
    ]
    try:
        yield
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)
        for recorder in recorders:
            with contextlib.suppress(subprocess.TimeoutExpired):
                recorder.wait(timeout=30)
        for name in targets:
            summary = write_summary(directory / f"{name}.txt")
            if summary is not None:
                print(f"--profile: {summary}", file=sys.stderr)


# --- phases ----------------------------------------------------------------------------


async def run_baseline(bench: Bench, *, events: int) -> dict[str, Any]:
    prefix = f"bb{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.baseline.requests"
    await asyncio.to_thread(ensure_topics, bench.kafka, [topic], partitions=PARTITIONS)
    seminar_id = f"sem-base-{uuid.uuid4().hex[:8]}"
    values = requests_for(seminar_id, events, tag="base")
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(bench.mongo, w="majority")
    collection = mongo[f"{prefix}_baseline"]["events"]
    services = KafkaSettings()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bench.kafka,
        group_id=f"{prefix}.baseline",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=3000,
        heartbeat_interval_ms=500,
        # The services' consumer settings (the embedded broker holds a fetch for all
        # of fetch_max_wait_ms when there is nothing new).
        fetch_max_wait_ms=services.fetch_max_wait_ms,
        max_poll_records=services.max_batch_records,
    )
    producer = new_producer(bench.kafka, linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        meter = CpuMeter(
            {"database": bench.database_pid, "broker": bench.broker_pid, "bench": os.getpid()}
        ).start()
        started = time.perf_counter()
        sending = asyncio.create_task(publish_all(producer, topic, seminar_id.encode(), values))
        written = writes = 0
        while written < events:
            batches = await consumer.getmany(
                timeout_ms=services.batch_timeout_ms, max_records=services.max_batch_records
            )
            docs = []
            for records in batches.values():
                for record in records:
                    doc = json.loads(record.value)
                    doc["_id"] = doc.pop("id")
                    docs.append(doc)
            if docs:
                await collection.insert_many(docs, ordered=False)
                await consumer.commit()
                written += len(docs)
                writes += 1
        done = time.perf_counter()
        sent = await sending
        cpu = meter.stop()
    finally:
        await consumer.stop()
        await producer.stop()
        await mongo.drop_database(f"{prefix}_baseline")
        await mongo.close()
    seconds = done - started
    return {
        "events": events,
        "seconds": round(seconds, 2),
        "events_per_s": round(events / seconds, 1),
        "bulk_writes": writes,
        "send_s": round(sent - started, 2),
        "cpu_s": cpu,
        "database_cpu_us_per_event": _per_event(cpu, "database", events),
    }


def _per_event(cpu: dict[str, float], name: str, events: int) -> float | None:
    return round(cpu[name] / events * 1e6) if name in cpu else None


@dataclass
class Stack:
    """One registration and one metrics service on their own topics and databases."""

    prefix: str
    registration: ServiceProcess
    metrics: ServiceProcess
    producer: AIOKafkaProducer
    client: httpx.AsyncClient

    async def open_seminar(self, seminar_id: str, *, year: int, capacity: int) -> None:
        await open_seminar(
            self.producer,
            self.client,
            prefix=self.prefix,
            seminar_id=seminar_id,
            year=year,
            capacity=capacity,
            registration_url=self.registration.url,
            metrics_url=self.metrics.url,
        )

    @property
    def requests_topic(self) -> str:
        return f"{self.prefix}.{REGISTRATION_REQUESTS}"


@contextlib.asynccontextmanager
async def service_stack(bench: Bench) -> AsyncIterator[Stack]:
    prefix = f"bp{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(
        ensure_topics, bench.kafka, [f"{prefix}.{t}" for t in ALL_TOPICS], partitions=PARTITIONS
    )
    registration = bench.start(prefix, "registration")
    metrics = bench.start(prefix, "metrics")
    producer = new_producer(bench.kafka, linger_ms=0)
    try:
        await ready([registration, metrics])
        await producer.start()
        async with httpx.AsyncClient(timeout=30) as client:
            yield Stack(prefix, registration, metrics, producer, client)
    finally:
        await producer.stop()
        bench.stop_all()
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(bench.mongo)
        for name in ("registration", "metrics"):
            await mongo.drop_database(f"{prefix}_{name}")
        await mongo.close()


async def processed_count(client: httpx.AsyncClient, url: str, topic: str) -> int:
    """Events of ``topic`` the service has committed (its ``/metrics`` counter: in
    memory, no database query)."""
    response = await client.get(f"{url}/metrics")
    response.raise_for_status()
    total = 0
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if (
                sample.name == "seminarops_events_processed_total"
                and sample.labels.get("topic") == topic
                and sample.labels.get("outcome") == "processed"
            ):
                total += int(sample.value)
    return total


async def run_pipeline(
    stack: Stack, *, events: int, poll_s: float, profile: Path | None, bench: Bench
) -> dict[str, Any]:
    """N requests for one seminar, timed until the funnel report counts all of them.

    The report aggregates every registration of the seminar (a database query that
    grows with N), so it is not asked every few milliseconds: the services' in-memory
    counters (``/metrics``) say when the last batch committed, then the report is
    asked (and again until it counts all; at least every 30 s regardless)."""
    seminar_id = f"sem-pipe-{uuid.uuid4().hex[:8]}"
    year = 2101
    await stack.open_seminar(seminar_id, year=year, capacity=events * 10)
    values = requests_for(seminar_id, events, tag="pipe")
    requests_topic = stack.requests_topic
    decisions_topic = f"{stack.prefix}.{REGISTRATION_EVENTS}"
    registration_before = await processed_count(
        stack.client, stack.registration.url, requests_topic
    )
    metrics_before = await processed_count(stack.client, stack.metrics.url, decisions_topic)
    registered_at: float | None = None
    report_seconds: list[float] = []
    targets = {
        "registration": stack.registration.pid,
        "metrics": stack.metrics.pid,
        "database": bench.database_pid,
    }
    meter = CpuMeter({**targets, "broker": bench.broker_pid, "bench": os.getpid()})
    top_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(bench.mongo)
    top_before = await _top_or_nothing(top_client)
    with profiled(targets, profile):
        meter.start()
        started = time.perf_counter()
        sending = asyncio.create_task(
            publish_all(stack.producer, requests_topic, seminar_id.encode(), values)
        )
        deadline = started + max(300.0, events / 20)
        next_report = started + 30.0
        next_registration_poll = started
        while True:
            await asyncio.sleep(poll_s)
            if registered_at is None and time.perf_counter() >= next_registration_poll:
                decided = await processed_count(
                    stack.client, stack.registration.url, requests_topic
                )
                if decided - registration_before >= events:
                    registered_at = time.perf_counter()
                next_registration_poll = time.perf_counter() + 0.25
            projected = await processed_count(stack.client, stack.metrics.url, decisions_topic)
            now = time.perf_counter()
            if projected - metrics_before < events and now < next_report:
                continue
            row = await funnel_row(stack.client, stack.metrics.url, year, seminar_id)
            done = time.perf_counter()
            report_seconds.append(done - now)
            next_report = done + 30.0
            if row and row["requested"] >= events:
                break
            if done > deadline:
                raise TimeoutError(f"pipeline: {row} of {events} after {done - started:.0f} s")
        sent = await sending
        cpu = meter.stop()
    top_after = await _top_or_nothing(top_client)
    await top_client.close()
    seconds = done - started
    statements = _statements(top_before, top_after, prefix=stack.prefix)
    return {
        "events": events,
        "seconds": round(seconds, 2),
        "events_per_s": round(events / seconds, 1),
        "send_s": round(sent - started, 2),
        "registration_decided_s": round((registered_at or done) - started, 2),
        "cpu_s": cpu,
        "database_cpu_us_per_event": _per_event(cpu, "database", events),
        # The database's CPU seconds over the phase's wall seconds: how busy it was.
        "database_busy_pct": (
            round(cpu["database"] / seconds * 100, 1) if "database" in cpu else None
        ),
        "statements": statements,
        "events_per_transaction": _events_per_transaction(statements, events),
        "report": {k: row[k] for k in ("requested", "confirmed", "waitlisted")},
        "correct": row["requested"] == events and row["confirmed"] == events,
        "counter_poll_s": poll_s,
        "report_median_ms": round(statistics.median(report_seconds) * 1000, 1),
    }


async def _top_or_nothing(client: AsyncMongoClient[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """``top``'s counters, or nothing where the database has no ``top`` (not MongoDB's
    or SecantusDB's, or no privilege for it)."""
    try:
        return await top_counts(client)
    except PyMongoError:
        return {}


def _statements(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], *, prefix: str
) -> dict[str, dict[str, int]]:
    """Write statements per collection of the stack's databases during a phase."""
    out: dict[str, dict[str, int]] = {}
    for ns, sections in after.items():
        db, _, collection = ns.partition(".")
        if not db.startswith(f"{prefix}_"):
            continue
        counts = {
            section: sections.get(section, 0) - before.get(ns, {}).get(section, 0)
            for section in ("insert", "update", "remove", "commands")
        }
        if any(counts.values()):
            out[f"{db.removeprefix(f'{prefix}_')}.{collection}"] = {
                k: v for k, v in counts.items() if v
            }
    return out


def _events_per_transaction(statements: dict[str, dict[str, int]], events: int) -> dict[str, int]:
    """Per service, events over the statements that count its transactions (the model
    table's ``transactions_counted_by``: one statement per transaction)."""
    sizes = {}
    for model in MODEL:
        collection, section = model.transactions_counted_by
        count = statements.get(f"{model.service}.{collection}", {}).get(section, 0)
        if count:
            sizes[model.service] = max(1, round(events / count))
    return sizes


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def run_latency(
    stack: Stack,
    *,
    rate: float,
    seconds: float,
    poll_s: float,
    mongodb_uri: str,
    trace: list[tuple[float, int, int]] | None = None,
) -> dict[str, Any]:
    """Events at ``rate`` per second for ``seconds``; each event's time from the send
    until the funnel report counts it.

    Each second of traffic goes to its own seminar in its own year, so that a report
    answer aggregates at most ``rate`` registrations: asked every ``poll_s``, the report
    must not itself load the database it measures. Within a seminar (one partition)
    events are decided, published and projected in order, so a count of ``c`` in its
    row means its first ``c`` events are visible."""
    chunk = max(1, round(rate))
    count = round(rate * seconds)
    chunks = math.ceil(count / chunk)
    seminars = [f"sem-lat-{uuid.uuid4().hex[:8]}" for _ in range(chunks)]
    years = [2110 + k for k in range(chunks)]
    for seminar_id, year in zip(seminars, years, strict=True):
        await stack.producer.send_and_wait(
            f"{stack.prefix}.{SEMINAR_EVENTS}",
            scheduled(seminar_id, capacity=chunk * 10, year=year),
            key=seminar_id.encode(),
        )
    for seminar_id, year in zip(seminars, years, strict=True):
        await eventually(
            functools.partial(seat_book, stack.client, stack.registration.url, seminar_id),
            what="registration knows the seminar",
            timeout_s=60,
            interval_s=SETUP_POLL_S,
        )
        await eventually(
            functools.partial(funnel_row, stack.client, stack.metrics.url, year, seminar_id),
            what="metrics knows the seminar",
            timeout_s=60,
            interval_s=SETUP_POLL_S,
        )
    values = [
        value
        for k, seminar_id in enumerate(seminars)
        for value in requests_for(seminar_id, min(chunk, count - k * chunk), tag=f"lat{k}")
    ]
    sent_at = [math.nan] * count
    seen_at = [math.nan] * count
    sent = 0  # events handed to the producer so far
    report_seconds: list[float] = []
    loop = asyncio.get_running_loop()

    async def publisher() -> None:
        nonlocal sent
        futures = []
        start = loop.time()
        for i, value in enumerate(values):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at[i] = time.perf_counter()
            futures.append(
                await stack.producer.send(
                    stack.requests_topic, value, key=seminars[i // chunk].encode()
                )
            )
            sent = i + 1
        await asyncio.gather(*futures)

    async def poller() -> None:
        seen = [0] * chunks  # visible events per seminar
        deadline = time.perf_counter() + seconds + 120
        while sum(seen) < count:
            for k in range(chunks):
                size = min(chunk, count - k * chunk)
                if seen[k] >= size or sent <= k * chunk:
                    continue  # done, or nothing sent yet
                asked = time.perf_counter()
                row = await funnel_row(stack.client, stack.metrics.url, years[k], seminars[k])
                now = time.perf_counter()
                report_seconds.append(now - asked)
                visible = min(size, row["requested"] if row else 0)
                if trace is not None:
                    trace.append((round(now - began, 3), k, visible))
                for j in range(seen[k], visible):
                    seen_at[k * chunk + j] = now
                seen[k] = max(seen[k], visible)
            if time.perf_counter() > deadline:
                raise TimeoutError(f"latency: only {sum(seen)} of {count} visible")
            await asyncio.sleep(poll_s)

    pings: list[tuple[float, float]] = []
    done = asyncio.Event()

    async def database_pings() -> None:
        """A one-document read every 50 ms: the database's own pauses, for the record."""
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
        collection = client[f"{stack.prefix}_metrics"]["seminars"]
        try:
            while not done.is_set():
                asked = time.perf_counter()
                await collection.find_one({"_id": "ping"})
                pings.append((asked - began, (time.perf_counter() - asked) * 1000))
                await asyncio.sleep(0.05)
        finally:
            await client.close()

    began = time.perf_counter()
    probe = asyncio.create_task(database_pings())
    try:
        await asyncio.gather(publisher(), poller())
    finally:
        done.set()
        await probe
    per_event = [(seen - sent) * 1000 for seen, sent in zip(seen_at, sent_at, strict=True)]
    latencies = sorted(per_event)
    send_span = max(sent_at) - min(sent_at)
    slowest = sorted(range(count), key=per_event.__getitem__)[-10:]
    return {
        "events": count,
        "seminars": chunks,
        # When the slowest events were sent (seconds into the phase) and their latency:
        # clustered, they point at a pause (a background job), spread, at contention.
        "slowest": [[round(sent_at[i] - began, 2), round(per_event[i], 1)] for i in slowest],
        "rate_target_per_s": rate,
        "rate_achieved_per_s": round((count - 1) / send_span, 1) if send_span > 0 else None,
        "seconds": round(time.perf_counter() - began, 2),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p90_ms": round(percentile(latencies, 90), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(latencies[-1], 1),
        "report_poll_interval_ms": round(poll_s * 1000, 1),
        "report_median_ms": round(statistics.median(report_seconds) * 1000, 1),
        "report_polls": len(report_seconds),
        "database_read_median_ms": round(statistics.median(p for _, p in pings), 1),
        "database_read_slowest": [
            [round(t, 2), round(p, 1)] for t, p in sorted(pings, key=lambda x: x[1])[-5:]
        ],
    }


async def run_rush_phase(bench: Bench, *, requests: int, replicas: int) -> dict[str, Any]:
    log_dir = bench.workdir / f"rush-{replicas}"
    log_dir.mkdir(parents=True, exist_ok=True)
    result = await run_rush(
        kafka_bootstrap_servers=bench.kafka,
        mongodb_uri=bench.mongo,
        requests=requests,
        capacity=500,
        replicas=replicas,
        log_dir=log_dir,
    )
    keep = (
        "requests", "capacity", "replicas", "kafka_records", "http_requests", "send_s",
        "decided_after_last_sent_s", "total_s", "confirmed", "waitlisted", "checks", "ok",
    )  # fmt: skip
    return {k: result[k] for k in keep}


# --- the run -----------------------------------------------------------------------------


async def run_census(bench: Bench, *, events: int) -> Census:
    """The pipeline's traffic through registration and metrics against a database that
    keeps an oplog, counted document by document (``write_census``)."""
    workdir = bench.workdir / "census"
    with database_with_oplog(workdir) as database:
        census_bench = Bench(
            kafka=bench.kafka,
            mongo=database.address,
            workdir=workdir,
            stack="census",
            database_pid=database.pid,
            extra_env=bench.extra_env,
        )
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(database.address)
        try:
            async with service_stack(census_bench) as stack:
                seminar_id = f"sem-census-{uuid.uuid4().hex[:8]}"
                year = 2102
                await stack.open_seminar(seminar_id, year=year, capacity=events * 10)
                since = await oplog_marker(mongo)
                top_before = await top_counts(mongo)
                await publish_all(
                    stack.producer,
                    stack.requests_topic,
                    seminar_id.encode(),
                    requests_for(seminar_id, events, tag="census"),
                )
                await eventually(
                    lambda: _counted(stack, seminar_id, year, events),
                    what="census counted",
                    timeout_s=120,
                    interval_s=SETUP_POLL_S,
                )
                outbox = mongo[f"{stack.prefix}_registration"]["outbox"]
                # The relay deletes what it published right after publishing it.
                await eventually(
                    lambda: outbox.count_documents({}),
                    until=lambda n: n == 0,
                    what="the outbox emptied",
                    timeout_s=60,
                    interval_s=SETUP_POLL_S,
                )
                return await take_census(
                    mongo,
                    databases={s: f"{stack.prefix}_{s}" for s in ("registration", "metrics")},
                    events=events,
                    since=since,
                    top_before=top_before,
                )
        finally:
            await mongo.close()


async def bench_all(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    phases = args.phases
    if "census" in phases:
        print(f"census: {args.census_events} events, writes counted ...", file=sys.stderr)
        census = await run_census(bench, events=args.census_events)
        print(census.table(), file=sys.stderr)
        results["census"] = census.as_json()
        mismatches = compare(results["census"])
        for mismatch in mismatches:
            print(
                f"WARNING: the model baseline's table is out of date: {mismatch}", file=sys.stderr
            )
        results["census"]["model_mismatches"] = mismatches
    if "baseline" in phases:
        print(f"baseline: {args.events} events ...", file=sys.stderr)
        results["baseline"] = await run_baseline(bench, events=args.events)
        _report(results, "baseline")
    if {"latency", "latency_400", "pipeline"} & set(phases):
        await latency_and_pipeline(bench, args, results, prefix="")
    if "model" in phases:
        # The pipeline's own transaction sizes when it ran (else the table's defaults).
        sizes = results.get("pipeline", {}).get("events_per_transaction", {})
        print(
            f"model: {args.events} events, transactions of {sizes or 'the default'} ...",
            file=sys.stderr,
        )
        results["model"] = await run_model(
            bench.mongo,
            events=args.events,
            events_per_transaction=sizes,
            cpu_seconds=lambda: cpu_seconds(bench.database_pid),
        )
        _report(results, "model")
    if "rush" in phases and not args.skip_rush:
        print(f"rush: {args.rush_requests} requests, 2 replicas ...", file=sys.stderr)
        results["rush"] = await run_rush_phase(bench, requests=args.rush_requests, replicas=2)
        _report(results, "rush")
    if "scaling" in phases and not args.skip_rush:
        print("scaling: the rush with 1 replica ...", file=sys.stderr)
        results["rush_one_replica"] = await run_rush_phase(
            bench, requests=args.rush_requests, replicas=1
        )
        _report(results, "rush_one_replica")
    if "season" in phases:
        print(
            f"season: {args.season_requests} requests over 200 seminars, 2+2 replicas ...",
            file=sys.stderr,
        )
        results["season"] = await run_season(bench, requests=args.season_requests, token=TOKEN)
        _report(results, "season")
    return results


async def latency_and_pipeline(
    bench: Bench, args: argparse.Namespace, results: dict[str, Any], *, prefix: str
) -> None:
    """The latency and pipeline phases on ``bench``, as ``{prefix}latency`` and
    ``{prefix}pipeline`` in ``results``."""
    async with service_stack(bench) as stack:
        # Warm-up: connection pools, code paths, the first group join.
        warm = f"sem-warm-{uuid.uuid4().hex[:8]}"
        await stack.open_seminar(warm, year=2100, capacity=10_000)
        await publish_all(
            stack.producer, stack.requests_topic, warm.encode(), requests_for(warm, 300, tag="w")
        )
        await eventually(
            lambda: _counted(stack, warm, 2100, 300),
            what="warm-up counted",
            timeout_s=120,
            interval_s=SETUP_POLL_S,
        )
        # Latency before the bulk phases: the embedded database trims its oplog
        # (100,000 entries) every 1,000 writes once it is full, a stall of 0.3-0.5 s
        # that the services cannot avoid (see README, Benchmarks).
        if "latency" in args.phases:
            print(f"{prefix}latency: {args.rate}/s for {args.latency_s} s ...", file=sys.stderr)
            results[f"{prefix}latency"] = await run_latency(
                stack,
                rate=args.rate,
                seconds=args.latency_s,
                poll_s=args.poll_ms / 1000,
                mongodb_uri=bench.mongo,
            )
            _report(results, f"{prefix}latency")
        if not prefix and "latency_400" in args.phases:
            print(f"latency_400: {args.rate_high}/s for {args.latency_s} s ...", file=sys.stderr)
            results["latency_400"] = await run_latency(
                stack,
                rate=args.rate_high,
                seconds=args.latency_s,
                poll_s=args.poll_ms / 1000,
                mongodb_uri=bench.mongo,
            )
            _report(results, "latency_400")
        if "pipeline" in args.phases:
            print(f"{prefix}pipeline: {args.events} events ...", file=sys.stderr)
            results[f"{prefix}pipeline"] = await run_pipeline(
                stack,
                events=args.events,
                poll_s=0.05,
                profile=Path(args.profile) / (prefix or ".") if args.profile else None,
                bench=bench,
            )
            _report(results, f"{prefix}pipeline")


def _report(results: dict[str, Any], phase: str) -> None:
    print(f"  {phase}: {json.dumps(results[phase], sort_keys=True)}", file=sys.stderr)


async def _counted(stack: Stack, seminar_id: str, year: int, expected: int) -> bool:
    row = await funnel_row(stack.client, stack.metrics.url, year, seminar_id)
    return bool(row and row["requested"] >= expected)


def _ratio(numerator: float | None, denominator: float | None, digits: int = 3) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, digits)


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def summary(results: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """The run's figures by name (``None``: its phase did not run) and ``targets``."""
    baseline = results.get("baseline", {})
    pipeline = results.get("pipeline", {})
    model = results.get("model", {})
    latency = results.get("latency", {})
    latency_400 = results.get("latency_400", {})
    rush = results.get("rush", {})
    one = results.get("rush_one_replica", {})
    season = results.get("season", {})
    pipeline_rate = pipeline.get("events_per_s")
    scaling = _ratio(one.get("total_s"), rush.get("total_s"), 2)
    out: dict[str, Any] = {
        "baseline_events_per_s": baseline.get("events_per_s"),
        "pipeline_events_per_s": pipeline_rate,
        "ratio": _ratio(pipeline_rate, baseline.get("events_per_s")),
        "model_baseline_events_per_s": model.get("events_per_s"),
        "model_ratio": _ratio(pipeline_rate, model.get("events_per_s")),
        # Whether the census found the writes the model's table says (None: no census).
        "model_table_current": (
            not results["census"]["model_mismatches"] if "census" in results else None
        ),
        "database_busy_pct": pipeline.get("database_busy_pct"),
        "database_cpu_per_event_ratio": _ratio(
            pipeline.get("database_cpu_us_per_event"),
            baseline.get("database_cpu_us_per_event"),
            2,
        ),
        "model_database_cpu_per_event_ratio": _ratio(
            pipeline.get("database_cpu_us_per_event"), model.get("database_cpu_us_per_event"), 2
        ),
        "p50_ms": latency.get("p50_ms"),
        "p99_ms": latency.get("p99_ms"),
        "p50_ms_at_400": latency_400.get("p50_ms"),
        "p99_ms_at_400": latency_400.get("p99_ms"),
        "rush_seconds": rush.get("total_s"),
        "rush_decided_after_last_sent_s": rush.get("decided_after_last_sent_s"),
        "rush_confirmed": rush.get("confirmed"),
        "rush_one_replica_seconds": one.get("total_s"),
        "scaling": scaling,
        "scaling_two_over_one": scaling,
        "season_open_seconds": season.get("total_s"),
        "season_exact": season.get("ok"),
        "events": pipeline.get("events"),
    }
    if "durable_pipeline" in results:
        durable = results["durable_pipeline"]["events_per_s"]
        out["durable_pipeline_events_per_s"] = durable
        out["durable_log_ratio"] = _ratio(durable, pipeline_rate)
    if "durable_latency" in results:
        out["durable_p50_ms"] = results["durable_latency"]["p50_ms"]
        out["durable_p99_ms"] = results["durable_latency"]["p99_ms"]
    # Issue 18's targets; None: the phase behind it did not run.
    out["targets"] = {
        "database_cpu_per_event_ratio_le_6": _at_most(
            out["database_cpu_per_event_ratio"], TARGET_DATABASE_CPU_PER_EVENT_RATIO
        ),
        "ratio_ge_0.15": _at_least(out["ratio"], TARGET_RATIO),
        "model_ratio_ge_0.6": _at_least(out["model_ratio"], TARGET_MODEL_RATIO),
        "database_busy_pct_ge_85": _at_least(out["database_busy_pct"], TARGET_DATABASE_BUSY_PCT),
        "p99_le_100ms": _at_most(out["p99_ms"], TARGET_P99_MS),
        "p99_at_400_le_250ms": _at_most(out["p99_ms_at_400"], TARGET_P99_AT_400_MS),
        "rush_le_15s_exact_capacity": (
            None
            if not rush
            else rush["total_s"] <= TARGET_RUSH_S and rush["confirmed"] == rush["capacity"]
        ),
        "scaling_ge_1.8": _at_least(scaling, TARGET_SCALING),
        "season_exact_counts": season.get("ok"),
    }
    out["machine"] = info
    return out


def table(results: dict[str, Any], out: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []
    if "baseline" in results:
        b = results["baseline"]
        rows.append(
            (
                "baseline",
                "events/s",
                f"{b['events_per_s']:,.0f}  ({b['events']:,} in {b['seconds']} s; database {b['database_cpu_us_per_event']} µs CPU/event)",
            )
        )
    if "model" in results:
        m = results["model"]
        rows.append(
            (
                "model",
                "events/s",
                f"{m['events_per_s']:,.0f}  ({m['events']:,} in {m['seconds']} s; database {m['database_cpu_us_per_event']} µs CPU/event; {m['transactions']} transactions)",
            )
        )
    if "pipeline" in results:
        p = results["pipeline"]
        rows.append(
            (
                "pipeline",
                "events/s",
                f"{p['events_per_s']:,.0f}  ({p['events']:,} in {p['seconds']} s; registration done at {p['registration_decided_s']} s)",
            )
        )
        rows.append(
            (
                "pipeline",
                "ratio to baseline / to model",
                f"{out['ratio']} (target >= {TARGET_RATIO}) / {out['model_ratio']} (target >= {TARGET_MODEL_RATIO})",
            )
        )
        rows.append(
            (
                "pipeline",
                "database",
                f"busy {p['database_busy_pct']} % (target >= {TARGET_DATABASE_BUSY_PCT:.0f}); {p['database_cpu_us_per_event']} µs CPU/event, x{out['database_cpu_per_event_ratio']} the baseline's (target <= {TARGET_DATABASE_CPU_PER_EVENT_RATIO:.0f})",
            )
        )
    for key, target in (("latency", TARGET_P99_MS), ("latency_400", TARGET_P99_AT_400_MS)):
        if key in results:
            lat = results[key]
            rows.append(
                (
                    "latency",
                    f"p50 / p90 / p99 / max ms at {lat['rate_achieved_per_s']}/s",
                    f"{lat['p50_ms']} / {lat['p90_ms']} / {lat['p99_ms']} / {lat['max_ms']}  (target p99 <= {target:.0f}; report every {lat['report_poll_interval_ms']} ms, median answer {lat['report_median_ms']} ms)",
                )
            )
    if "durable_pipeline" in results:
        d = results["durable_pipeline"]
        rows.append(
            (
                "durable log",
                "pipeline events/s",
                f"{d['events_per_s']:,.0f}  ({out['durable_log_ratio']} of the memory log's)",
            )
        )
    if "durable_latency" in results:
        dl = results["durable_latency"]
        rows.append(
            (
                "durable log",
                f"p50 / p99 ms at {dl['rate_achieved_per_s']}/s",
                f"{dl['p50_ms']} / {dl['p99_ms']}",
            )
        )
    for key, label in (("rush", "rush, 2 replicas"), ("rush_one_replica", "rush, 1 replica")):
        if key in results:
            r = results[key]
            rows.append(
                (
                    label,
                    "seconds",
                    f"{r['total_s']}  (after last sent: {r['decided_after_last_sent_s']}; confirmed {r['confirmed']}, waitlisted {r['waitlisted']}; checks {'OK' if r['ok'] else 'FAILED'})",
                )
            )
    if out["scaling"] is not None:
        rows.append(
            (
                "scaling",
                "1 replica / 2 replicas",
                f"x{out['scaling']}  (target >= {TARGET_SCALING})",
            )
        )
    if "season" in results:
        se = results["season"]
        rows.append(
            (
                "season open",
                "seconds",
                f"{se['total_s']}  ({se['requests']:,} requests, {se['seminars']} seminars; confirmed {se['confirmed']}, waitlisted {se['waitlisted']}, rejected {se['rejected']}, cancelled {se['cancelled']}; checks {'OK' if se['ok'] else 'FAILED: ' + ', '.join(k for k, v in se['checks'].items() if not v)})",
            )
        )
    if not rows:
        return "(no phase ran)"
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{a:<{width[0]}}  {m:<{width[1]}}  {v}" for a, m, v in rows]
    return "\n".join(lines)  # fmt: skip


def _phase_list(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(set(chosen) - set(PHASES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown phases {unknown}: choose from {PHASES}")
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="N for baseline and pipeline")
    parser.add_argument("--rate", type=float, default=100.0, help="latency: events per second")
    parser.add_argument(
        "--rate-high", type=float, default=400.0, help="latency_400: events per second"
    )
    parser.add_argument("--latency-s", type=float, default=20.0, help="latency: how long")
    parser.add_argument("--poll-ms", type=float, default=20.0, help="latency: report poll period")
    parser.add_argument("--rush-requests", type=int, default=10_000)
    parser.add_argument("--skip-rush", action="store_true")
    parser.add_argument(
        "--season-requests", type=int, default=100_000, help="season: requests over 200 seminars"
    )
    parser.add_argument(
        "--skip-durable", action="store_true", help="no phases on the durable (make up) stack"
    )
    parser.add_argument("--profile", help="record the services with py-spy into this folder")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results")
    parser.add_argument(
        "--phases",
        type=_phase_list,
        default=PHASES,
        help=f"comma-separated subset of {','.join(PHASES)} (default: all)",
    )
    parser.add_argument(
        "--census-events", type=int, default=500, help="census: events counted write by write"
    )
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the pipeline services (experiments)",
    )
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="seminarops-bench-"))
    print(f"logs in {workdir}", file=sys.stderr)
    started = datetime.now(UTC)
    extra_env = dict(item.split("=", 1) for item in args.service_env)
    with infrastructure(workdir) as bench:
        bench.extra_env = extra_env
        info = machine(bench.stack)
        info["service_env"] = bench.extra_env
        results = asyncio.run(bench_all(bench, args))
    if bench.stack != "external" and "durable" in args.phases and not args.skip_durable:
        # After the first stack is gone, so that the two never compete for the CPU.
        with durable_infrastructure(workdir / "durable") as durable:
            durable.extra_env |= extra_env
            info["durable_stack"] = durable.stack
            asyncio.run(latency_and_pipeline(durable, args, results, prefix="durable_"))
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = summary(results, info)
    record = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "summary": {k: v for k, v in out.items() if k != "machine"},
        "machine": info,
        "phases": results,
    }
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        (RESULTS / f"{stamp}.json").write_text(text)
        (RESULTS / "latest.json").write_text(text)
    print(table(results, out))
    ok = all(
        results[k]["correct"] for k in ("pipeline", "durable_pipeline") if k in results
    ) and all(results[k]["ok"] for k in ("rush", "rush_one_replica", "season") if k in results)
    print(json.dumps(out, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
