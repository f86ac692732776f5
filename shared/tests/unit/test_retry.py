"""The retry module: pure, with an injected clock, sleep and random factor (nothing
waits for real)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiokafka.errors import KafkaConnectionError
from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure

from seminarops_shared import retry
from seminarops_shared.mongo import ConcurrentChange
from seminarops_shared.retry import (
    CONTENDED,
    HTTP,
    OUTAGE,
    WRITE_CONFLICT,
    Backoff,
    Nested,
    RetryPolicy,
    is_outage,
    is_write_conflict,
)


class FakeTime:
    """A clock that only moves when the code under test sleeps (or an attempt takes time)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(errors: list[BaseException], result: str = "done") -> Callable[[], Awaitable[str]]:
    """An attempt that raises ``errors`` in turn, then returns ``result``."""
    pending = list(errors)

    async def attempt() -> str:
        if pending:
            raise pending.pop(0)
        return result

    return attempt


def always(error: Callable[[], BaseException]) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    calls = [0]

    async def attempt() -> str:
        calls[0] += 1
        raise error()

    return attempt, calls


async def run(
    policy: RetryPolicy | Nested,
    attempt: Callable[[], Awaitable[str]],
    time: FakeTime,
    *,
    factor: float = 1.0,
    on_retry: retry.OnRetry | dict[str, retry.OnRetry] | None = None,
) -> str:
    return await retry.run(
        policy,
        attempt,
        sleep=time.sleep,
        clock=time.clock,
        uniform=lambda low, high: low + (high - low) * factor,
        on_retry=on_retry,
    )


def conflict() -> OperationFailure:
    return OperationFailure("WriteConflict", code=112)


# ---- classifiers -----------------------------------------------------------------------


def test_outages_are_the_database_or_broker_unreachable() -> None:
    assert is_outage(AutoReconnect("primary stepped down"))
    assert is_outage(KafkaConnectionError())
    assert is_outage(TimeoutError())
    assert not is_outage(conflict())
    assert not is_outage(RuntimeError("a bug"))


def test_a_database_failing_for_a_reason_of_its_own_is_an_outage() -> None:
    # What SecantusDB answers every write once its disk is full (measured): waiting
    # for space and a restart is right; dead-lettering the event would lose it.
    assert is_outage(OperationFailure("internal server error", code=1))
    assert is_outage(OperationFailure("out of disk space", code=14031))


def test_errors_the_data_causes_are_not_an_outage() -> None:
    assert not is_outage(OperationFailure("Document failed validation", code=121))
    assert not is_outage(OperationFailure("bad value", code=2))
    assert not is_outage(DuplicateKeyError("E11000 duplicate key", code=11000))


def test_write_conflicts_include_the_shared_concurrent_change_but_not_outages() -> None:
    assert is_write_conflict(conflict())
    assert is_write_conflict(ConcurrentChange("seat book moved"))
    labelled = OperationFailure("abort", code=251)
    labelled._add_error_label("TransientTransactionError")
    assert is_write_conflict(labelled)
    assert not is_write_conflict(AutoReconnect("down"))
    assert not is_write_conflict(OperationFailure("BadValue", code=2))
    assert not is_write_conflict(DuplicateKeyError("E11000"))


def test_each_policy_retries_what_it_names() -> None:
    assert OUTAGE.retries(AutoReconnect("down"))
    assert not OUTAGE.retries(conflict())
    # A consumer batch also takes a duplicate key for a concurrent insert.
    assert WRITE_CONFLICT.retries(DuplicateKeyError("E11000"))
    assert WRITE_CONFLICT.retries(ConcurrentChange("x"))
    assert not WRITE_CONFLICT.retries(AutoReconnect("down"))
    # The bounded ones retry any transient database error, outages included.
    for policy in (HTTP, CONTENDED):
        assert policy.retries(AutoReconnect("down"))
        assert policy.retries(conflict())
        assert not policy.retries(DuplicateKeyError("E11000"))
        assert not policy.retries(RuntimeError("a bug"))


def test_conflicts_are_bounded_by_time_longer_than_the_transaction_lifetime() -> None:
    assert WRITE_CONFLICT.budget_s is not None
    assert WRITE_CONFLICT.budget_s >= retry.DATABASE_TRANSACTION_LIFETIME_S
    assert WRITE_CONFLICT.jitter != (1.0, 1.0)
    assert OUTAGE.budget_s is None  # until it ends
    assert HTTP.budget_s is not None
    assert CONTENDED.budget_s is not None


# ---- backoff ---------------------------------------------------------------------------


