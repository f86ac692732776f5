"""An HTTP flood: many more registration requests than the service decides per second,
for 30 s, from hundreds of connections at once. Every answer is 2xx, or 503 with
Retry-After (shed at the door, or the database's patience ran out); the service's memory
stays bounded; every request it accepted is decided, none twice, and the seminar is
never over capacity."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from .harness import PLATFORM, RESULTS, SCENARIO_TIMEOUT_S, Chaos, Ledger, ScenarioResult

pytestmark = [pytest.mark.chaos, pytest.mark.heavy, pytest.mark.timeout(SCENARIO_TIMEOUT_S)]

FLOOD_S = 30.0
CONNECTIONS = 400
CAPACITY = 500
# Growth of the registration process's resident memory over the flood that is still
# "bounded": the requests in flight (256 at most) and the connections' buffers.
RSS_GROWTH_LIMIT_MB = 150


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def test_http_flood(chaos: Chaos) -> None:
    system = chaos.system
    await system.ensure_running()
    seminar_id = "flood-seminar"
    await chaos.traffic.schedule(Ledger(), seminar_id, capacity=CAPACITY, lifecycle=False)
    replica = system.primary("registration")
    assert replica.pid is not None
    rss_before = _rss_mb(replica.pid)
    url = f"{replica.url}/v1/registrations"

    answers: Counter[str] = Counter()
    accepted: set[str] = set()
    rss_peak = rss_before
    # A new connection per request: a flood's clients do not wait politely on kept-alive
    # connections (and a kept-alive connection the server closes as idle can race a
    # request sent on it, which would say nothing about the service).
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        stop_at = time.monotonic() + FLOOD_S

        async def flooder(worker: int) -> None:
            sequence = 0
            while time.monotonic() < stop_at:
                participant = f"flood-{worker}-{sequence}"
                sequence += 1
                body = {"seminar_id": seminar_id, "participant": {"id": participant}}
                try:
                    answer = await http.post(url, json=body, headers=PLATFORM)
                except httpx.TransportError as error:
                    answers[type(error).__name__] += 1
                    continue
                retry_after = "Retry-After" in answer.headers
                answers[f"{answer.status_code}{' Retry-After' if retry_after else ''}"] += 1
                if answer.status_code in {200, 201, 202}:
                    accepted.add(participant)

        async def watch_memory() -> None:
            nonlocal rss_peak
            while time.monotonic() < stop_at:
                rss_peak = max(rss_peak, _rss_mb(replica.pid or 0))
                await asyncio.sleep(0.5)  # sampling interval

        await asyncio.gather(watch_memory(), *(flooder(w) for w in range(CONNECTIONS)))

    sent = sum(answers.values())
    result = ScenarioResult(
        scenario="HTTP flood 30 s, 400 connections",
        events_sent=sent,
        requests_accepted=len(accepted),
        lost=-1,
        double_counted=-1,
        recovery_s=None,
        notes={
            "per_s": round(sent / FLOOD_S),
            "answers": dict(answers),
            "rss_mb_before": round(rss_before),
            "rss_mb_peak": round(rss_peak),
        },
    )
    RESULTS.append(result)
    allowed = {"200", "201", "202", "503 Retry-After"}
    assert set(answers) <= allowed, f"answers outside 2xx / 503 with Retry-After: {answers}"
    assert answers["503 Retry-After"] > 0, "the flood was not more than the service takes"
    assert accepted, "nothing was accepted during the flood"
    assert rss_peak - rss_before < RSS_GROWTH_LIMIT_MB, (
        f"memory grew by {rss_peak - rss_before:.0f} MB during the flood"
    )

    # Everything accepted is decided: confirmed up to capacity, the rest waitlisted.
    statuses: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=30) as http:
        deadline = time.monotonic() + 120
        while True:
            seen: dict[str, str] = {}
            offset = 0
            while True:
                page = await http.get(
                    f"{replica.url}/v1/seminars/{seminar_id}/registrations",
                    params={"offset": offset, "limit": 500},
                    headers=PLATFORM,
                )
                assert page.status_code == 200, page.text
                items = page.json()["registrations"]
                seen.update({r["participant_id"]: r["status"] for r in items})
                if len(items) < 500:
                    break
                offset += len(items)
            statuses = Counter(seen[p] for p in accepted if p in seen)
            if accepted <= set(seen) and statuses["pending"] == 0:
                break
            assert time.monotonic() < deadline, (
                f"{len(accepted - set(seen))} accepted requests not decided: {statuses}"
            )
            await asyncio.sleep(0.5)  # polling interval
    assert statuses["confirmed"] + statuses["waitlisted"] == len(accepted), statuses
    everyone = Counter(seen.values())
    assert everyone["confirmed"] == min(CAPACITY, len(seen)), f"over capacity: {everyone}"
    result.lost = len(accepted) - sum(statuses.values())
    result.double_counted = len(seen) - len(set(seen))
    result.passed = True
