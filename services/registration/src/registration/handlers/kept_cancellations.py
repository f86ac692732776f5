"""Cancellations that arrive before the registration they cancel: kept (counted in the
seat book, with a timer), settled when the request is decided, dropped when they can
cancel nothing any more."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import structlog

from seminarops_shared.scheduler import Job, Scheduler
from seminarops_shared.unit_of_work import UnitOfWork

from .. import domain
from ..domain import Seats
from ..repository import PendingCancellationRepository, SeminarRepository
from .documents import cancellation_doc
from .outcomes import CancellationRequest

_log = structlog.get_logger(__name__)

PENDING_CANCELLATION_JOB = "registration.pending_cancellation_expiry"


def expiry_job_id(registration_id: str) -> str:
    return f"{PENDING_CANCELLATION_JOB}:{registration_id}"


class KeptCancellations:
    """Keeping, dropping and expiring cancellations that came before their request."""

    def __init__(
        self,
        *,
        seminars: SeminarRepository,
        cancellations: PendingCancellationRepository,
        scheduler: Scheduler,
        lifetime: timedelta,
    ) -> None:
        self.seminars = seminars
        self.cancellations = cancellations
        self._scheduler = scheduler
        self._lifetime = lifetime

    async def keep(self, uow: UnitOfWork, cancellation: CancellationRequest) -> None:
        """Keep a cancellation for a registration that does not exist yet (the later of
        two), counted in the seminar's book (a placeholder book for a seminar not known
        yet), with a timer that drops it after the cancellation lifetime."""
        session, now = uow.session, uow.now
        reg_id = cancellation.registration_id
        current = (await self.cancellations.get_many([reg_id], session=session)).get(reg_id)
        kept_at = current["cancelled_at"] if current is not None else None
        if not domain.supersedes(cancellation.cancelled_at, kept_at):
            return
        await self.cancellations.put(
            cancellation_doc(cancellation, now=now), replacing=current, session=session
        )
        if current is None:
            book = await self.seminars.get(cancellation.seminar_id, uow=uow)
            await self.seminars.save(
                cancellation.seminar_id,
                old=book,
                new=domain.keep_cancellation(book or domain.unknown_seminar()),
                now=now,
                uow=uow,
            )
        await self._scheduler.schedule(
            uow,
            job_id=expiry_job_id(reg_id),
            kind=PENDING_CANCELLATION_JOB,
            group=cancellation.seminar_id,
            due_at=now + self._lifetime,
            payload={"registration_id": reg_id},
        )
        _log.info("cancellation before its registration: kept", seminar_id=cancellation.seminar_id)

    async def drop(
        self, uow: UnitOfWork, settled: Mapping[str, Sequence[str]], *, timers: bool = True
    ) -> None:
        """Kept cancellations that were settled (applied, or outdated by a later request)
        are dropped with their timers (``timers=False``: the timer is the one running
        now, which the scheduler deletes itself), and the books count them no more."""
        for seminar_id, reg_ids in settled.items():
            dropped = await self.cancellations.delete(reg_ids, session=uow.session)
            if timers:
                await self._scheduler.cancel(uow, [expiry_job_id(r) for r in reg_ids])
            book = await self.seminars.get(seminar_id, uow=uow)
            if book is not None and dropped:
                await self.seminars.save(
                    seminar_id,
                    old=book,
                    new=domain.drop_cancellations(book, dropped),
                    now=uow.now,
                    uow=uow,
                )

    async def on_cancellation_expired(self, job: Job, uow: UnitOfWork) -> None:
        """A kept cancellation's lifetime is over and its request never came: it is
        dropped (a request arriving later registers the person). Idempotent: one that
        was settled or dropped meanwhile is gone, and a later one moved the timer."""
        reg_id = str(job.payload["registration_id"])
        current = (await self.cancellations.get_many([reg_id], session=uow.session)).get(reg_id)
        if current is None:
            return
        await self.drop(uow, {current["seminar_id"]: [reg_id]}, timers=False)
        _log.info("kept cancellation expired", seminar_id=current["seminar_id"])

    async def drop_of_seminar(self, uow: UnitOfWork, seminar_id: str, book: Seats) -> None:
        """The seminar is completed or cancelled: its kept cancellations have nothing
        left to cancel (the caller's book change sets the count to zero)."""
        if not book.pending_cancellations:
            return
        await self.cancellations.delete_of_seminar(seminar_id, session=uow.session)
        await self._scheduler.cancel_group(uow, seminar_id, kind=PENDING_CANCELLATION_JOB)
