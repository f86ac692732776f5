"""Throughput of ``POST /v1/evaluations`` against the real broker and database.

Starts the feedback service (``python -m feedback`` under uvicorn, in its own process;
or in this process over ASGI with ``--asgi``) on fresh topics and a fresh database,
completes one seminar with ``--attendees`` attendees through ``seminar.completed.v1``,
then has every attendee submit one valid evaluation with ``--concurrency`` requests in
flight, and reports requests per second and latency percentiles. Every request must be
a 201 (each is a full transaction: window and attendee checks, the has-responded
marker, the response and the outbox entry).

    .venv/bin/python benchmarks/feedback_throughput.py --attendees 2000 --concurrency 32

Broker and database: ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI`` (defaults: the local
embedded stack of ``make up``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from seminarops_devtools.processes import free_port
from seminarops_devtools.testing.polling import eventually
from seminarops_shared.clock import utc_now
from seminarops_shared.events import envelope_for
from seminarops_shared.events.seminar import SeminarCompleted
from seminarops_shared.events.topics import SEMINAR_EVENTS
from seminarops_shared.events.vocabulary import Kind, Programme

TOKEN = "bench-platform-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def _environment(args: argparse.Namespace, prefix: str, port: int) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": args.kafka,
        "KAFKA_TOPIC_PREFIX": f"{prefix}.",
        "KAFKA_PARTITIONS": "3",
        "MONGODB_URI": args.mongo,
        "MONGODB_DATABASE_PREFIX": f"{prefix}_",
        "AUTH_TOKENS": json.dumps({"platform": [TOKEN], "operator": ["bench-operator-token"]}),
        "FEEDBACK_PORT": str(port),
        "FEEDBACK_HOST": "127.0.0.1",
        "FEEDBACK_LOG_LEVEL": "WARNING",
        "FEEDBACK_LOG_JSON": "true",
    }


@contextlib.asynccontextmanager
async def _uvicorn_service(
    args: argparse.Namespace, prefix: str
) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    env = {**os.environ, **_environment(args, prefix, port)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "feedback",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=None if args.verbose else subprocess.DEVNULL,
    )
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
        ) as client:

            async def ready() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health/ready")).status_code == 200:
                        return True
                if process.returncode is not None:
                    raise SystemExit("the feedback service did not become ready")
                return False

            await eventually(ready, timeout_s=60, interval_s=0.2, what="the feedback service ready")
            yield client
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)


@contextlib.asynccontextmanager
async def _asgi_service(args: argparse.Namespace, prefix: str) -> AsyncIterator[httpx.AsyncClient]:
    os.environ.update(_environment(args, prefix, 1))
    from feedback.app import create_app
    from feedback.settings import FeedbackSettings
    from seminarops_devtools.testing.stack import running

    async with running(create_app(FeedbackSettings())) as client:
        yield client


async def _open_window(
    client: httpx.AsyncClient, args: argparse.Namespace, prefix: str, attendees: list[str]
) -> str:
    seminar_id = f"bench-{uuid.uuid4().hex[:8]}"
    event = SeminarCompleted(
        seminar_id=seminar_id,
        kind=Kind.ONLINE_SEMINAR,
        programme=Programme.ETWINNING,
        year=2026,
        attendee_ids=attendees,
    )
    envelope = envelope_for(event, source="/services/seminar", time=utc_now())
    producer = AIOKafkaProducer(bootstrap_servers=args.kafka, max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        await producer.send_and_wait(
            f"{prefix}.{SEMINAR_EVENTS}", envelope.to_json_bytes(), key=seminar_id.encode()
        )
    finally:
        await producer.stop()

    async def window_open() -> bool:
        response = await client.get(f"/v1/seminars/{seminar_id}/response-rate")
        return response.status_code == 200 and response.json()["attendees"] == len(attendees)

    await eventually(window_open, timeout_s=120, interval_s=0.2, what="the evaluation window open")
    return seminar_id


async def _submit_all(
    client: httpx.AsyncClient, seminar_id: str, people: list[str], concurrency: int
) -> tuple[float, list[float], Counter[int]]:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for person in people:
        queue.put_nowait(person)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    ratings = ["excellent", "very_good", "good", "fair", "poor"]

    async def worker() -> None:
        while not queue.empty():
            person = queue.get_nowait()
            body: dict[str, Any] = {
                "seminar_id": seminar_id,
                "participant_id": person,
                "overall": ratings[hash(person) % 5],
                "comments": "Clear, practical and well paced.",
                "answers": {"content": 1 + hash(person) % 5, "recommend": True},
            }
            started = time.perf_counter()
            response = await client.post("/v1/evaluations", json=body, headers=HEADERS)
            latencies.append(time.perf_counter() - started)
            statuses[response.status_code] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, statuses


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--attendees", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=100, help="requests before measuring")
    parser.add_argument("--asgi", action="store_true", help="in this process, over ASGI")
    parser.add_argument("--verbose", action="store_true", help="show the service's log")
    parser.add_argument(
        "--kafka", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument(
        "--mongo",
        default=os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true"),
    )
    args = parser.parse_args()
    if args.warmup >= args.attendees:
        raise SystemExit("--warmup must be smaller than --attendees")

    prefix = f"bench{uuid.uuid4().hex[:8]}"
    attendees = [f"teacher-{i:06d}" for i in range(args.attendees)]
    service = _asgi_service if args.asgi else _uvicorn_service
    try:
        async with service(args, prefix) as client:
            seminar_id = await _open_window(client, args, prefix, attendees)
            await _submit_all(client, seminar_id, attendees[: args.warmup], args.concurrency)
            measured = attendees[args.warmup :]
            elapsed, latencies, statuses = await _submit_all(
                client, seminar_id, measured, args.concurrency
            )
            rate = (await client.get(f"/v1/seminars/{seminar_id}/response-rate")).json()
    finally:
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(args.mongo)
        await mongo.drop_database(f"{prefix}_feedback")
        await mongo.close()

    print(f"mode: {'ASGI in-process' if args.asgi else 'uvicorn, separate process'}")
    print(
        f"requests: {len(measured)} (after {args.warmup} warm-up), concurrency {args.concurrency}"
    )
    print(f"statuses: {dict(statuses)}")
    print(f"throughput: {len(measured) / elapsed:.1f} evaluations/s ({elapsed:.2f} s)")
    print(
        "latency ms: "
        f"p50 {statistics.median(latencies) * 1000:.1f}, "
        f"p95 {_percentile(latencies, 95) * 1000:.1f}, "
        f"p99 {_percentile(latencies, 99) * 1000:.1f}, "
        f"max {max(latencies) * 1000:.1f}"
    )
    print(f"stored: {rate['responses']} responses of {rate['attendees']} attendees")
    if statuses != Counter({201: len(measured)}) or rate["responses"] != args.attendees:
        raise SystemExit("not every evaluation was accepted exactly once")


if __name__ == "__main__":
    asyncio.run(main())
