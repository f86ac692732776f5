"""Requests for a seminar not known yet: parked in arrival order, decided when the
seminar becomes known, rejected ``seminar_unknown`` when it stays unknown too long."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog

from seminarops_shared.mongo import Document
from seminarops_shared.scheduler import Job, Scheduler
from seminarops_shared.unit_of_work import UnitOfWork

from .. import domain
from ..domain import Decision, DecisionKind, Seats, SeminarStatus
from ..repository import ParkedRequestRepository, RegistrationRepository, SeminarRepository
from .documents import emit_decision, parked_doc, registration_doc, request_from_parked
from .outcomes import RegistrationRequest

_log = structlog.get_logger(__name__)

PARK_TIMEOUT_JOB = "registration.park_timeout"


class RequestParking:
    """The parking of requests for unknown seminars, and its timeout timers."""

    def __init__(
        self,
        *,
        seminars: SeminarRepository,
        registrations: RegistrationRepository,
        parked: ParkedRequestRepository,
        scheduler: Scheduler,
        timeout: timedelta,
    ) -> None:
        self.seminars = seminars
        self.registrations = registrations
        self.parked = parked
        self._scheduler = scheduler
        self._timeout = timeout

    async def park(
        self,
        uow: UnitOfWork,
        seminar_id: str,
        book: Seats | None,
        requests: Sequence[RegistrationRequest],
    ) -> None:
        """Park new requests (none parked for their registration yet) in arrival order;
        the first parked for the seminar starts a timeout timer."""
        if not requests:
            return
        parked, first_seq, start_timer = domain.park(
            book or domain.unknown_seminar(), len(requests)
        )
        await self.seminars.save(seminar_id, old=book, new=parked, now=uow.now, uow=uow)
        await self.parked.insert_many(
            [
                parked_doc(request, seq=first_seq + n, now=uow.now)
                for n, request in enumerate(requests)
            ],
            session=uow.session,
        )
        if start_timer:
            await self._start_timer(uow, seminar_id, parked, due_at=uow.now + self._timeout)
        _log.info("requests parked: seminar unknown", seminar_id=seminar_id, parked=len(requests))

    async def stop_timers(self, uow: UnitOfWork, seminar_id: str) -> None:
        """The seminar is known (or over): its parked requests are decided now."""
        await self._scheduler.cancel_group(uow, seminar_id, kind=PARK_TIMEOUT_JOB)

    async def _start_timer(
        self, uow: UnitOfWork, seminar_id: str, book: Seats, *, due_at: datetime
    ) -> None:
        await self._scheduler.schedule(
            uow,
            job_id=f"{PARK_TIMEOUT_JOB}:{seminar_id}:{book.park_round}",
            kind=PARK_TIMEOUT_JOB,
            group=seminar_id,
            due_at=due_at,
            payload={"seminar_id": seminar_id},
        )

    async def on_park_timeout(self, job: Job, uow: UnitOfWork) -> None:
        """A park timer is due: requests parked for at least the park timeout whose
        seminar is still unknown are rejected ``seminar_unknown``; a timer for the rest
        is started. Idempotent: a seminar that became known meanwhile is left alone, and
        a rejected request is no longer parked."""
        seminar_id = str(job.payload["seminar_id"])
        session, now = uow.session, uow.now
        book = await self.seminars.get(seminar_id, uow=uow)
        if book is None or book.status is not SeminarStatus.UNKNOWN:
            return
        parked = await self.parked.of_seminar(seminar_id, session=session)
        expired: list[Document] = []
        remaining: list[Document] = []
        for doc in parked:
            due = domain.expired(doc["parked_at"], now=now, timeout=self._timeout)
            (expired if due else remaining).append(doc)
        decision = Decision(DecisionKind.REJECTED, reason=domain.REASON_SEMINAR_UNKNOWN)
        inserts = []
        for doc in expired:
            request = request_from_parked(doc)
            registration = registration_doc(request, decision, now=now, version=1)
            inserts.append(registration)
            emit_decision(uow, request, registration, decision)
        await self.registrations.insert_many(inserts, session=session)
        await self.parked.delete([d["_id"] for d in expired], session=session)
        after = domain.next_park_round(book, len(remaining))
        await self.seminars.save(seminar_id, old=book, new=after, now=now, uow=uow)
        if remaining:
            oldest = min(d["parked_at"] for d in remaining)
            await self._start_timer(uow, seminar_id, after, due_at=oldest + self._timeout)
        _log.info(
            "parked requests timed out",
            seminar_id=seminar_id,
            rejected=len(expired),
            still_parked=len(remaining),
        )
