"""SIGUSR2 makes a running service log what each of its tasks waits on (``kill -USR2``,
the runbook's "alive but not moving"): one line per task, down to the awaited future."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from fastapi import APIRouter, Request
from structlog.testing import capture_logs

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import Namespace, running
from seminarops_shared.service import Runtime, create_service_app

from .probe_service import ProbeSettings

pytestmark = pytest.mark.integration


async def test_sigusr2_logs_where_every_task_waits(namespace: Namespace) -> None:
    router = APIRouter()
    entered = asyncio.Event()
    release = asyncio.Event()

    @router.post("/stuck")
    async def stuck(request: Request) -> None:
        runtime: Runtime = request.app.state.runtime
        async with runtime.uow.begin():
            entered.set()
            await release.wait()

    async def setup(runtime: Runtime) -> Runtime:
        return runtime

    app = create_service_app(
        namespace.settings(ProbeSettings),
        title="task dump probe",
        description="a request that waits inside a transaction",
        routers=[router],
        setup=setup,
    )
    async with running(app) as client:
        request = asyncio.create_task(client.post("/stuck"))
        await entered.wait()
        with capture_logs() as logs:

            async def dumped() -> list[object]:
                return [entry for entry in logs if entry["event"] == "task"]

            os.kill(os.getpid(), signal.SIGUSR2)
            await eventually(dumped, what="the task dump")
        release.set()
        assert (await request).status_code < 500

    tasks = {entry["name"]: entry["awaiting"] for entry in logs if entry["event"] == "task"}
    assert "outbox-relay" in tasks
    waiting = [chain for chain in tasks.values() if any(" stuck" in step for step in chain)]
    assert len(waiting) == 1
    # From the server's task through the middleware and the route to the event.
    chain = waiting[0]
    assert any("service.py" in step for step in chain)
    assert [step.split(" ")[-1] for step in chain[-3:-1]] == ["stuck", "wait"]
    assert chain[-1].startswith("awaits ")
