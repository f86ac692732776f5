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


def _definition_order(item: pytest.Item) -> tuple[str, int, tuple[int, ...]]:
    """Where an item stands in the package as written: module, line, parameter."""
    callspec = getattr(item, "callspec", None)
    params = tuple(callspec.indices.values()) if callspec is not None else ()
    return (str(item.path), item.location[1] or 0, params)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fault suite runs as one block in the order it is written, whatever order
    pytest-randomly gave the run (this runs after its shuffle; the block stands where
    its first scenario landed). Its scenarios share one system on purpose (the package
    fixture ``chaos``): shuffled in among other packages' modules, that system would be
    torn down and started again each time the run left the package and came back; and
    ``test_default_stack`` must run, and stop its whole stack, before that system
    starts (its module comes first by name). Every scenario still audits only what it
    accepted itself (``test_replay``: everything so far), so the order within is not
    what makes them pass; it keeps a failing run reproducible by name."""
    here = Path(__file__).resolve().parent
    suite = [item for item in items if here in item.path.resolve().parents]
    if not suite:
        return
    first = items.index(suite[0])
    rest = [item for item in items if here not in item.path.resolve().parents]
    items[:] = [*rest[:first], *sorted(suite, key=_in_suite_order), *rest[first:]]


def _in_suite_order(item: pytest.Item) -> tuple[bool, tuple[str, int, tuple[int, ...]]]:
    # The flood comes last: it leaves thousands of registrations on the log, which a
    # scenario after it (the replay reads the whole log again) would have to wade through.
    return (item.path.name == "test_flood.py", _definition_order(item))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    terminalreporter.section("fault suite: per scenario")
    terminalreporter.write_line(summary_table(RESULTS))
    write_results(RESULTS, RESULTS_PATH)
    terminalreporter.write_line(f"written to {RESULTS_PATH}")
