"""The fault suite's system (one for all its scenarios: starting four services costs
more than a scenario) and the summary table at the end of the run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .harness import RESULTS, Chaos, ChaosSystem, summary_table, write_results

RESULTS_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "chaos-latest.json"


@pytest.fixture(scope="package")
async def chaos(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chaos]:
    """A broker with S3 storage, a database and the four services, all real processes of
    this run (not the session's shared infrastructure: scenarios restart them). Logs stay
    in pytest's temporary directory (``chaos0/``) for a failed run."""
    suite = Chaos(ChaosSystem(tmp_path_factory.mktemp("chaos")))
    try:
        await suite.start()
        yield suite
    finally:
        await suite.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    terminalreporter.section("fault suite: per scenario")
    terminalreporter.write_line(summary_table(RESULTS))
    write_results(RESULTS, RESULTS_PATH)
    terminalreporter.write_line(f"written to {RESULTS_PATH}")
