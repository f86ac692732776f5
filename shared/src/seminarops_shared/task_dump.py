"""What every coroutine of a running service is waiting on, for an operator who sees a
process that is alive but not moving (``kill -USR2 <pid>``: one log line per task).

``Task.get_stack`` shows only a suspended task's outermost frame; the chain of awaits
below it (``cr_await``) is where the answer is, so it is walked here down to the future
the innermost coroutine waits for."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import structlog

_log = structlog.get_logger("seminarops.tasks")


def awaiting_chain(task: asyncio.Task[Any]) -> list[str]:
    """``file:line function`` for each coroutine from the task's down to the innermost,
    then what that one awaits; nothing for a finished task."""
    chain: list[str] = []
    if task.done():
        return chain
    awaitable: Any = task.get_coro()
    for _depth in range(_DEEPEST):
        if awaitable is None:
            break
        if type(awaitable).__name__ in _ASYNC_GENERATOR_STEPS:
            # ``async with`` on an ``@asynccontextmanager``: the step object hides the
            # generator, whose frame is the one suspended.
            awaitable = _generator_of_step(awaitable)
        frame = _frame_of(awaitable)
        if frame is None:
            chain.append(f"awaits {awaitable!r:.200}")
            break
        code = frame.f_code
        chain.append(f"{code.co_filename}:{frame.f_lineno} {code.co_name}")
        awaitable = next(
            (
                getattr(awaitable, name)
                for name in ("cr_await", "ag_await", "gi_yieldfrom")
                if getattr(awaitable, name, None) is not None
            ),
            None,
        )
    return chain


_ASYNC_GENERATOR_STEPS = {"async_generator_asend", "async_generator_athrow"}
# A bound for a cycle the walk cannot rule out (an object awaiting itself).
_DEEPEST = 200


def _frame_of(awaitable: Any) -> Any:
    for name in ("cr_frame", "ag_frame", "gi_frame"):
        frame = getattr(awaitable, name, None)
        if frame is not None:
            return frame
    return None


def _generator_of_step(step: Any) -> Any:
    """The async generator an ``asend``/``athrow`` step drives: the one object the
    garbage collector knows refers to it (CPython keeps no public attribute)."""
    return next(
        (ref for ref in gc.get_referents(step) if type(ref).__name__ == "async_generator"),
        step,
    )


def log_all_tasks() -> None:
    tasks = asyncio.all_tasks()
    _log.warning("task dump", tasks=len(tasks))
    for task in sorted(tasks, key=lambda t: t.get_name()):
        _log.warning("task", name=task.get_name(), awaiting=awaiting_chain(task))
