"""The faults networks make between one service and the servers it needs: the
registration service's connections to the database, and then to the broker, are cut
(reset, and refused until healed) and slowed (200 ms each way) mid-stream, through TCP
proxies the suite controls. Nothing accepted is lost, nothing is counted twice, and the
service recovers by itself; the other services keep their own links throughout.

The broker's proxy rewrites the broker's answers that say where to connect (the
partitions' leaders, the group's coordinator) to its own address: a Kafka client
otherwise connects to the address the broker advertises and would leave the proxy
with its first connection only (``seminarops_devtools.testing.network``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from seminarops_devtools.testing.network import TcpProxy

from .harness import SCENARIO_TIMEOUT_S, Chaos, ChaosSystem

pytestmark = [pytest.mark.chaos, pytest.mark.heavy, pytest.mark.timeout(SCENARIO_TIMEOUT_S)]

CUT_S = 10.0
SLOW_S = 15.0
LATENCY_S = 0.2


def _database_link(system: ChaosSystem) -> TcpProxy:
    assert system.registration_database_link is not None
    return system.registration_database_link


def _broker_link(system: ChaosSystem) -> TcpProxy:
    assert system.registration_broker_link is not None
    return system.registration_broker_link


LINKS = {"database": _database_link, "broker": _broker_link}


@pytest.mark.parametrize("server", list(LINKS))
async def test_registration_link_cut_and_healed(chaos: Chaos, server: str) -> None:
    async def cut(suite: Chaos) -> dict[str, Any]:
        link = LINKS[server](suite.system)
        refused_before = link.connections_refused
        link.cut()
        try:
            await asyncio.sleep(CUT_S)  # the fault's length, not a synchronisation
        finally:
            link.heal()
        return {"cut_s": CUT_S, "reconnects_refused": link.connections_refused - refused_before}

    result = await chaos.run(f"registration->{server} link cut 10 s", cut)

    assert (result.lost, result.double_counted) == (0, 0)
    # The service really tried the link while it was cut (it did not sit the fault out
    # on connections that happened to be idle).
    assert result.notes["reconnects_refused"] > 0


@pytest.mark.parametrize("server", list(LINKS))
async def test_registration_link_slowed(chaos: Chaos, server: str) -> None:
    async def slow(suite: Chaos) -> dict[str, Any]:
        link = LINKS[server](suite.system)
        link.slow(LATENCY_S)
        try:
            await asyncio.sleep(SLOW_S)  # the fault's length, not a synchronisation
        finally:
            link.slow(0.0)
        return {"slowed_s": SLOW_S, "latency_ms_each_way": int(LATENCY_S * 1000)}

    result = await chaos.run(f"registration->{server} link +200 ms 15 s", slow)

    assert (result.lost, result.double_counted) == (0, 0)
