"""The faults networks make between one service and its database: the registration
service's connections to MongoDB are cut (reset, and refused until healed) and slowed
(200 ms each way) mid-stream, through a TCP proxy the suite controls. Nothing accepted
is lost, nothing is counted twice, and the service recovers by itself.

The broker's links are not faulted one service at a time: a Kafka client reconnects to
the address the broker advertises, not to the one it bootstrapped from, so a proxy in
front of the broker would carry every client's traffic or none.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .harness import SCENARIO_TIMEOUT_S, Chaos

pytestmark = [pytest.mark.chaos, pytest.mark.heavy, pytest.mark.timeout(SCENARIO_TIMEOUT_S)]

CUT_S = 10.0
SLOW_S = 15.0
LATENCY_S = 0.2


async def test_registration_database_link_cut_and_healed(chaos: Chaos) -> None:
    async def cut(suite: Chaos) -> dict[str, Any]:
        link = suite.system.registration_database_link
        assert link is not None
        refused_before = link.connections_refused
        link.cut()
        try:
            await asyncio.sleep(CUT_S)  # the fault's length, not a synchronisation
        finally:
            link.heal()
        return {"cut_s": CUT_S, "reconnects_refused": link.connections_refused - refused_before}

    result = await chaos.run("registration->database link cut 10 s", cut)

    assert (result.lost, result.double_counted) == (0, 0)


async def test_registration_database_link_slowed(chaos: Chaos) -> None:
    async def slow(suite: Chaos) -> dict[str, Any]:
        link = suite.system.registration_database_link
        assert link is not None
        link.slow(LATENCY_S)
        try:
            await asyncio.sleep(SLOW_S)  # the fault's length, not a synchronisation
        finally:
            link.slow(0.0)
        return {"slowed_s": SLOW_S, "latency_ms_each_way": int(LATENCY_S * 1000)}

    result = await chaos.run("registration->database link +200 ms 15 s", slow)

    assert (result.lost, result.double_counted) == (0, 0)
