"""What this service learns from ``seminar.events``: a seminar scheduled (registration
opens on its terms, parked requests are decided), its capacity changed, cancelled or
completed."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from seminarops_shared.events.registration import (
    RegistrationCancelled,
    RegistrationStatus,
    RegistrationWaitlisted,
)
from seminarops_shared.mongo import Document
from seminarops_shared.scheduler import Scheduler
from seminarops_shared.unit_of_work import UnitOfWork, current_traceparent

from .. import domain
from ..domain import Seats, SeatTerms, SeminarStatus
from ..repository import ParkedRequestRepository, RegistrationRepository, SeminarRepository
from .deciding import RequestDecisions
from .documents import event_fields, request_from_parked, traced
from .kept_cancellations import KeptCancellations
from .parking import RequestParking
from .seat_moves import OFFER_EXPIRY_JOB, SeatMoves, offer_job_id

_log = structlog.get_logger(__name__)


class SeminarChanges:
    """The seminar lifecycle as the registration service follows it."""

    def __init__(
        self,
        *,
        seminars: SeminarRepository,
        registrations: RegistrationRepository,
        parked: ParkedRequestRepository,
        parking: RequestParking,
        decisions: RequestDecisions,
        kept: KeptCancellations,
        moves: SeatMoves,
        scheduler: Scheduler,
    ) -> None:
        self.seminars = seminars
        self.registrations = registrations
        self.parked = parked
        self._parking = parking
        self._decisions = decisions
        self._kept = kept
        self._moves = moves
        self._scheduler = scheduler

    async def on_seminar_scheduled(
        self,
        uow: UnitOfWork,
        *,
        seminar_id: str,
        capacity: int,
        terms: SeatTerms = domain.DEFAULT_TERMS,
    ) -> None:
        """The seminar exists: registration opens with its capacity and terms (how freed
        seats are given, who may register), and requests parked for it are decided now,
        in arrival order, in this transaction. Idempotent: a seminar already known is
        left as it is."""
        session = uow.session
        book = await self.seminars.get(seminar_id, uow=uow)
        if book is not None and book.status is not SeminarStatus.UNKNOWN:
            _log.info("seminar already known; scheduled event ignored", seminar_id=seminar_id)
            return
        parked = await self.parked.of_seminar(seminar_id, session=session) if book else []
        opened = domain.open_seminar(book, capacity, terms)
        await self.seminars.save(seminar_id, old=book, new=opened, now=uow.now, uow=uow)
        await self._decide_parked(uow, seminar_id, parked)

    async def _decide_parked(
        self, uow: UnitOfWork, seminar_id: str, parked: Sequence[Document]
    ) -> None:
        await self._parking.stop_timers(uow, seminar_id)
        if not parked:
            return
        await self.parked.delete([d["_id"] for d in parked], session=uow.session)
        await self._decisions.decide(uow, [request_from_parked(d) for d in parked])
        _log.info("parked requests decided", seminar_id=seminar_id, decided=len(parked))

    async def on_capacity_changed(self, uow: UnitOfWork, *, seminar_id: str, capacity: int) -> None:
        """``seminar.rescheduled.v1``: the new capacity applies. An increase promotes
        (or offers a seat to) as many of the queue as now fit, head first; a decrease
        un-confirms nobody, and outstanding offers that no longer fit go back to the
        head of the queue (the newest first), so confirmed plus offered never exceeds
        the capacity unless confirmed alone does. Idempotent: the same capacity again
        changes nothing."""
        session, now = uow.session, uow.now
        book = await self.seminars.get(seminar_id, uow=uow)
        if book is None or book.status in {SeminarStatus.UNKNOWN, SeminarStatus.CANCELLED}:
            return
        changed = domain.change_capacity(book, capacity)
        excess = domain.excess_offers(changed)
        withdrawn = await self.registrations.offered_newest_first(
            seminar_id, limit=excess, session=session
        )
        changed = domain.withdraw_offers(changed, len(withdrawn))
        promoted, heads = await self._moves.promotions(seminar_id, changed, exclude=(), uow=uow)
        if promoted != book:
            await self.seminars.save(seminar_id, old=book, new=promoted, now=now, uow=uow)
        await self._back_to_queue(uow, withdrawn)
        await self._moves.apply_promotions(
            uow, promoted, heads, traceparent=current_traceparent.get()
        )

    async def _back_to_queue(self, uow: UnitOfWork, withdrawn: Sequence[Document]) -> None:
        """Offers withdrawn by a capacity decrease: waitlisted again at their old place
        (their sequence number), announced with their position."""
        if not withdrawn:
            return
        waiting = {
            "status": RegistrationStatus.WAITLISTED.value,
            "updated_at": uow.now,
        }
        await self.registrations.update_many_versions(
            [(d["_id"], int(d["version"]), waiting) for d in withdrawn],
            unset=("offer_expires_at", "offered_at"),
            session=uow.session,
        )
        await self._scheduler.cancel(uow, [offer_job_id(d["_id"]) for d in withdrawn])
        seminar_id = withdrawn[0]["seminar_id"]
        positions = await self.registrations.waitlist_positions(
            seminar_id, [int(d["waitlist_seq"]) for d in withdrawn], session=uow.session
        )
        with traced(current_traceparent.get()):
            for doc in withdrawn:
                uow.emit(
                    RegistrationWaitlisted(
                        **event_fields({**doc, "version": int(doc["version"]) + 1}),
                        requested_at=doc["requested_at"],
                        position=positions[int(doc["waitlist_seq"])],
                    )
                )

    async def on_seminar_cancelled(self, uow: UnitOfWork, *, seminar_id: str) -> None:
        """Every confirmed and waitlisted registration is cancelled (reason
        ``seminar_cancelled``), parked requests are rejected, new requests will be.
        Idempotent: a cancelled seminar stays as it is."""
        session, now = uow.session, uow.now
        book = await self.seminars.get(seminar_id, uow=uow)
        if book is not None and book.status is SeminarStatus.CANCELLED:
            return
        active = await self.registrations.active_of_seminar(seminar_id, session=session)
        parked = await self.parked.of_seminar(seminar_id, session=session) if book else []
        if book is not None:
            await self._kept.drop_of_seminar(uow, seminar_id, book)
            await self._scheduler.cancel_group(uow, seminar_id, kind=OFFER_EXPIRY_JOB)
        base = book or Seats(status=SeminarStatus.CANCELLED, capacity=0)
        await self.seminars.save(
            seminar_id, old=book, new=domain.cancel_seminar(base), now=now, uow=uow
        )
        cancelled = {
            "status": RegistrationStatus.CANCELLED.value,
            "reason": domain.REASON_SEMINAR_CANCELLED,
            "updated_at": now,
            "cancelled_at": now,
        }
        await self.registrations.update_many_versions(
            # ``previous_status``: the participant's calendar shows the seminar cancelled
            # to those who held (or were offered) a seat, not to the waiting list.
            [
                (d["_id"], int(d["version"]), {**cancelled, "previous_status": d["status"]})
                for d in active
            ],
            unset=("waitlist_seq", "offer_expires_at"),
            session=session,
        )
        for doc in active:
            uow.emit(
                RegistrationCancelled(
                    **event_fields({**doc, "version": int(doc["version"]) + 1}),
                    previous_status=RegistrationStatus(doc["status"]),
                    reason=domain.REASON_SEMINAR_CANCELLED,
                )
            )
        await self._decide_parked(uow, seminar_id, parked)

    async def on_seminar_completed(self, uow: UnitOfWork, *, seminar_id: str) -> None:
        """Registration closes: new requests are rejected ``seminar_closed``, and so are
        parked ones; registrations stay as they are (an outstanding offer stays
        unanswered: its timer does nothing to a completed seminar). Idempotent."""
        session = uow.session
        book = await self.seminars.get(seminar_id, uow=uow)
        if book is not None and book.status in {SeminarStatus.CLOSED, SeminarStatus.CANCELLED}:
            return
        parked = await self.parked.of_seminar(seminar_id, session=session) if book else []
        if book is not None:
            await self._kept.drop_of_seminar(uow, seminar_id, book)
        base = book or Seats(status=SeminarStatus.CLOSED, capacity=0)
        await self.seminars.save(
            seminar_id, old=book, new=domain.close_seminar(base), now=uow.now, uow=uow
        )
        await self._decide_parked(uow, seminar_id, parked)
