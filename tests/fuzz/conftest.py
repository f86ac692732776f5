"""Order within the HTTP fuzzing module, whatever order pytest-randomly gave the run
(this runs after its shuffle): the guard that checks what the fuzzing reached comes
after every fuzzed operation, which it reads the answers of."""

from __future__ import annotations

import pytest

_GUARD = "test_the_fuzzing_reached_the_handlers"
_FUZZED = "test_every_check_passes_and_no_internals"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    guards = [item for item in items if item.name == _GUARD]
    fuzzed = [i for i, item in enumerate(items) if item.name.startswith(_FUZZED)]
    if not guards or not fuzzed:
        return
    rest = [item for item in items if item.name != _GUARD]
    last = max(i for i, item in enumerate(rest) if item.name.startswith(_FUZZED))
    items[:] = [*rest[: last + 1], *guards, *rest[last + 1 :]]
