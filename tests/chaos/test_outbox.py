"""A crash between the database commit and the outbox publish: with the broker frozen,
the services keep committing state changes and outbox entries that their relays cannot
publish; then they are SIGKILLed. The entries are published by the restarted replicas'
takeover (``<NAME>_OUTBOX_TAKEOVER_AFTER_S``) and nothing is lost or counted twice."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from seminarops_devtools.testing.polling import eventually

from .harness import SCENARIO_TIMEOUT_S, Chaos

# A scenario that fails waits out its deadlines (traffic, then audit) to report why.
pytestmark = [pytest.mark.chaos, pytest.mark.timeout(SCENARIO_TIMEOUT_S)]

WRITERS = ("registration", "seminar", "feedback")


async def test_crash_between_commit_and_publish(chaos: Chaos) -> None:
    orphaned: dict[str, int] = {}

    async def crash(suite: Chaos) -> dict[str, Any]:
        system = suite.system
        system.freeze_broker()
        try:
            # HTTP registrations commit into the outbox; nothing can be published.
            await eventually(
                lambda: system.outbox_backlog("registration"),
                until=lambda n: n >= 5,
                timeout_s=30,
                what="unpublished registration outbox entries",
            )
            for service in WRITERS:
                orphaned[service] = await system.outbox_backlog(service)
            for service in WRITERS:
                if orphaned[service]:
                    await system.kill(service, signal.SIGKILL)
        finally:
            system.thaw_broker()
        for service in WRITERS:
            await system.restart(service)
        return {"orphaned_outbox": sum(orphaned.values())}

    async def drained(suite: Chaos) -> dict[str, Any]:
        for service in WRITERS:
            await eventually(
                lambda s=service: suite.system.outbox_backlog(s),  # type: ignore[misc]
                until=lambda n: n == 0,
                timeout_s=30,
                what=f"{service} outbox drained",
            )
        return {}

    result = await chaos.run("crash between commit and publish", crash, check=drained)

    assert orphaned["registration"] >= 5
    assert (result.lost, result.double_counted) == (0, 0)
