"""SIGTERM mid-stream: in-flight batches finish and commit their offsets before the
process exits, so the restarted replica is redelivered (and skips as duplicates) at most
what was in flight when the signal came.

"In flight" is measured from the group's committed offsets: those committed between
the signal and the exit (the batch being applied, and whatever the consumer still took
before it stopped fetching) bound what a graceful stop may leave to redeliver. The
duplicates are the restarted process's ``seminarops_events_processed_total
{outcome="duplicate"}``; the stream sends no duplicates on purpose in this scenario."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from .harness import SCENARIO_TIMEOUT_S, SERVICES, Chaos, StreamPlan, service_counter

# A scenario that fails waits out its deadlines (traffic, then audit) to report why.
pytestmark = [pytest.mark.chaos, pytest.mark.timeout(SCENARIO_TIMEOUT_S)]


@pytest.mark.parametrize("service", SERVICES)
async def test_sigterm_commits_in_flight_work(chaos: Chaos, service: str) -> None:
    in_flight: list[int] = []

    async def sigterm(suite: Chaos) -> dict[str, Any]:
        system = suite.system
        before = await system.committed_offsets(service)
        code = await system.kill(service, signal.SIGTERM)
        # uvicorn shuts down, then re-raises the signal: -15 after a clean stop.
        graceful = "service stopped" in system.primary(service).log(lines=15)
        after = await system.committed_offsets(service)
        in_flight.append(sum(max(0, after[tp] - max(0, before[tp])) for tp in after))
        await system.restart(service)
        return {"exit_code": code, "graceful": graceful, "in_flight": in_flight[0]}

    async def duplicates(suite: Chaos) -> dict[str, Any]:
        redelivered = int(
            await service_counter(suite.system.primary(service).url, outcome="duplicate")
        )
        assert redelivered <= in_flight[0], (
            f"{service}: {redelivered} duplicates after a graceful restart > {in_flight[0]} in flight"
        )
        return {"duplicates_after_restart": redelivered}

    result = await chaos.run(
        f"SIGTERM {service}",
        sigterm,
        plan=StreamPlan.for_load(duplicate_share=0.0),
        check=duplicates,
    )

    assert result.notes["exit_code"] in {0, -signal.SIGTERM}
    assert result.notes["graceful"], "no 'service stopped' in the log: not a graceful stop"
    assert (result.lost, result.double_counted) == (0, 0)
