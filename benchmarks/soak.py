"""``make soak``: half an hour of steady mixed traffic through every service, watched.

The system ``make up`` starts (``StackSystem``: Tansu with its log in SeaweedFS,
SecantusDB with ``--sync-on-commit``, the four services) takes one-minute rounds of the
fault suite's traffic with no fault: registrations over Kafka and HTTP at ``--rate`` per
second, duplicates, cancellations, attendance, completions and evaluations. Each round
is audited (nothing lost, nothing counted twice). Each minute records every process's
resident memory and CPU seconds, each consumer group's largest lag during the round (in
records and in seconds of that group's own traffic), and the p50/p99 time from
publishing a registration request on Kafka until the metrics report counts it (a probe
seminar of the round, in a year of its own, at one tenth of the rate). Written to
``benchmarks/results/soak-latest.json``.

It fails when a process's memory grows by more than 10 % from the end of the warm-up to
the end, when a group lags by more than one second of its traffic, or on any error
(traffic not accepted in time, an audit that does not hold). Not in CI: it takes
``--minutes``.

``--log memory`` runs the same stack with the broker's log in memory (``make up``
with ``KAFKA_LOG=memory``), without the object store. The embedded broker lists a
partition's batches for every fetch (``benchmarks/broker_fetch_cost.py``), so its cost
grows with the log; on the durable log each listing is an S3 LIST, and over half an
hour that growth, not the services, sets what the durable stack carries on two cores.
The broker's own memory is then the log and grows by design: recorded, not judged.

Not the fault suite's own ``ChaosSystem``: that one routes registration's database and
broker connections through TCP proxies running in this very process, whose event loop
and GIL the traffic generator saturates; they are there to inject faults, and they
made the soak measure itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from seminarops_shared.events.topics import SUBSCRIPTIONS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.chaos.harness import (  # noqa: E402 - after the path is set
    OPERATOR,
    PARTITIONS,
    PLATFORM,
    SERVICES,
    Chaos,
    Ledger,
    SeminarPlan,
    StreamPlan,
    audit_until_holds,
)
from tests.chaos.stack_system import StackSystem  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "soak-latest.json"
ROUND_S = 60
RSS_GROWTH_LIMIT = 0.10
PROBE_SHARE = 0.1
# Each round's probe seminar starts in a year of its own, so that the report it polls
# ten times a second aggregates that one seminar, not every seminar of the soak so far
# (the report asked of the current year grew by 21 seminars a minute).
PROBE_FIRST_YEAR = 2101
PROBE_POLL_S = 0.1
# Seconds of traffic the generator may have in flight at once (its concurrency).
IN_FLIGHT_S = 4
# Below this share of --rate the soak did not offer its load: a failure, not a pass.
OFFERED_SHARE = 0.9


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def processes(system: object) -> dict[str, int]:
    """Every process ``make up`` started, by name (services, broker, database, log
    store), and this one (the traffic, the probe, the lag samples, the audit)."""
    assert isinstance(system, StackSystem)
    return system.pids() | {"soak": os.getpid()}


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def schedule_probe(
    suite: Chaos, ledger: Ledger, seminar_id: str, *, year: int, capacity: int
) -> None:
    """The probe's seminar, in ``year``, over HTTP; returns once registration knows it."""
    starts = datetime(year, 6, 1, 15, tzinfo=UTC)
    body = {
        "id": seminar_id,
        "title": f"Soak probe {seminar_id}",
        "kind": "online_seminar",
        "programme": "etwinning",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=1)).isoformat(),
        "timezone": "Europe/Brussels",
        "capacity": capacity,
        "language": "en",
        "theme": "soak",
    }
    seminar_url = suite.system.urls("seminar")[0]
    registration_url = suite.system.urls("registration")[0]
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            created = await http.post(f"{seminar_url}/v1/seminars", json=body, headers=OPERATOR)
            known = await http.get(
                f"{registration_url}/v1/seminars/{seminar_id}/registrations?limit=1",
                headers=PLATFORM,
            )
            if created.status_code in {200, 201} and known.status_code == 200:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"probe seminar {seminar_id}: {created.status_code}, {known.status_code}"
                )
            await asyncio.sleep(0.2)  # polling interval
    ledger.seminars[seminar_id] = SeminarPlan(seminar_id, capacity, year, lifecycle=False)


