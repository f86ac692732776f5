"""SIGKILL of each service, one at a time, mid-stream, then a restart: nothing accepted
is lost, nothing is counted twice, no seminar goes over capacity. What the killed
replica had applied but not committed is redelivered to the restarted one, which skips
it by its processed-event markers (``duplicates_after_restart``)."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from .harness import SCENARIO_TIMEOUT_S, SERVICES, Chaos, service_counter

# A scenario that fails waits out its deadlines (traffic, then audit) to report why.
pytestmark = [pytest.mark.chaos, pytest.mark.timeout(SCENARIO_TIMEOUT_S)]


@pytest.mark.parametrize("service", SERVICES)
async def test_sigkill_mid_stream_then_restart(chaos: Chaos, service: str) -> None:
    async def crash(suite: Chaos) -> dict[str, Any]:
        await suite.system.kill(service, signal.SIGKILL)
        await suite.system.restart(service)
        return {}

    async def redelivered(suite: Chaos) -> dict[str, Any]:
        url = suite.system.primary(service).url
        return {"duplicates_after_restart": int(await service_counter(url, outcome="duplicate"))}

    result = await chaos.run(f"SIGKILL {service}", crash, check=redelivered)

    assert (result.lost, result.double_counted) == (0, 0)
