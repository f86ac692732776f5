"""Consumer groups changing under load: a second replica of every service joins and
leaves mid-stream (rebalances, and HTTP spread over both replicas), and every consumer
group of the system starting at once with a backlog waiting."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

from seminarops_shared.events.topics import REGISTRATION_REQUESTS

from .harness import SCENARIO_TIMEOUT_S, SERVICES, Chaos, StreamPlan

# A scenario that fails waits out its deadlines (traffic, then audit) to report why.
pytestmark = [pytest.mark.chaos, pytest.mark.timeout(SCENARIO_TIMEOUT_S)]


async def test_second_replica_joins_and_leaves(chaos: Chaos) -> None:
    plan = StreamPlan.for_load()

    async def join_and_leave(suite: Chaos) -> dict[str, Any]:
        system = suite.system
        extras = [system.add_replica(s) for s in SERVICES]
        for replica in extras:
            replica.start()
        await asyncio.gather(*(asyncio.to_thread(r.wait_ready, timeout_s=90) for r in extras))
        # Both replicas of each service take traffic and partitions for a while ...
        await suite.traffic.wait_accepted(int(suite.traffic.planned_operations(plan) * 0.7))
        # ... then the newcomers leave again (a scale-down: SIGTERM).
        await asyncio.gather(*(asyncio.to_thread(r.kill, signal.SIGTERM) for r in extras))
        return {"replicas_joined_and_left": len(extras)}

    result = await chaos.run(
        "2nd replica joins + leaves", join_and_leave, plan=plan, fault_after=0.1
    )

    assert (result.lost, result.double_counted) == (0, 0)


async def test_all_consumer_groups_start_at_once(chaos: Chaos) -> None:
    async def cold_start(suite: Chaos) -> dict[str, Any]:
        system = suite.system
        before = await system.topic_size(REGISTRATION_REQUESTS)
        await asyncio.gather(*(system.kill(s, signal.SIGTERM) for s in SERVICES))
        # Requests keep arriving on Kafka while every group starts at once (HTTP callers
        # retry until the services answer).
        await system.start_services()
        backlog = await system.topic_size(REGISTRATION_REQUESTS) - before
        return {"requests_while_down": backlog}

    result = await chaos.run("all groups start at once", cold_start)

    assert (result.lost, result.double_counted) == (0, 0)
