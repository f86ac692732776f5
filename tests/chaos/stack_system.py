"""``StackSystem``: the fault suite's system, run by ``devstack`` (``make up`` /
``make down``) instead of by the harness: the same traffic and audit then hold the
default stack to the same standard as the fault suite's."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from seminarops_devtools import devstack
from seminarops_devtools.devstack import StackConfig
from seminarops_devtools.processes import LOCALHOST, free_port, free_port_block, log_tail

from .harness import SERVICES, TOKENS, ChaosSystem

# Variables the stack must not inherit from the test run: either would make it use an
# existing server instead of starting its own.
_FOREIGN = ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "KAFKA_FETCH_MAX_WAIT_MS")


@dataclass
class StackSystem(ChaosSystem):
    """The whole stack as ``make up`` starts it, rooted in ``workdir`` (``.run/`` there)."""

    config: StackConfig | None = None

    def stack_config(self) -> StackConfig:
        if self.config is None:
            env = {k: v for k, v in os.environ.items() if k not in _FOREIGN}
            chosen: set[int] = set()

            def distinct_port() -> int:
                # Nothing binds these ports until `make up` starts the services, so the
                # kernel may offer one twice (seminar and metrics both got 46147 once).
                while (port := free_port()) in chosen:
                    pass
                chosen.add(port)
                return port

            for service in SERVICES:
                p = service.upper()
                env.update(
                    {
                        f"{p}_PORT": str(distinct_port()),
                        f"{p}_HOST": LOCALHOST,
                        # As the fault suite runs them: a crashed process's outbox is
                        # taken over after 2 s (10 s by default), timers polled often.
                        f"{p}_OUTBOX_TAKEOVER_AFTER_S": "2",
                        f"{p}_OUTBOX_POLL_INTERVAL_S": "0.5",
                        f"{p}_SCHEDULER_POLL_INTERVAL_S": "0.2",
                        f"{p}_LOG_JSON": "true",
                    }
                )
            env.update(
                {
                    "KAFKA_TOPIC_PREFIX": f"{self.prefix}.",
                    "MONGODB_DATABASE_PREFIX": f"{self.prefix}_",
                    "KAFKA_SESSION_TIMEOUT_MS": "2000",
                    "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
                    "AUTH_TOKENS": json.dumps(TOKENS),
                    "KAFKA_PORT": str(distinct_port()),
                    "MONGODB_PORT": str(distinct_port()),
                    "S3_PORT": str(free_port_block(8)),
                    "KAFKA_PARTITIONS": str(self.partitions),
                    "SEMINAROPS_DRAIN_TIMEOUT_S": "60",
                }
            )
            self.config = StackConfig.from_env(env, root=self.workdir)
        return self.config

    # ---- addresses ----

    @property
    def bootstrap_servers(self) -> str:
        return self.stack_config().kafka_bootstrap_servers

    @property
    def mongodb_uri(self) -> str:
        return self.stack_config().mongodb_uri

    def urls(self, service: str) -> list[str]:
        return [spec.base_url for spec in self.stack_config().services if spec.name == service]

    # ---- start and stop: what a person does ----

    def start_infrastructure(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        devstack.up(self.stack_config())

    async def start_services(self, services: object = SERVICES) -> None:
        await self.up()

    async def ensure_running(self) -> None:
        await self.up()

    async def up(self) -> None:
        """``make up``."""
        await asyncio.to_thread(devstack.up, self.stack_config())

    async def down(self) -> None:
        """``make down``."""
        await asyncio.to_thread(devstack.down, self.stack_config())

    def pids(self) -> dict[str, int]:
        """Every process ``make up`` started, by name (from its pid files)."""
        config = self.stack_config()
        names = [devstack.S3, devstack.KAFKA, devstack.MONGODB, *SERVICES]
        return {
            name: record.pid
            for name in names
            if (record := devstack.running_record(config, name)) is not None
        }

    async def kill_everything(self) -> dict[str, int]:
        """SIGKILL to every process of the stack at once, as a power cut would; returns
        what was killed. The pid files stay behind, as they would."""
        killed = self.pids()
        for pid in killed.values():
            # Each was started detached, as the leader of its own process group.
            os.killpg(pid, signal.SIGKILL)
        for pid in killed.values():
            await asyncio.to_thread(_wait_gone, pid)
        return killed

    def close(self) -> None:
        if self.config is not None:
            devstack.down(self.config)

    def log_tails(self, lines: int = 40) -> str:
        config = self.stack_config()
        return "\n".join(
            f"--- {name} ---\n{log_tail(config.log_path(name), lines=lines)}"
            for name in (devstack.KAFKA, devstack.MONGODB, *SERVICES)
        )

    def service_log(self, name: str) -> Path:
        return self.stack_config().log_path(name)


def _wait_gone(pid: int) -> None:
    from seminarops_devtools.processes import wait_for_exit

    if not wait_for_exit(pid, timeout_s=30):
        raise AssertionError(f"pid {pid} still runs 30 s after SIGKILL")
