"""``make soak``: half an hour of steady mixed traffic through every service, watched.

The fault suite's system (broker on its durable log, database, the four services as
real processes) takes one-minute rounds of the fault suite's traffic with no fault:
registrations over Kafka and HTTP at ``--rate`` per second, duplicates, cancellations,
attendance, completions and evaluations. Each round is audited (nothing lost, nothing
counted twice). Each minute records every process's resident memory, each consumer
group's largest lag during the round, and the p99 time from publishing a registration
request on Kafka until the metrics report counts it (a probe seminar of the round at
one tenth of the rate). Written to ``benchmarks/results/soak-latest.json``.

It fails when a process's memory grows by more than 10 % from the end of the warm-up to
the end, when a group lags by more than one second of traffic, or on any error (traffic
not accepted in time, an audit that does not hold). Not in CI: it takes ``--minutes``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.chaos.harness import (  # noqa: E402 - after the path is set
    Chaos,
    ChaosSystem,
    Ledger,
    StreamPlan,
    audit_until_holds,
)

RESULTS = ROOT / "benchmarks" / "results" / "soak-latest.json"
ROUND_S = 60
RSS_GROWTH_LIMIT = 0.10
PROBE_SHARE = 0.1


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


def processes(system: ChaosSystem) -> dict[str, int | None]:
    pids: dict[str, int | None] = {
        replica.name: replica.pid for replicas in system.replicas.values() for replica in replicas
    }
    if system.kafka is not None:
        pids["broker"] = system.kafka.pid
    if system.mongo is not None:
        pids["database"] = system.mongo.pid
    if system.s3 is not None:
        pids["log store"] = system.s3.server.pid
    return pids


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def probe_latency(
    suite: Chaos, ledger: Ledger, tag: str, *, rate: float, seconds: float
) -> list[float]:
    """Registration requests on Kafka at ``rate`` for ``seconds`` to a seminar of their
    own; each one's milliseconds from the send until the metrics funnel counts it."""
    seminar_id = f"soak-{tag}-probe"
    count = max(1, round(rate * seconds))
    await suite.traffic.schedule(ledger, seminar_id, capacity=count + 1, lifecycle=False)
    year = ledger.seminars[seminar_id].year
    sent_at: list[float] = []
    seen_at: list[float] = []
    metrics_url = suite.system.primary("metrics").url

    async def send() -> None:
        start = time.monotonic()
        for i in range(count):
            if (delay := start + i / rate - time.monotonic()) > 0:
                await asyncio.sleep(delay)  # pacing
            await suite.traffic.register_kafka(ledger, seminar_id, f"{tag}-probe-{i}")
            sent_at.append(time.monotonic())

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
                await asyncio.sleep(0.1)  # polling interval

    await asyncio.gather(send(), watch())
    # send() records the time after the producer's acknowledgement, so a request counted
    # before that would be negative: the acknowledgement is the publish.
    return [max(0.0, (seen - sent) * 1000) for sent, seen in zip(sent_at, seen_at, strict=False)]


async def one_round(suite: Chaos, minute: int, rate: float) -> dict[str, Any]:
    tag = f"soak{minute:03d}"
    flow_seminars = 20
    plan = StreamPlan(
        flow_seminars=flow_seminars,
        requests_per_seminar=max(1, round(rate * ROUND_S / flow_seminars)),
        capacity=max(10, round(rate * ROUND_S / flow_seminars * 0.6)),
        rate_per_s=rate,
        concurrency=128,
    )
    ledger, flow, lifecycle, registered = await suite.traffic.prepare(tag, plan)
    stream = asyncio.create_task(
        suite.traffic.stream(ledger, flow, lifecycle, registered, plan, tag)
    )
    probe = asyncio.create_task(
        probe_latency(suite, ledger, tag, rate=rate * PROBE_SHARE, seconds=ROUND_S * 0.8)
    )
    largest_lag: dict[str, int] = {}
    try:
        while not stream.done():
            for service, lag in (await suite.system.lags()).items():
                largest_lag[service] = max(largest_lag.get(service, 0), sum(lag.values()))
            await asyncio.wait({stream}, timeout=5)  # a lag sample every 5 s
        await stream
        latencies = await probe
    finally:
        for task in (stream, probe):
            task.cancel()
        await asyncio.gather(stream, probe, return_exceptions=True)
    audit = await audit_until_holds(suite.system, suite.tail, ledger)
    return {
        "minute": minute,
        "requests_accepted": len(ledger.requests),
        "events_sent": ledger.events_sent,
        "lost": audit.lost,
        "double_counted": audit.double_counted,
        "audit_holds": audit.holds,
        "largest_lag": largest_lag,
        "p99_publish_to_report_ms": round(percentile(latencies, 99), 1),
        "p50_publish_to_report_ms": round(percentile(latencies, 50), 1),
        "rss_mb": {name: rss_mb(pid) for name, pid in processes(suite.system).items()},
    }


def judge(rows: list[dict[str, Any]], *, warm_up: int, rate: float) -> list[str]:
    problems = [
        f"minute {r['minute']}: audit lost {r['lost']}, double counted {r['double_counted']}"
        for r in rows
        if not r["audit_holds"]
    ]
    problems += [
        f"minute {r['minute']}: {service} lagged {lag} records (> {rate:.0f}, 1 s of traffic)"
        for r in rows
        for service, lag in r["largest_lag"].items()
        if lag > rate
    ]
    if len(rows) > warm_up:
        base, last = rows[warm_up - 1]["rss_mb"], rows[-1]["rss_mb"]
        for name, before in base.items():
            after = last.get(name)
            if before and after and after > before * (1 + RSS_GROWTH_LIMIT):
                problems.append(f"{name}: RSS {before} MB after warm-up, {after} MB at the end")
    return problems


async def soak(minutes: int, rate: float, warm_up: int) -> int:
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        suite = Chaos(ChaosSystem(Path(workdir)))
        rows: list[dict[str, Any]] = []
        error: str | None = None
        try:
            await suite.start()
            for minute in range(1, minutes + 1):
                rows.append(await one_round(suite, minute, rate))
                row = rows[-1]
                print(
                    f"minute {minute}: {row['requests_accepted']} accepted, "
                    f"p99 {row['p99_publish_to_report_ms']} ms, lag {row['largest_lag']}, "
                    f"lost {row['lost']}, double {row['double_counted']}",
                    flush=True,
                )
        except Exception as failure:
            error = repr(failure)
        finally:
            await suite.close()
    problems = judge(rows, warm_up=warm_up, rate=rate) + ([error] if error else [])
    RESULTS.write_text(
        json.dumps(
            {
                "minutes": minutes,
                "rate_per_s": rate,
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
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--warm-up", type=int, default=5, help="minutes before memory is compared")
    args = parser.parse_args()
    if args.minutes < 1 or args.rate <= 0 or not 1 <= args.warm_up <= args.minutes:
        parser.error("need --minutes >= 1, --rate > 0 and 1 <= --warm-up <= --minutes")
    return asyncio.run(soak(args.minutes, args.rate, args.warm_up))


if __name__ == "__main__":
    raise SystemExit(main())
