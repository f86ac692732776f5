"""Retries: the one way to run something again. Named policies, one ``run``, one
``Backoff`` for loops that pace themselves.

A policy says which errors it retries (a classifier), how the pause grows (from
``initial_delay_s``, times ``multiplier`` per retry, capped at ``max_delay_s``, each
pause multiplied by a random factor in ``jitter``) and for how long (``budget_s``,
counted from the first attempt: a failure after that propagates; ``None``: until it
ends). Every bound of a passing fault is in time; only a handler's own failures (a bug
or bad data, which time does not cure) are bounded in attempts (``max_attempts``).

``Nested(outer, ..., inner)`` runs several policies as ONE ``run``, as if each ran the
next as its attempt: a failure is retried by the innermost policy that retries it
within its bounds, and a retry at one level starts the levels inside it afresh (the
consumer pipeline: a handler's failures around outages around write conflicts around a
contended claim).

- ``OUTAGE``: the database or the broker cannot be reached: wait it out, however long.
- ``WRITE_CONFLICT``: a consumer batch met a concurrent writer: retried for longer than
  the database's transaction lifetime, so a transaction a killed process left open
  (held until the database aborts it) is outlasted.
- ``HTTP``: a use case run for a request: transient database errors, briefly; what is
  left is answered 503 with Retry-After (or 409) by the HTTP layer.
- ``CONTENDED``: many writers of one hot document (a seat book) that mostly need to
  wait for one commit: pauses of a few milliseconds; the budget is the caller's
  (``within``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import structlog
from aiokafka.errors import KafkaError
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure

from .mongo import is_transient_database_error

T = TypeVar("T")

Classifier = Callable[[BaseException], bool]
# Called before each pause with the error that is retried and the pause in seconds.
OnRetry = Callable[[BaseException, float], None]
Sleep = Callable[[float], Awaitable[None]]

_log = structlog.get_logger(__name__)

# mongod's ``transactionLifetimeLimitSeconds`` by default (SecantusDB's too): the
# longest an abandoned transaction keeps its documents.
DATABASE_TRANSACTION_LIFETIME_S = 60.0


# Server errors an event's own data causes: retrying cannot help, so these are not an
# outage (BadValue, FailedToParse, TypeMismatch, DocumentValidationFailure, a document
# or BSON object too large, a duplicate key).
_CAUSED_BY_THE_DATA = frozenset({2, 9, 14, 121, 10334, 11000, 17419})


def is_outage(error: BaseException) -> bool:
    """The database or the broker cannot be reached, did not answer in time, or fails
    for a reason of its own: a full disk answers every write with a server error until
    space is freed and the database restarted, and an event that met it must wait for
    that, not be dead-lettered."""
    if isinstance(error, ConnectionFailure | KafkaError | TimeoutError):
        return True
    return (
        isinstance(error, OperationFailure)
        and not isinstance(error, DuplicateKeyError)
        and not is_transient_database_error(error)
        and error.code not in _CAUSED_BY_THE_DATA
    )


def is_write_conflict(error: BaseException) -> bool:
    """Another writer got there first (a server write conflict, a transaction to run
    again, ``ConcurrentChange``); not an outage."""
    return is_transient_database_error(error) and not isinstance(error, ConnectionFailure)


def _is_batch_conflict(error: BaseException) -> bool:
    # In a consumer batch a duplicate key is a concurrent insert too: another replica
    # (during a rebalance) wrote the same processed-event marker or document first.
    return is_write_conflict(error) or isinstance(error, DuplicateKeyError)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    name: str
    retries: Classifier
    initial_delay_s: float
    max_delay_s: float
    multiplier: float = 2.0
    # Each pause is multiplied by a random factor in [low, high]; (1, 1): no jitter.
    jitter: tuple[float, float] = (1.0, 1.0)
    # Give up on a failure this long after the first attempt started; None: never.
    budget_s: float | None = None
    # Give up on the failure of this attempt (counted from the first); None: time only.
    max_attempts: int | None = None

    def within(self, budget_s: float) -> RetryPolicy:
        """The same policy with another time budget (a setting, a caller's patience)."""
        return dataclasses.replace(self, budget_s=budget_s)

    def retrying(self, classifier: Classifier) -> RetryPolicy:
        """The same pacing for a narrower set of errors."""
        return dataclasses.replace(self, retries=classifier)

    def attempts(self, max_attempts: int) -> RetryPolicy:
        """The same policy, giving up after ``max_attempts`` attempts."""
        return dataclasses.replace(self, max_attempts=max_attempts)


@dataclass(frozen=True, slots=True)
class Nested:
    """Policies one inside the other, run as one (see the module docstring);
    ``levels[0]`` is the outermost. Their names must differ (``run``'s ``on_retry``
    may be chosen by name)."""

    levels: tuple[RetryPolicy, ...]

    def __init__(self, *levels: RetryPolicy) -> None:
        if len({level.name for level in levels}) != len(levels):
            raise ValueError("nested policies need distinct names")
        object.__setattr__(self, "levels", levels)


OUTAGE = RetryPolicy(name="outage", retries=is_outage, initial_delay_s=0.1, max_delay_s=5.0)
WRITE_CONFLICT = RetryPolicy(
    name="write_conflict",
    retries=_is_batch_conflict,
    initial_delay_s=0.05,
    max_delay_s=5.0,
    jitter=(0.5, 1.5),
    budget_s=DATABASE_TRANSACTION_LIFETIME_S + 5.0,
)
HTTP = RetryPolicy(
    name="http",
    retries=is_transient_database_error,
    initial_delay_s=0.04,
    max_delay_s=1.0,
    jitter=(0.5, 1.0),
    budget_s=3.0,
)
CONTENDED = RetryPolicy(
    name="contended",
    retries=is_transient_database_error,
    initial_delay_s=0.002,
    max_delay_s=0.05,
    multiplier=1.5,
    jitter=(0.5, 1.5),
    budget_s=30.0,
)


def _announce(
    policy: RetryPolicy,
    error: BaseException,
    on_retry: OnRetry | Mapping[str, OnRetry] | None,
    delay: float,
) -> None:
    hear = on_retry.get(policy.name) if isinstance(on_retry, Mapping) else on_retry
    if hear is not None:
        hear(error, delay)
    else:
        _log.debug("retrying", policy=policy.name, error=repr(error), retry_in_s=round(delay, 3))


class Backoff:
    """The pauses of a policy, for a loop that paces itself (a background relay):
    ``pause()`` (or ``next_delay()``) after each failure, ``reset()`` after a success.
    Its classifier and budget are the loop's business."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        uniform: Callable[[float, float], float] = random.uniform,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._policy = policy
        self._uniform = uniform
        self._sleep = sleep
        self._base = 0.0

    def next_delay(self) -> float:
        policy = self._policy
        if self._base == 0.0:
            self._base = policy.initial_delay_s
        else:
            self._base = min(policy.max_delay_s, self._base * policy.multiplier)
        low, high = policy.jitter
        return self._base if low == high == 1.0 else self._base * self._uniform(low, high)

    async def pause(self, note: Callable[[float], None] | None = None) -> None:
        """Wait the next delay (``note`` hears it first)."""
        delay = self.next_delay()
        if note is not None:
            note(delay)
        await self._sleep(delay)

    def reset(self) -> None:
        self._base = 0.0


async def run(
    policy: RetryPolicy | Nested,
    attempt: Callable[[], Awaitable[T]],
    *,
    on_retry: OnRetry | Mapping[str, OnRetry] | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    uniform: Callable[[float, float], float] = random.uniform,
) -> T:
    """``attempt()`` until it succeeds, or fails with an error ``policy`` does not
    retry, or fails past ``policy``'s bounds: that error propagates. Cancellation is
    never retried. A pause is never taken while ``attempt`` holds anything.

    ``on_retry`` hears each retry (error, pause) before its pause; a mapping hears
    only the retries of the policies it names (the others are logged at debug)."""
    levels = policy.levels if isinstance(policy, Nested) else (policy,)
    backoffs = [Backoff(level, uniform=uniform, sleep=sleep) for level in levels]
    started = [clock()] * len(levels)
    failures = [0] * len(levels)
    while True:
        try:
            return await attempt()
        except Exception as error:
            now = clock()
            retrying = next(
                (
                    i
                    for i in reversed(range(len(levels)))
                    if _retries(levels[i], error, since=now - started[i], failures=failures[i])
                ),
                None,
            )
            if retrying is None:
                raise
            failures[retrying] += 1
            inner = range(retrying + 1, len(levels))
            for i in inner:
                backoffs[i].reset()
                failures[i] = 0
            level = levels[retrying]
            await backoffs[retrying].pause(functools.partial(_announce, level, error, on_retry))
            # The levels inside start afresh, as a new run of theirs would.
            restarted = clock()
            for i in inner:
                started[i] = restarted


def _retries(policy: RetryPolicy, error: BaseException, *, since: float, failures: int) -> bool:
    """Whether ``policy`` retries ``error``, ``since`` seconds after its first attempt,
    which ``failures`` failures of its own preceded."""
    if not policy.retries(error):
        return False
    if policy.budget_s is not None and since > policy.budget_s:
        return False
    return policy.max_attempts is None or failures + 1 < policy.max_attempts


__all__ = [
    "CONTENDED",
    "DATABASE_TRANSACTION_LIFETIME_S",
    "HTTP",
    "OUTAGE",
    "WRITE_CONFLICT",
    "Backoff",
    "Nested",
    "RetryPolicy",
    "is_outage",
    "is_write_conflict",
    "run",
]