def test_backoff_grows_by_its_multiplier_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(OUTAGE)
    delays = [backoff.next_delay() for _ in range(9)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0])
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.1)


def test_backoff_jitter_scales_each_pause_within_the_policy_range() -> None:
    low = Backoff(HTTP, uniform=lambda a, b: a)
    high = Backoff(HTTP, uniform=lambda a, b: b)
    assert [low.next_delay() for _ in range(7)] == pytest.approx(
        [0.02, 0.04, 0.08, 0.16, 0.32, 0.5, 0.5]
    )
    assert [high.next_delay() for _ in range(7)] == pytest.approx(
        [0.04, 0.08, 0.16, 0.32, 0.64, 1.0, 1.0]
    )
    contended = Backoff(CONTENDED, uniform=lambda a, b: 1.0)
    assert [contended.next_delay() for _ in range(3)] == pytest.approx([0.002, 0.003, 0.0045])


async def test_backoff_pause_announces_then_sleeps() -> None:
    time = FakeTime()
    heard: list[float] = []
    backoff = Backoff(OUTAGE, sleep=time.sleep)
    await backoff.pause(heard.append)
    await backoff.pause()
    assert heard == pytest.approx([0.1])
    assert time.sleeps == pytest.approx([0.1, 0.2])


# ---- run -------------------------------------------------------------------------------


async def test_run_returns_at_once_when_the_attempt_succeeds() -> None:
    time = FakeTime()
    assert await run(HTTP, failing([]), time) == "done"
    assert time.sleeps == []


async def test_run_retries_what_the_policy_names_with_its_pauses() -> None:
    time = FakeTime()
    attempt = failing([conflict(), AutoReconnect("down"), conflict()])
    assert await run(HTTP, attempt, time) == "done"
    assert time.sleeps == pytest.approx([0.04, 0.08, 0.16])


async def test_run_does_not_retry_what_the_policy_does_not_name() -> None:
    time = FakeTime()
    attempt, calls = always(lambda: RuntimeError("a bug"))
    with pytest.raises(RuntimeError):
        await run(OUTAGE, attempt, time)
    assert calls == [1]
    assert time.sleeps == []


async def test_an_outage_is_waited_out_however_long_it_lasts() -> None:
    time = FakeTime()
    attempt = failing([KafkaConnectionError() for _ in range(200)])
    assert await run(OUTAGE, attempt, time) == "done"
    assert len(time.sleeps) == 200
    assert max(time.sleeps) == pytest.approx(5.0)
    assert time.now > 900  # well past any budget: outages have none


async def test_a_budget_gives_up_with_the_last_error_once_it_is_spent() -> None:
    time = FakeTime()
    attempt, calls = always(conflict)
    with pytest.raises(OperationFailure):
        await run(HTTP, attempt, time, factor=1.0)
    # Pauses 0.04 .. 1.0: the failure after 3 s propagates (about eight attempts, as
    # when the bound was eight attempts).
    assert calls[0] == 8
    assert sum(time.sleeps[:-1]) <= 3.0 < sum(time.sleeps)


async def test_the_budget_counts_the_attempts_own_time_too() -> None:
    time = FakeTime()

    async def slow() -> str:
        time.now += 2.0
        raise conflict()

    with pytest.raises(OperationFailure):
        await run(HTTP, slow, time)
    # 2 s, pause, 4 s > 3 s: two attempts.
    assert len(time.sleeps) == 1


async def test_write_conflicts_are_retried_past_the_transaction_lifetime() -> None:
    time = FakeTime()
    attempt, _calls = always(conflict)
    with pytest.raises(OperationFailure):
        await run(WRITE_CONFLICT, attempt, time)
    assert time.now >= retry.DATABASE_TRANSACTION_LIFETIME_S
    assert WRITE_CONFLICT.budget_s is not None
    assert sum(time.sleeps[:-1]) <= WRITE_CONFLICT.budget_s


async def test_within_and_retrying_derive_a_policy_with_the_same_pacing() -> None:
    patient = CONTENDED.within(0.01)
    assert patient.budget_s == 0.01
    assert patient.initial_delay_s == CONTENDED.initial_delay_s
    only_runtime = OUTAGE.retrying(lambda error: isinstance(error, RuntimeError))
    time = FakeTime()
    assert await run(only_runtime, failing([RuntimeError("passing")]), time) == "done"
    with pytest.raises(AutoReconnect):
        await run(only_runtime, failing([AutoReconnect("down")]), time)


