"""An HTTP flood: ten times as many registration requests per second as the service
decides, for 30 s, from a thousand connections at once. Every answer is 2xx, or 503
with Retry-After (shed at the door, or the database's patience ran out); the service's
memory stays bounded; every request it accepted is decided, none twice, and the seminar
is never over capacity.

The load comes from autocannon (``tests/chaos/flood``, installed by ``make chaos``): a
Python client on the same two cores tops out near 270 requests/s, a little more than
the service decides, which is no flood."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from .harness import (
    PLATFORM,
    RESULTS,
    SCENARIO_TIMEOUT_S,
    TOKENS,
    Chaos,
    Ledger,
    ScenarioResult,
)

pytestmark = [pytest.mark.chaos, pytest.mark.heavy, pytest.mark.timeout(SCENARIO_TIMEOUT_S)]

FLOOD_S = 30
CALIBRATION_S = 10
# The flood offers this many times what the service decided per second when asked by
# a polite client (the "ten times what the service can decide per second").
OVERLOAD = 10
CONNECTIONS = 1000
# What the generator must deliver of the rate offered (see the assertion).
GENERATOR_SHARE = 0.75
CAPACITY = 500
# Growth of the registration process's resident memory over the flood that is still
# "bounded": the requests in flight (256 at most) and the connections' buffers.
RSS_GROWTH_LIMIT_MB = 150
FLOOD_TOOL = Path(__file__).parent / "flood"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def _autocannon(**options: Any) -> dict[str, Any]:
    """One run of ``flood/flood.mjs``: its JSON summary."""
    node = shutil.which("node")
    assert node, "the flood needs Node.js (20 or later) on PATH"
    assert (FLOOD_TOOL / "node_modules" / "autocannon").is_dir(), (
        "autocannon is not installed: run `make chaos` (or `npm ci --prefix tests/chaos/flood`)"
    )
    process = await asyncio.create_subprocess_exec(
        node,
        str(FLOOD_TOOL / "flood.mjs"),
        json.dumps(options),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, f"autocannon failed ({process.returncode}): {err.decode()}"
    summary: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return summary


async def test_http_flood(chaos: Chaos) -> None:
    system = chaos.system
    await system.ensure_running()
    seminar_id = "flood-seminar"
    calibration_seminar = "flood-calibration"
    await chaos.traffic.schedule(Ledger(), seminar_id, capacity=CAPACITY, lifecycle=False)
    await chaos.traffic.schedule(Ledger(), calibration_seminar, capacity=20_000, lifecycle=False)
    replica = system.primary("registration")
    assert replica.pid is not None
    common = {"url": replica.url, "token": TOKENS["platform"][0]}

    # What the service decides per second when nobody pushes: a closed loop of a few
    # connections (each sends its next request when the last is answered).
    calibration = await _autocannon(
        **common,
        seminar_id=calibration_seminar,
        prefix="calibration",
        rate=0,
        connections=16,
        seconds=CALIBRATION_S,
    )
    decided_per_s = len(calibration["accepted"]) / CALIBRATION_S
    assert decided_per_s > 0, f"the service decided nothing when asked politely: {calibration}"
    offered_per_s = round(OVERLOAD * decided_per_s)

    rss_before = _rss_mb(replica.pid)
    rss_peak = rss_before
    flooding = asyncio.create_task(
        _autocannon(
            **common,
            seminar_id=seminar_id,
            prefix="flood",
            rate=offered_per_s,
            connections=CONNECTIONS,
            seconds=FLOOD_S,
        )
    )
    while not flooding.done():
        rss_peak = max(rss_peak, _rss_mb(replica.pid))
        await asyncio.wait({flooding}, timeout=0.5)  # the memory's sampling interval
    flood = flooding.result()
    answers = Counter(flood["answers"])
    accepted = set(flood["accepted"])

    result = ScenarioResult(
        scenario=f"HTTP flood {FLOOD_S} s, {CONNECTIONS} connections, {OVERLOAD}x",
        events_sent=flood["sent"],
        requests_accepted=len(accepted),
        lost=-1,
        double_counted=-1,
        recovery_s=None,
        notes={
            "decided_per_s_unpushed": round(decided_per_s),
            "offered_per_s": offered_per_s,
            "sent_per_s": flood["per_s"],
            "accepted_per_s": round(len(accepted) / FLOOD_S),
            "answers": dict(answers),
            "transport_errors": flood["errors"],
            "timeouts": flood["timeouts"],
            "rss_mb_before": round(rss_before),
            "rss_mb_peak": round(rss_peak),
        },
    )
    RESULTS.append(result)
    allowed = {"200", "201", "202", "503 Retry-After"}
    assert set(answers) <= allowed, f"answers outside 2xx / 503 with Retry-After: {answers}"
    assert flood["errors"] == 0, f"{flood['errors']} connection errors during the flood"
    assert flood["timeouts"] == 0, f"{flood['timeouts']} requests timed out during the flood"
    # The flood must really have been a flood. The generator shares the two cores with
    # the system it floods: offered ten times, it delivered 87 % of that here (8.7 times
    # what the service decided when asked politely, measured on a quiet machine).
    assert flood["per_s"] >= GENERATOR_SHARE * offered_per_s, (
        f"sent {flood['per_s']}/s of the {offered_per_s}/s offered: the generator fell short"
    )
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
                if page.status_code == 503 and "Retry-After" in page.headers:
                    # The flood's last requests still fill the door: a reader is told
                    # when to come back, like any other client.
                    assert time.monotonic() < deadline, "still shedding reads 120 s later"
                    await asyncio.sleep(float(page.headers["Retry-After"]))
                    continue
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
