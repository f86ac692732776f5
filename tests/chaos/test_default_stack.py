"""The default stack keeps everything: ``make down`` / ``make up`` and a SIGKILL of every
process ``make up`` started (a power cut, as far as the processes can tell), each in the
middle of the fault suite's traffic, then its audit: every accepted request counted
once, none lost, and the broker still holds every event. And ``python -m metrics
rebuild`` after the restart gives exactly the reports the projections had."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from seminarops_shared.events.topics import (
    FEEDBACK_EVENTS,
    REGISTRATION_EVENTS,
    REGISTRATION_REQUESTS,
    SEMINAR_EVENTS,
)

from .harness import Chaos
from .stack_system import StackSystem

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chaos]:
    """The whole stack as ``make up`` starts it (SeaweedFS holding the broker's log,
    Tansu, SecantusDB with ``--sync-on-commit``, the four services, all detached with pid
    files), on ports of its own. Module-scoped, and this module sorts first in the
    package: it runs and stops before the fault suite's own system starts."""
    suite = Chaos(StackSystem(tmp_path_factory.mktemp("stack")))
    try:
        await suite.start()
        yield suite
    finally:
        await suite.close()


_TOPICS = (REGISTRATION_REQUESTS, REGISTRATION_EVENTS, SEMINAR_EVENTS, FEEDBACK_EVENTS)


def system_of(suite: Chaos) -> StackSystem:
    assert isinstance(suite.system, StackSystem)
    return suite.system


async def topic_sizes(system: StackSystem) -> dict[str, int]:
    return {t: await system.topic_size(t) for t in _TOPICS}


def assert_log_kept(before: dict[str, int], after: dict[str, int]) -> None:
    for topic, size in before.items():
        assert after[topic] >= size, f"{topic}: {after[topic]} records after the restart < {size}"


async def test_make_down_and_up_mid_stream(stack: Chaos) -> None:
    async def down_up(suite: Chaos) -> dict[str, Any]:
        system = system_of(suite)
        before = await topic_sizes(system)
        started = time.monotonic()
        await system.down()
        assert system.pids() == {}, "make down left processes running"
        stopped = time.monotonic()
        await system.up()
        assert_log_kept(before, await topic_sizes(system))
        return {
            "down_s": round(stopped - started, 1),
            "up_s": round(time.monotonic() - stopped, 1),
            "log_records_kept": sum(before.values()),
        }

    result = await stack.run("make down + make up (whole stack)", down_up)

    assert (result.lost, result.double_counted) == (0, 0)


async def test_sigkill_of_every_process_mid_stream(stack: Chaos) -> None:
    async def power_cut(suite: Chaos) -> dict[str, Any]:
        system = system_of(suite)
        before = await topic_sizes(system)
        killed = await system.kill_everything()
        assert set(killed) >= {"s3", "kafka", "mongodb", "registration", "metrics"}, killed
        started = time.monotonic()
        await system.up()  # finds the stale pid files, clears them, starts everything
        assert len(system.pids()) == len(killed)
        assert_log_kept(before, await topic_sizes(system))
        return {
            "killed": len(killed),
            "up_after_kill_s": round(time.monotonic() - started, 1),
            "log_records_kept": sum(before.values()),
        }

    result = await stack.run(
        "SIGKILL of every process + make up (whole stack)", power_cut, audit_everything=True
    )

    assert (result.lost, result.double_counted) == (0, 0)


async def reports(system: StackSystem, years: set[int]) -> dict[str, Any]:
    url = system.urls("metrics")[0]
    answers: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for year in sorted(years):
            for report in ("participation", "satisfaction", "funnel"):
                response = await client.get(f"{url}/v1/reports/{report}?year={year}")
                response.raise_for_status()
                answers[f"{report}/{year}"] = response.json()
    return answers


async def test_rebuild_after_restart_reproduces_the_reports(stack: Chaos) -> None:
    """After the restarts above, every report rebuilt from the topics alone equals the
    live projection's: the broker kept every event the projections were built from."""
    system = system_of(stack)
    years = {seminar.year for seminar in stack.ledger.seminars.values()}
    assert years, "the restart scenarios ran no traffic"
    await system.down()
    await system.up()
    before = await reports(system, years)
    config = system.stack_config()
    metrics = next(spec for spec in config.services if spec.name == "metrics")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "metrics",
        "rebuild",
        env={**os.environ, **config.service_env(metrics)},
        cwd=config.root,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, f"rebuild failed: {out.decode()}\n{err.decode()[-3000:]}"

    after = await reports(system, years)

    assert after == before
    assert any(
        row["participants"]
        for r in before.values()
        for row in r.get("rows", [])
        if "participants" in row
    )
