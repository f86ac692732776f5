"""Restarts of the infrastructure mid-stream: the broker (its log in S3, so it survives)
and the database (its files survive; same port). Clients reconnect, nothing accepted is
lost, nothing is counted twice."""

from __future__ import annotations

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
