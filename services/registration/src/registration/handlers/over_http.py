"""The use cases as the HTTP API runs them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from seminarops_shared import retry
from seminarops_shared.clock import Clock
from seminarops_shared.keyed import GroupCommitter, Turns
from seminarops_shared.unit_of_work import UnitOfWork, UnitOfWorkFactory

from .outcomes import Outcome, RegistrationRequest
from .service import RegistrationService

T = TypeVar("T")


class RegistrationsOverHttp:
    """The use cases as the HTTP API runs them: each in its own transaction, retried on
    write conflicts; registration requests for one seminar arriving together are
    decided together (``GroupCommitter``), by the same ``decide`` the consumer uses."""

    def __init__(
        self,
        *,
        service: RegistrationService,
        uow: UnitOfWorkFactory,
        clock: Clock,
        group_max: int,
        patience_s: float,
        turns: Turns | None = None,
    ) -> None:
        self.registrations = service
        self.now = clock
        self._uow = uow
        self._retry = retry.CONTENDED.within(patience_s)
        self._requests: GroupCommitter[str, RegistrationRequest, Outcome] = GroupCommitter(
            uow=uow,
            process=service.requests.decide,
            max_batch=group_max,
            patience_s=patience_s,
            turns=turns,
        )

    async def request(self, request: RegistrationRequest) -> Outcome:
        return await self._requests.submit(request.seminar_id, request)

    async def run(self, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        async def attempt() -> T:
            async with self._uow.begin() as uow:
                return await work(uow)

        return await retry.run(self._retry, attempt)
