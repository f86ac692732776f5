"""The season opens (issue 18): 100,000 registration requests over 200 seminars at once,
through two registration and two metrics replicas (``benchmarks/run.py``, phase
``season``).

Half the requests come by Kafka (``registration.requested.v1``, 10 % of them delivered
twice with the same event id), half by HTTP (``POST /v1/registrations`` spread over
both registration replicas, 2 % posted twice). A quarter of the seminars admit only
four of the eight countries the participants come from (the others are rejected
``not_eligible``), and 2 % of the eligible Kafka requesters cancel
(``registration.cancellation_requested.v1``, sent after their request on the same
partition; at least one per seminar). Capacities vary from a tenth to all of a
seminar's requests (50 to 500 against 500 at full size), so most seminars fill and keep
a waiting list.

So every seminar's outcome is known in advance (automatic promotion):
``cancelled`` = the cancellations, ``rejected`` = the ineligible requesters,
``confirmed`` = min(capacity, eligible - cancelled), ``waitlisted`` = the rest. The
phase is timed from the first send until the metrics reports
(``/v1/reports/funnel``, ``/v1/reports/seminars``) show exactly that for all seminars;
then registration's own records are counted, and the checks are: registration's truth
is the expected one, never more confirmed than the capacity, confirmed + waitlisted +
rejected + cancelled = distinct requests, and metrics' counts = registration's.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient
from registration_rush import post_registrations, scheduled_event

from seminarops_devtools.processes import ensure_topics
from seminarops_devtools.testing.chaos import ServiceProcess
from seminarops_devtools.testing.polling import eventually
from seminarops_shared.events import envelope_for
from seminarops_shared.events.inbound import (
    Participant,
    RegistrationCancellationRequested,
    RegistrationRequested,
)
from seminarops_shared.events.topics import ALL_TOPICS, REGISTRATION_REQUESTS, SEMINAR_EVENTS

if TYPE_CHECKING:
    from run import Bench

PLATFORM_SOURCE = "/platform/season-portal"
SEMINAR_SOURCE = "/services/seminar"
COUNTRIES = ("FR", "IT", "PL", "ES", "GR", "UA", "DE", "PT")
ELIGIBLE = ("FR", "IT", "PL", "ES")
YEAR = 2120
KAFKA_DUPLICATES = 0.10
HTTP_DUPLICATES = 0.02
CANCELLATIONS = 0.02
HTTP_CONCURRENCY = 40
STATUSES = ("confirmed", "waitlisted", "rejected", "cancelled")


@dataclass
class SeminarPlan:
    seminar_id: str
    capacity: int
    restricted: bool
    kafka: list[int] = field(default_factory=list)  # participant numbers
    http: list[int] = field(default_factory=list)
    cancelling: list[int] = field(default_factory=list)

    @property
    def requesters(self) -> list[int]:
        return self.kafka + self.http

    def eligible(self, number: int) -> bool:
        return not self.restricted or country(number) in ELIGIBLE

    def expected(self) -> dict[str, int]:
        eligible = sum(1 for n in self.requesters if self.eligible(n))
        staying = eligible - len(self.cancelling)
        confirmed = min(self.capacity, staying)
        return {
            "requested": len(self.requesters),
            "confirmed": confirmed,
            "waitlisted": staying - confirmed,
            "rejected": len(self.requesters) - eligible,
            "cancelled": len(self.cancelling),
        }


def country(number: int) -> str:
    return COUNTRIES[number % len(COUNTRIES)]


def participant(number: int) -> Participant:
    pid = f"season-{number:07d}"
    return Participant(
        id=pid,
        display_name=f"Teacher {number}",
        email=f"{pid}@school.example",
        country=country(number),
        school_id=f"school-{number % 977}",
    )


def plan_season(requests: int, seminars: int, *, rng: random.Random) -> list[SeminarPlan]:
    """Who asks for which seminar, by which door; who cancels."""
    population = max(requests, 40_000)
    # A tenth to all of the seminar's requests (50 to 500 at full size): most fill up.
    per_seminar = max(2, requests // seminars)
    plans = [
        SeminarPlan(
            seminar_id=f"sem-season-{k:03d}-{uuid.uuid4().hex[:6]}",
            capacity=rng.randint(max(1, per_seminar // 10), per_seminar),
            restricted=k % 4 == 0,
        )
        for k in range(seminars)
    ]
    for k, plan in enumerate(plans):
        count = requests // seminars + (1 if k < requests % seminars else 0)
        numbers = rng.sample(range(population), count)
        cut = count // 2
        plan.kafka, plan.http = numbers[:cut], numbers[cut:]
        eligible_kafka = [n for n in plan.kafka if plan.eligible(n)]
        cancelling = max(1, round(len(eligible_kafka) * CANCELLATIONS)) if eligible_kafka else 0
        plan.cancelling = rng.sample(eligible_kafka, cancelling)
    return plans


def _envelope_bytes(data: Any) -> bytes:
    return envelope_for(data, source=PLATFORM_SOURCE, time=datetime.now(UTC)).to_json_bytes()


async def _send_kafka(
    producer: AIOKafkaProducer, topic: str, plans: Sequence[SeminarPlan], rng: random.Random
) -> int:
    """Every Kafka request (some twice, the same record), then the cancellations, per
    seminar on its key; seminars interleaved as a busy portal would send them."""
    futures = []
    for plan in plans:
        key = plan.seminar_id.encode()
        for number in plan.kafka:
            value = _envelope_bytes(
                RegistrationRequested(seminar_id=plan.seminar_id, participant=participant(number))
            )
            copies = 2 if rng.random() < KAFKA_DUPLICATES else 1
            futures.extend([await producer.send(topic, value, key=key) for _ in range(copies)])
        for number in plan.cancelling:
            value = _envelope_bytes(
                RegistrationCancellationRequested(
                    seminar_id=plan.seminar_id, participant_id=participant(number).id
                )
            )
            futures.append(await producer.send(topic, value, key=key))
    await asyncio.gather(*futures)
    return len(futures)


async def _post_http(
    urls: Sequence[str], token: str, plans: Sequence[SeminarPlan], rng: random.Random
) -> Counter[int]:
    """POST the HTTP requests over the replicas in turn (some twice), retrying 503s and
    dropped connections; ``codes[0]``: never answered."""
    work = [(plan.seminar_id, n) for plan in plans for n in plan.http]
    work += [item for item in work if rng.random() < HTTP_DUPLICATES]
    rng.shuffle(work)
    return await post_registrations(
        urls=urls,
        requests=[(seminar_id, participant(n)) for seminar_id, n in work],
        concurrency=HTTP_CONCURRENCY,
        token=token,
    )


async def _metrics_counts(client: httpx.AsyncClient, url: str) -> dict[str, dict[str, int]]:
    """Per seminar, what the metrics reports say (funnel: requested, cancelled,
    rejected; seminars: confirmed and waitlisted now)."""
    funnel = await client.get(f"{url}/v1/reports/funnel", params={"year": YEAR})
    funnel.raise_for_status()
    table = await client.get(f"{url}/v1/reports/seminars", params={"year": YEAR})
    table.raise_for_status()
    counts: dict[str, dict[str, int]] = {}
    for row in funnel.json()["seminars"]:
        counts[row["seminar_id"]] = {k: int(row[k]) for k in ("requested", "cancelled", "rejected")}
    for row in table.json()["rows"]:
        counts.setdefault(row["seminar_id"], {}).update(
            confirmed=int(row["confirmed"]), waitlisted=int(row["waitlisted"])
        )
    return counts


async def _registration_truth(db: Any) -> dict[str, dict[str, int]]:
    """Per seminar, registration's own records by status now (and distinct requesters)."""
    truth: dict[str, dict[str, int]] = {}
    cursor = await db["registrations"].aggregate(
        [{"$group": {"_id": {"s": "$seminar_id", "t": "$status"}, "n": {"$sum": 1}}}]
    )
    async for row in cursor:
        counts = truth.setdefault(row["_id"]["s"], dict.fromkeys(STATUSES, 0) | {"requested": 0})
        counts[row["_id"]["t"]] = counts.get(row["_id"]["t"], 0) + int(row["n"])
        counts["requested"] += int(row["n"])
    return truth


