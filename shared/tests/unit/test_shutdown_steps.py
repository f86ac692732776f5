"""A stopping service gives each step of its shutdown a bound: a broker or database that
stops answering must not keep the process alive past its orchestrator's grace period."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from seminarops_shared.service import _shutdown_step

DEADLINE_S = 5.0


async def test_a_step_that_never_finishes_is_abandoned_at_its_bound_and_said_so() -> None:
    never = asyncio.Event()
    with capture_logs() as logs:
        await asyncio.wait_for(_shutdown_step("broker", never.wait(), timeout_s=0.05), DEADLINE_S)
    assert [(log["event"], log["step"]) for log in logs] == [("shutdown step abandoned", "broker")]


async def test_a_step_that_finishes_is_awaited_to_its_end() -> None:
    finished: list[str] = []

    async def stop() -> None:
        await asyncio.sleep(0)
        finished.append("relay")

    with capture_logs() as logs:
        await _shutdown_step("relay", stop(), timeout_s=DEADLINE_S)
    assert finished == ["relay"]
    assert [log["event"] for log in logs] == ["shutdown step done"]