async def probe_latency(
    suite: Chaos, ledger: Ledger, tag: str, *, year: int, rate: float, seconds: float
) -> list[float]:
    """Registration requests on Kafka at ``rate`` for ``seconds`` to a seminar of their
    own; each one's milliseconds from the send until the metrics funnel counts it.

    Measured as ``make bench``'s latency phase measures it: from just before the send
    (the broker's acknowledgement is part of the way), sends paced and not waiting for
    each other's acknowledgement (waiting held the pace back whenever an
    acknowledgement took longer than the gap between two sends). One seminar is one
    partition: its requests are decided, published and counted in send order, so a
    count of ``c`` means its first ``c`` requests are counted."""
    seminar_id = f"soak-{tag}-probe"
    count = max(1, round(rate * seconds))
    await schedule_probe(suite, ledger, seminar_id, year=year, capacity=count + 1)
    sent_at: list[float] = []
    seen_at: list[float] = []
    metrics_url = suite.system.urls("metrics")[0]

    async def send() -> None:
        start = time.monotonic()
        sends = []
        for i in range(count):
            if (delay := start + i / rate - time.monotonic()) > 0:
                await asyncio.sleep(delay)  # pacing
            sent_at.append(time.monotonic())
            sends.append(
                asyncio.create_task(
                    suite.traffic.register_kafka(ledger, seminar_id, f"{tag}-probe-{i}")
                )
            )
        await asyncio.gather(*sends)

    async def watch() -> None:
        deadline = time.monotonic() + seconds + 120
        async with httpx.AsyncClient(timeout=10) as http:
            while len(seen_at) < count:
                answer = await http.get(f"{metrics_url}/v1/reports/funnel", params={"year": year})
                answer.raise_for_status()
                row = next(
                    (r for r in answer.json()["seminars"] if r["seminar_id"] == seminar_id), None
                )
                counted = min(count, int(row["requested"]) if row else 0)
                now = time.monotonic()
                seen_at.extend([now] * (counted - len(seen_at)))
                if time.monotonic() > deadline:
                    raise TimeoutError(f"probe {tag}: {len(seen_at)} of {count} counted")
                await asyncio.sleep(PROBE_POLL_S)

    await asyncio.gather(send(), watch())
    return [(seen - sent) * 1000 for sent, seen in zip(sent_at, seen_at, strict=True)]


async def group_lag(system: Any, service: str) -> tuple[dict[str, int], dict[str, int], float]:
    """The group's lag per lagging ``topic:partition``, as bounds, and how long reading
    it took.

    The ends of the group's own topics, its committed offsets, the ends again: the true
    lag when the offsets were read lies between the first ends and the second minus
    those offsets (reading one ``AIOKafkaConsumer`` at a time takes seconds under load).
    The harness's ``lags()`` reads every topic's end first and then the four groups'
    offsets one after the other (up to 8 s a sample here): a group that moved on
    meanwhile had committed past the end it was compared with, a negative lag that,
    summed with its other partitions, hid their positive ones, and a group whose sum
    was negative was not recorded at all."""
    asked = time.monotonic()

    before = await system.log_ends(service)
    committed = await system.committed_offsets(service)
    after = await system.log_ends(service)

    def behind(end: dict[Any, int]) -> dict[str, int]:
        return {
            f"{tp.topic.removeprefix(system.prefix + '.')}:{tp.partition}": end[tp] - max(0, c)
            for tp, c in committed.items()
            if end[tp] > max(0, c)
        }

    return behind(before), behind(after), time.monotonic() - asked


async def topic_ends(suite: Chaos) -> dict[str, int]:
    """Records on each topic some group reads, now."""
    topics = {t for service in SERVICES for t in SUBSCRIPTIONS[service]}
    return {t: await suite.system.topic_size(t) for t in sorted(topics)}