async def _ready(client: httpx.AsyncClient, process: ServiceProcess) -> bool:
    if not process.running:
        raise RuntimeError(f"{process.name} exited:\n{process.log()}")
    try:
        return (await client.get(f"{process.url}/health/ready")).status_code == 200
    except httpx.HTTPError:
        return False


async def run_season(
    bench: Bench, *, requests: int, seminars: int = 200, token: str, seed: int | None = None
) -> dict[str, Any]:
    rng = random.Random(seed)
    prefix = f"bs{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(
        ensure_topics, bench.kafka, [f"{prefix}.{t}" for t in ALL_TOPICS], partitions=6
    )
    plans = plan_season(requests, seminars, rng=rng)
    registrations = [bench.start(prefix, "registration", i) for i in range(2)]
    metrics = [bench.start(prefix, "metrics", i) for i in range(2)]
    producer = AIOKafkaProducer(
        bootstrap_servers=bench.kafka, linger_ms=5, max_batch_size=256 * 1024, acks="all"
    )
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(bench.mongo)
    registration_db = mongo[f"{prefix}_registration"]
    try:
        await producer.start()
        async with httpx.AsyncClient(timeout=60) as client:
            for process in [*registrations, *metrics]:
                await eventually(
                    functools.partial(_ready, client, process),
                    what=f"{process.name} ready",
                    timeout_s=90,
                    interval_s=0.1,
                )
            for plan in plans:
                data = scheduled_event(plan.seminar_id, capacity=plan.capacity, year=YEAR)
                if plan.restricted:
                    data = data.model_copy(update={"eligible_countries": list(ELIGIBLE)})
                await producer.send(
                    f"{prefix}.{SEMINAR_EVENTS}",
                    envelope_for(
                        data, source=SEMINAR_SOURCE, time=datetime.now(UTC)
                    ).to_json_bytes(),
                    key=plan.seminar_id.encode(),
                )
            await producer.flush()
            wanted = {plan.seminar_id for plan in plans}
            await eventually(
                lambda: registration_db["seminars"].count_documents({"_id": {"$in": list(wanted)}}),
                until=lambda n: n == len(wanted),
                what="registration knows every seminar",
                timeout_s=120,
                interval_s=0.2,
            )
            await eventually(
                lambda: _metrics_counts(client, metrics[0].url),
                until=lambda counts: wanted <= set(counts),
                what="metrics knows every seminar",
                timeout_s=120,
                interval_s=0.2,
            )

            expected = {plan.seminar_id: plan.expected() for plan in plans}
            started = time.perf_counter()
            sent_at: list[float] = []

            async def kafka_side() -> int:
                sent = await _send_kafka(producer, f"{prefix}.{REGISTRATION_REQUESTS}", plans, rng)
                sent_at.append(time.perf_counter())
                return sent

            async def http_side() -> Counter[int]:
                codes = await _post_http([r.url for r in registrations], token, plans, rng)
                sent_at.append(time.perf_counter())
                return codes

            records, codes = await asyncio.gather(kafka_side(), http_side())
            deadline = time.perf_counter() + max(300.0, requests / 100)
            seen: dict[str, dict[str, int]] = {}
            while time.perf_counter() < deadline:
                seen = await _metrics_counts(client, metrics[0].url)
                if all(seen.get(s) == e for s, e in expected.items()):
                    break
                await asyncio.sleep(0.5)
            done = time.perf_counter()
            truth = await _registration_truth(registration_db)
            alive = all(p.running for p in [*registrations, *metrics])
    finally:
        await producer.stop()
        for process in [*registrations, *metrics]:
            process.stop(timeout_s=30)
            bench.services.remove(process)
        for name in ("registration", "metrics"):
            await mongo.drop_database(f"{prefix}_{name}")
        await mongo.close()

    def total(counts: dict[str, dict[str, int]], key: str) -> int:
        return sum(c.get(key, 0) for s, c in counts.items() if s in expected)

    capacity = {plan.seminar_id: plan.capacity for plan in plans}
    metrics_view = {s: {k: seen.get(s, {}).get(k) for k in e} for s, e in expected.items()}
    truth_view = {s: {k: truth.get(s, {}).get(k, 0) for k in e} for s, e in expected.items()}
    checks = {
        "registration_as_expected": truth_view == expected,
        "never_over_capacity": all(
            truth.get(s, {}).get("confirmed", 0) <= c for s, c in capacity.items()
        ),
        "every_request_decided": all(
            sum(truth.get(s, {}).get(k, 0) for k in STATUSES) == e["requested"]
            for s, e in expected.items()
        ),
        "metrics_equal_registration": metrics_view == truth_view,
        "http_all_answered": set(codes) - {-1} <= {200, 201},
        "replicas_alive": alive,
    }
    wrong = [
        s for s in expected if truth_view[s] != expected[s] or metrics_view[s] != truth_view[s]
    ]
    return {
        "requests": requests,
        "seminars": seminars,
        "kafka_records": records,
        "http_status_codes": {str(k): v for k, v in sorted(codes.items())},
        "send_s": round(max(sent_at) - started, 2),
        "total_s": round(done - started, 2),
        **{k: total(truth, k) for k in STATUSES},
        "checks": checks,
        "ok": all(checks.values()),
        # The first few seminars that differ, for the record.
        "mismatches": {
            s: {"expected": expected[s], "registration": truth_view[s], "metrics": metrics_view[s]}
            for s in wrong[:5]
        },
    }


def describe(result: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in result.items() if k != "mismatches"}, sort_keys=True)
