"""The use cases as the HTTP API runs them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from seminarops_shared import retry
from seminarops_shared.clock import Clock
from seminarops_shared.keyed import GroupCommitter, KeyedWrites
from seminarops_shared.unit_of_work import UnitOfWork, UnitOfWorkFactory

from .outcomes import Outcome, RegistrationRequest
from .service import RegistrationService

T = TypeVar("T")


class RegistrationsOverHttp:
    """The use cases as the HTTP API runs them: each in its own transaction, retried on
    write conflicts; registration requests for one seminar arriving together are
    decided together (``GroupCommitter``), by the same ``decide`` the consumer uses.
    Whatever changes a seminar's registrations follows ``seat_books`` (the policy the
    consumer declares): in the seminar's turn, its seat book claimed first."""

    def __init__(
        self,
        *,
        service: RegistrationService,
        uow: UnitOfWorkFactory,
        clock: Clock,
        group_max: int,
        patience_s: float,
        seat_books: KeyedWrites,
    ) -> None:
        self.registrations = service
        self.now = clock
        self._uow = uow
        self._seat_books = seat_books
        self._retry = retry.CONTENDED.within(patience_s)
        self._requests: GroupCommitter[str, RegistrationRequest, Outcome] = GroupCommitter(
            uow=uow,
            process=service.requests.decide,
            max_batch=group_max,
            patience_s=patience_s,
            turns=seat_books.turns,
        )

    async def request(self, request: RegistrationRequest) -> Outcome:
        return await self._requests.submit(request.seminar_id, request)

    async def run(
        self, work: Callable[[UnitOfWork], Awaitable[T]], *, seminar_id: str | None = None
    ) -> T:
        """``work`` in a transaction of its own; given the seminar whose registrations it
        changes, in that seminar's turn with its seat book claimed first. A writer of a
        seat book outside the turns is met by every consumer batch holding that seminar
        at its claim (the batch claims the books of all its seminars), which then lets
        go of all its turns, queues for them again and retries: a stream of such
        writers (cancellations over HTTP, in the soak) held the consumer back for
        minutes."""
        keys = () if seminar_id is None else (seminar_id,)

        async def attempt() -> T:
            # The turn is held per attempt, never while backing off.
            async with self._seat_books.turns.hold(keys), self._uow.begin() as uow:
                if keys:
                    await self._seat_books.claim(uow, keys)
                return await work(uow)

        return await retry.run(self._retry, attempt)
