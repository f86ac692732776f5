"""What this service learns from ``seminar.events``: a seminar scheduled (registration
opens, parked requests are decided), its capacity changed, cancelled or completed."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from seminarops_shared.events.registration import RegistrationCancelled, RegistrationStatus
from seminarops_shared.mongo import Document
from seminarops_shared.unit_of_work import UnitOfWork, current_traceparent

from .. import domain
from ..domain import Seats, SeminarStatus
from ..repository import ParkedRequestRepository, RegistrationRepository, SeminarRepository
from .deciding import RequestDecisions
from .documents import event_fields, request_from_parked
from .kept_cancellations import KeptCancellations
from .parking import RequestParking
from .seat_moves import SeatMoves

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
    ) -> None:
        self.seminars = seminars
        self.registrations = registrations
        self.parked = parked
        self._parking = parking
        self._decisions = decisions
        self._kept = kept
        self._moves = moves

    async def on_seminar_scheduled(
        self, uow: UnitOfWork, *, seminar_id: str, capacity: int
    ) -> None:
        """The seminar exists: registration opens with its capacity, and requests
        parked for it are decided now, in arrival order, in this transaction.
        Idempotent: a seminar already known is left as it is."""
        session = uow.session
        book = await self.seminars.get(seminar_id, session=session)
        if book is not None and book.status is not SeminarStatus.UNKNOWN:
            _log.info("seminar already known; scheduled event ignored", seminar_id=seminar_id)
            return
        parked = await self.parked.of_seminar(seminar_id, session=session) if book else []
        opened = domain.open_seminar(book, capacity)
        await self.seminars.save(seminar_id, old=book, new=opened, now=uow.now, session=session)
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
        as many of the queue as now fit, head first; a decrease un-confirms nobody.
        Idempotent: the same capacity again promotes nobody new."""
        session, now = uow.session, uow.now
        book = await self.seminars.get(seminar_id, session=session)
        if book is None or book.status in {SeminarStatus.UNKNOWN, SeminarStatus.CANCELLED}:
            return
        changed = domain.change_capacity(book, capacity)
        promoted, heads = await self._moves.promotions(seminar_id, changed, exclude=(), uow=uow)
        if promoted != book:
            await self.seminars.save(seminar_id, old=book, new=promoted, now=now, session=session)
        await self._moves.apply_promotions(uow, heads, traceparent=current_traceparent.get())

    async def on_seminar_cancelled(self, uow: UnitOfWork, *, seminar_id: str) -> None:
        """Every confirmed and waitlisted registration is cancelled (reason
        ``seminar_cancelled``), parked requests are rejected, new requests will be.
        Idempotent: a cancelled seminar stays as it is."""
        session, now = uow.session, uow.now
        book = await self.seminars.get(seminar_id, session=session)
        if book is not None and book.status is SeminarStatus.CANCELLED:
            return
        active = await self.registrations.active_of_seminar(seminar_id, session=session)
        parked = await self.parked.of_seminar(seminar_id, session=session) if book else []
        if book is not None:
            await self._kept.drop_of_seminar(uow, seminar_id, book)
        base = book or Seats(status=SeminarStatus.CANCELLED, capacity=0)
        await self.seminars.save(
            seminar_id, old=book, new=domain.cancel_seminar(base), now=now, session=session
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
            unset=("waitlist_seq",),
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
        parked ones; registrations stay as they are. Idempotent."""
        session = uow.session
        book = await self.seminars.get(seminar_id, session=session)
        if book is not None and book.status in {SeminarStatus.CLOSED, SeminarStatus.CANCELLED}:
            return
        parked = await self.parked.of_seminar(seminar_id, session=session) if book else []
        if book is not None:
            await self._kept.drop_of_seminar(uow, seminar_id, book)
        base = book or Seats(status=SeminarStatus.CLOSED, capacity=0)
        await self.seminars.save(
            seminar_id, old=book, new=domain.close_seminar(base), now=uow.now, session=session
        )
        await self._decide_parked(uow, seminar_id, parked)