async def test_on_retry_hears_each_error_and_pause() -> None:
    time = FakeTime()
    heard: list[tuple[str, float]] = []
    await retry.run(
        OUTAGE,
        failing([TimeoutError(), TimeoutError()]),
        on_retry=lambda error, delay: heard.append((type(error).__name__, delay)),
        sleep=time.sleep,
        clock=time.clock,
    )
    assert [name for name, _ in heard] == ["TimeoutError", "TimeoutError"]
    assert [delay for _, delay in heard] == pytest.approx([0.1, 0.2])


async def test_nested_runs_wait_out_outages_and_bound_conflicts_between_them() -> None:
    """The consumer's shape: outages around, conflicts inside (their budget starts
    afresh after each outage)."""
    time = FakeTime()
    errors: list[BaseException] = [conflict(), AutoReconnect("down"), conflict(), conflict()]
    attempt = failing(errors)

    async def through_conflicts() -> str:
        return await run(WRITE_CONFLICT, attempt, time, factor=0.5)

    assert await run(OUTAGE, through_conflicts, time) == "done"
    assert len(time.sleeps) == 4


async def test_cancellation_is_never_retried() -> None:
    time = FakeTime()
    attempt, calls = always(asyncio.CancelledError)
    with pytest.raises(asyncio.CancelledError):
        await run(OUTAGE, attempt, time)
    assert calls == [1]


# ---- nested policies: the consumer pipeline's one run -----------------------------------


class Contended(OperationFailure):
    """Stands in for the pipeline's ``ClaimConflict``: a write conflict of its own kind."""

    def __init__(self) -> None:
        super().__init__("claim met another writer", code=112)


CLAIM = CONTENDED.within(0.01).retrying(lambda error: isinstance(error, Contended))
PIPELINE = Nested(OUTAGE, WRITE_CONFLICT, CLAIM)


def taking_time(
    time: FakeTime, errors: list[BaseException], seconds: float
) -> Callable[[], Awaitable[str]]:
    """An attempt that takes ``seconds`` and raises ``errors`` in turn, then succeeds."""
    pending = list(errors)

    async def attempt() -> str:
        time.now += seconds
        if pending:
            raise pending.pop(0)
        return "done"

    return attempt


async def test_a_contended_claim_is_retried_quickly_then_by_the_write_conflict_level() -> None:
    time = FakeTime()
    attempt = failing([Contended() for _ in range(9)])
    assert await run(PIPELINE, attempt, time, factor=0.5) == "done"
    # CONTENDED's millisecond pauses until its patience (10 ms) is spent, then one
    # WRITE_CONFLICT pause, after which the claim level starts afresh.
    assert time.sleeps == pytest.approx(
        [0.002, 0.003, 0.0045, 0.00675, 0.05, 0.002, 0.003, 0.0045, 0.00675]
    )


async def test_an_outage_starts_the_write_conflict_budget_afresh() -> None:
    # Conflicts for 60 s, an outage, conflicts for 60 s more: retried throughout (the
    # budget of 65 s counts from the end of the outage), as nested runs would.
    time = FakeTime()
    errors: list[BaseException] = [conflict(), AutoReconnect("down"), conflict()]
    assert await run(PIPELINE, taking_time(time, errors, 60.0), time) == "done"

    # Without the outage the second conflict, 120 s in, is past the budget.
    time = FakeTime()
    with pytest.raises(OperationFailure):
        await run(PIPELINE, taking_time(time, [conflict(), conflict()], 60.0), time, factor=0.5)
    assert time.sleeps == pytest.approx([0.05])


async def test_an_attempt_bound_counts_only_the_failures_of_its_own_level() -> None:
    time = FakeTime()
    handler = RetryPolicy(
        name="handler",
        retries=lambda e: isinstance(e, RuntimeError),
        initial_delay_s=0.0,
        max_delay_s=0.0,
    ).attempts(3)
    errors: list[BaseException] = [
        RuntimeError("1"),
        AutoReconnect("down"),
        conflict(),
        RuntimeError("2"),
        RuntimeError("3"),
    ]
    heard: list[str] = []
    with pytest.raises(RuntimeError, match="3"):
        await run(
            Nested(handler, OUTAGE, WRITE_CONFLICT),
            failing(errors),
            time,
            on_retry={"handler": lambda error, _: heard.append(str(error))},
        )
    # Three handler failures end it; the outage and the conflict between them were
    # retried by their own levels and heard by nobody (not named in ``on_retry``).
    assert heard == ["1", "2"]


def test_nested_policies_need_distinct_names() -> None:
    with pytest.raises(ValueError, match="distinct"):
        Nested(OUTAGE, OUTAGE)
