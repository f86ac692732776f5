"""A consumer-group reset to the earliest offset: every service is stopped, its group's
offsets are set to 0 on every partition, and it starts again. It reads the whole log
once more (every scenario's traffic so far); the processed-event markers absorb it, so
every count of every seminar of the suite stays exactly right. How long the replay takes
grows with the log (at ten times the load, 13 scenarios' worth by the time it runs), so
it has no deadline of its own, only one for progress (``CATCH_UP_STALL_S``)."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest

from .harness import SCENARIO_TIMEOUT_S, SERVICES, Chaos, service_counter

# A scenario that fails waits out its deadlines (traffic, then audit) to report why.
pytestmark = [pytest.mark.chaos, pytest.mark.timeout(3 * SCENARIO_TIMEOUT_S)]


async def test_consumer_groups_reset_to_earliest(chaos: Chaos) -> None:
    async def replay(suite: Chaos) -> dict[str, Any]:
        system = suite.system
        await asyncio.gather(*(system.kill(s, signal.SIGTERM) for s in SERVICES))
        ends = {s: await system.log_ends(s) for s in SERVICES}
        for service in SERVICES:
            await system.reset_group_to_earliest(service)
            offsets = await system.committed_offsets(service)
            assert set(offsets.values()) == {0}, f"{service} group not reset: {offsets}"
        # The scenario waits for the replay before it goes on: the traffic's operations
        # that need a new record decided wait with it (their deadlines paused), and the
        # next scenario starts on a group that is not thousands of records behind.
        async with suite.traffic.deadlines_paused():
            started = time.monotonic()
            await system.start_services()
            await asyncio.gather(*(system.wait_caught_up(s, ends[s]) for s in SERVICES))
            caught_up_s = time.monotonic() - started
        replayed = sum(sum(ends[s].values()) for s in SERVICES)
        return {
            "replayed_records": replayed,
            "caught_up_s": round(caught_up_s, 1),
            "replayed_per_s": round(replayed / caught_up_s),
        }

    async def replayed(suite: Chaos) -> dict[str, Any]:
        # The restarted processes saw the old records again and skipped them by marker.
        skipped = {
            s: int(await service_counter(suite.system.primary(s).url, outcome="duplicate"))
            for s in SERVICES
        }
        assert all(n > 0 for n in skipped.values()), f"no replay seen: {skipped}"
        return {"replayed_duplicates": sum(skipped.values())}

    result = await chaos.run(
        "group reset to earliest (replay)", replay, audit_everything=True, check=replayed
    )

    assert (result.lost, result.double_counted) == (0, 0)
