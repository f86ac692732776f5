"""Restarts of the infrastructure mid-stream: the broker (its log in S3, so it survives)
and the database (its files survive; same port). Clients reconnect, nothing accepted is
lost, nothing is counted twice."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest

from seminarops_shared.events.topics import REGISTRATION_EVENTS, REGISTRATION_REQUESTS

from .harness import Chaos

# A scenario that fails waits out its deadlines (traffic, then audit) to report why.
pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]


async def test_broker_crash_and_restart(chaos: Chaos) -> None:
    async def crash(suite: Chaos) -> dict[str, Any]:
        before = {
            t: await suite.system.topic_size(t)
            for t in (REGISTRATION_REQUESTS, REGISTRATION_EVENTS)
        }
        await suite.system.restart_broker(signal.SIGKILL)
        after = {
            t: await suite.system.topic_size(t)
            for t in (REGISTRATION_REQUESTS, REGISTRATION_EVENTS)
        }
        # The log survived the crash: every record acknowledged before it is still there.
        for topic, size in before.items():
            assert after[topic] >= size, (
                f"{topic}: {after[topic]} records after the restart < {size}"
            )
        return {"log_records_kept": sum(before.values())}

    result = await chaos.run("broker SIGKILL + restart (s3 log)", crash)

    assert (result.lost, result.double_counted) == (0, 0)


async def test_database_crash_and_restart(chaos: Chaos) -> None:
    async def crash(suite: Chaos) -> dict[str, Any]:
        await suite.system.restart_database(signal.SIGKILL)
        return {}

    result = await chaos.run("database SIGKILL + restart", crash)

    assert (result.lost, result.double_counted) == (0, 0)


async def _stall(pid: int, seconds: float) -> None:
    """Freeze a process (SIGSTOP) for ``seconds``, then let it go on (SIGCONT): a
    server that stops answering without closing a connection, as a long GC pause, a
    hung disk or a VM migration would make it."""
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)  # the fault's length, not a synchronisation
    finally:
        os.kill(pid, signal.SIGCONT)


STALL_S = 20.0


async def test_database_stalls(chaos: Chaos) -> None:
    async def stall(suite: Chaos) -> dict[str, Any]:
        assert suite.system.mongo is not None
        await _stall(suite.system.mongo.pid, STALL_S)
        return {"stalled_s": STALL_S}

    result = await chaos.run("database SIGSTOP 20 s, SIGCONT", stall)

    assert (result.lost, result.double_counted) == (0, 0)


async def test_broker_stalls(chaos: Chaos) -> None:
    async def stall(suite: Chaos) -> dict[str, Any]:
        assert suite.system.kafka is not None
        await _stall(suite.system.kafka.pid, STALL_S)
        return {"stalled_s": STALL_S}

    result = await chaos.run("broker SIGSTOP 20 s, SIGCONT", stall)

    assert (result.lost, result.double_counted) == (0, 0)