async def one_round(suite: Chaos, minute: int, rate: float) -> dict[str, Any]:
    tag = f"soak{minute:03d}"
    flow_seminars = 20
    plan = StreamPlan(
        flow_seminars=flow_seminars,
        requests_per_seminar=max(1, round(rate * ROUND_S / flow_seminars)),
        capacity=max(10, round(rate * ROUND_S / flow_seminars * 0.6)),
        rate_per_s=rate,
        # A registration's flow holds its slot through its pauses (up to 1 s before a
        # duplicate, 1.5 s before a cancellation) and every answer it waits for: 128
        # slots capped what the soak offered at about 40 requests/s on this machine,
        # whatever --rate said (a "minute" at 60/s took 95-166 s, at 200/s over 8 min).
        concurrency=max(128, round(rate * IN_FLIGHT_S)),
    )
    pids = processes(suite.system)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    ledger, flow, lifecycle, registered = await suite.traffic.prepare(tag, plan)
    ends_before, started = await topic_ends(suite), time.monotonic()
    stream = asyncio.create_task(
        suite.traffic.stream(ledger, flow, lifecycle, registered, plan, tag)
    )
    probe = asyncio.create_task(
        probe_latency(
            suite,
            ledger,
            tag,
            year=PROBE_FIRST_YEAR + minute,
            rate=rate * PROBE_SHARE,
            seconds=ROUND_S * 0.8,
        )
    )
    # At least (judged) and at most (recorded): see group_lag.
    largest_lag: dict[str, int] = dict.fromkeys(SERVICES, 0)
    largest_upper: dict[str, int] = dict.fromkeys(SERVICES, 0)
    where: dict[str, dict[str, int]] = {}
    sample_s: list[float] = []
    try:
        while not stream.done():
            for service in SERVICES:
                lag, at_most, took = await group_lag(suite.system, service)
                sample_s.append(took)
                if sum(lag.values()) >= largest_lag.get(service, 0):
                    largest_lag[service], where[service] = sum(lag.values()), lag
                largest_upper[service] = max(largest_upper[service], sum(at_most.values()))
            await asyncio.wait({stream}, timeout=5)  # a lag sample every 5 s
        await stream
        latencies = await probe
    finally:
        for task in (stream, probe):
            task.cancel()
        await asyncio.gather(stream, probe, return_exceptions=True)
    elapsed = time.monotonic() - started
    ends_after = await topic_ends(suite)
    # One second of a group's traffic: what arrived on the topics it reads, per second of
    # the round (registration.events carries more than the requests, seminar.events less).
    per_second = {
        service: max(
            1.0,
            sum(ends_after[t] - ends_before[t] for t in SUBSCRIPTIONS[service]) / elapsed,
        )
        for service in SERVICES
    }
    audit = await audit_until_holds(suite.system, suite.tail, ledger)
    return {
        "minute": minute,
        "requests_accepted": len(ledger.requests),
        "events_sent": ledger.events_sent,
        "stream_s": round(elapsed, 1),
        # The stream's registrations (the probe's and the lifecycle seminar's aside)
        # over the time it took to have them all accepted.
        "requests_per_s": round(suite.traffic.planned_operations(plan) / elapsed, 1),
        "lost": audit.lost,
        "double_counted": audit.double_counted,
        "audit_holds": audit.holds,
        "largest_lag": largest_lag,
        "largest_lag_s": {
            service: round(lag / per_second[service], 2) for service, lag in largest_lag.items()
        },
        "largest_lag_where": where,
        "largest_lag_at_most": largest_upper,
        "records_per_s": {service: round(r, 1) for service, r in per_second.items()},
        "lag_sample_s_max": round(max(sample_s, default=0.0), 2),
        "p99_publish_to_report_ms": round(percentile(latencies, 99), 1),
        "p50_publish_to_report_ms": round(percentile(latencies, 50), 1),
        "probe_requests": len(latencies),
        "rss_mb": {name: rss_mb(pid) for name, pid in pids.items()},
        "cpu_s": {
            name: round(after - before, 1)
            for name, pid in pids.items()
            if (before := cpu_before.get(name)) is not None
            and (after := cpu_seconds(pid)) is not None
        },
    }


async def stop_leftovers() -> None:
    """Cancel what a failed or interrupted round left running: the stream's operations
    are tasks of their own, which cancelling the stream does not reach, and which would
    go on retrying against a system being stopped."""
    leftovers = asyncio.all_tasks() - {asyncio.current_task()}
    for task in leftovers:
        task.cancel()
    with contextlib.suppress(Exception):
        await asyncio.gather(*leftovers, return_exceptions=True)


