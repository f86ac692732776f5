"""The whole default stack as ``make up`` runs it (SeaweedFS holding the broker's log,
Tansu, SecantusDB with ``--sync-on-commit``, the four services, all detached with pid
files), on ports of its own, under the fault suite's traffic and audit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.chaos.harness import Chaos

from .system import StackSystem


@pytest.fixture(scope="package")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chaos]:
    suite = Chaos(StackSystem(tmp_path_factory.mktemp("stack")))
    try:
        await suite.start()
        yield suite
    finally:
        await suite.close()