def judge(
    rows: list[dict[str, Any]], *, warm_up: int, rate: float, unjudged: frozenset[str]
) -> list[str]:
    problems = [
        f"minute {r['minute']}: audit lost {r['lost']}, double counted {r['double_counted']}"
        for r in rows
        if not r["audit_holds"]
    ]
    problems += [
        f"minute {r['minute']}: {r['requests_per_s']} requests/s offered, "
        f"not {rate:.0f} (a minute of traffic took {r['stream_s']} s)"
        for r in rows
        if r["requests_per_s"] < rate * OFFERED_SHARE
    ]
    problems += [
        f"minute {r['minute']}: {service} lagged {r['largest_lag'][service]} records, "
        f"{seconds} s of its traffic ({r['records_per_s'][service]} records/s) > 1 s"
        for r in rows
        for service, seconds in r["largest_lag_s"].items()
        if seconds > 1.0
    ]
    if len(rows) > warm_up:
        base, last = rows[warm_up - 1]["rss_mb"], rows[-1]["rss_mb"]
        for name, before in base.items():
            if name in unjudged:
                continue  # grows by design (see ``soak``): recorded, not judged
            after = last.get(name)
            if before and after and after > before * (1 + RSS_GROWTH_LIMIT):
                problems.append(f"{name}: RSS {before} MB after warm-up, {after} MB at the end")
    return problems


async def soak(minutes: int, rate: float, warm_up: int, log: str, partitions: int) -> int:
    # The generator's ledger and event tail grow by design; so does a log in memory.
    unjudged = frozenset({"soak", "kafka"} if log == "memory" else {"soak"})
    os.environ["KAFKA_LOG"] = log  # read by ``make up`` (``StackSystem``)
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        suite = Chaos(StackSystem(Path(workdir), partitions=partitions))
        rows: list[dict[str, Any]] = []
        error: str | None = None
        try:
            await suite.start()
            for minute in range(1, minutes + 1):
                rows.append(await one_round(suite, minute, rate))
                row = rows[-1]
                print(
                    f"minute {minute}: {row['requests_accepted']} accepted in "
                    f"{row['stream_s']} s ({row['requests_per_s']}/s), p50/p99 {row['p50_publish_to_report_ms']}/"
                    f"{row['p99_publish_to_report_ms']} ms, lag {row['largest_lag']} "
                    f"= {row['largest_lag_s']} s, lost {row['lost']}, "
                    f"double {row['double_counted']}, cpu s {row['cpu_s']}",
                    flush=True,
                )
        except Exception as failure:
            error = repr(failure)
        finally:
            await stop_leftovers()
            await suite.close()
    problems = judge(rows, warm_up=warm_up, rate=rate, unjudged=unjudged)
    problems += [error] if error else []
    RESULTS.write_text(
        json.dumps(
            {
                "minutes": minutes,
                "rate_per_s": rate,
                "broker_log": log,
                "partitions": partitions,
                "warm_up_minutes": warm_up,
                "rows": rows,
                "problems": problems,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written to {RESULTS}")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=30, help="rounds of one minute")
    parser.add_argument(
        "--rate",
        type=float,
        default=100.0,
        help="requests per second (each makes about two events: 100/s is about 200 events/s)",
    )
    parser.add_argument("--warm-up", type=int, default=5, help="minutes before memory is compared")
    parser.add_argument(
        "--log",
        choices=("durable", "memory"),
        default="durable",
        help="where the broker keeps its log: durable (make up's default, SeaweedFS) or memory",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=PARTITIONS,
        help="partitions per topic (measured on the durable log at --rate 100: 12 cost the "
        "object store more CPU than 3, not less)",
    )
    args = parser.parse_args()
    if args.minutes < 1 or args.rate <= 0 or not 1 <= args.warm_up <= args.minutes:
        parser.error("need --minutes >= 1, --rate > 0 and 1 <= --warm-up <= --minutes")
    if not 1 <= args.partitions <= 64:
        parser.error("--partitions must be between 1 and 64")
    return asyncio.run(soak(args.minutes, args.rate, args.warm_up, args.log, args.partitions))


if __name__ == "__main__":
    raise SystemExit(main())
