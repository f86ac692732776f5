"""Moves of seats shared by several use cases: cancelling active registrations with
the promotions that follow, promoting the head of the queue into free seats, and
withdrawing a parked request."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from seminarops_shared.events.registration import (
    RegistrationCancelled,
    RegistrationPromoted,
    RegistrationStatus,
)
from seminarops_shared.mongo import Document
from seminarops_shared.unit_of_work import UnitOfWork

from .. import domain
from ..domain import Seats, SeminarStatus
from ..repository import ParkedRequestRepository, RegistrationRepository, SeminarRepository
from .documents import event_fields, traced
from .outcomes import RegistrationClosed


class SeatMoves:
    """Freeing and filling seats, each through one conditional update of the book."""

    def __init__(
        self,
        *,
        seminars: SeminarRepository,
        registrations: RegistrationRepository,
        parked: ParkedRequestRepository,
    ) -> None:
        self.seminars = seminars
        self.registrations = registrations
        self.parked = parked

    async def cancel_active(
        self,
        uow: UnitOfWork,
        seminar_id: str,
        items: Sequence[tuple[Document, str | None]],
    ) -> None:
        """Cancel active registrations of one seminar at the participants' request
        (each with the trace context of its cancellation): their seats or queue places
        are freed and the head of the queue promoted into free seats, in one
        conditional update of the seat book."""
        session, now = uow.session, uow.now
        book = await self.seminars.get(seminar_id, session=session)
        if book is None:  # pragma: no cover - a registration always has its seat book
            raise RuntimeError(f"registrations of {seminar_id} without a seat book")
        if book.status is SeminarStatus.CLOSED:
            raise RegistrationClosed(f"seminar {seminar_id} is completed")
        released = book
        for doc, _ in items:
            released = domain.release(released, RegistrationStatus(doc["status"]))
        promoted, heads = await self.promotions(
            seminar_id, released, exclude={doc["_id"] for doc, _ in items}, uow=uow
        )
        await self.seminars.save(seminar_id, old=book, new=promoted, now=now, session=session)
        cancelled = {
            "status": RegistrationStatus.CANCELLED.value,
            "reason": domain.REASON_PARTICIPANT,
            "updated_at": now,
            "cancelled_at": now,
        }
        await self.registrations.update_many_versions(
            [(doc["_id"], int(doc["version"]), cancelled) for doc, _ in items],
            unset=("waitlist_seq", "held_cancellation"),
            session=session,
        )
        for doc, traceparent in items:
            with traced(traceparent):
                uow.emit(
                    RegistrationCancelled(
                        **event_fields({**doc, "version": int(doc["version"]) + 1}),
                        previous_status=RegistrationStatus(doc["status"]),
                        reason=domain.REASON_PARTICIPANT,
                    )
                )
        await self.apply_promotions(uow, heads, traceparent=items[0][1])

    async def withdraw_parked(self, uow: UnitOfWork, parked: Document) -> None:
        """A parked request leaves the parking (its book counts one fewer)."""
        reg_id, seminar_id = parked["_id"], parked["seminar_id"]
        await self.parked.delete([reg_id], session=uow.session)
        book = await self.seminars.get(seminar_id, session=uow.session)
        if book is not None:
            await self.seminars.save(
                seminar_id, old=book, new=domain.unpark(book, 1), now=uow.now, session=uow.session
            )

    async def promotions(
        self, seminar_id: str, book: Seats, *, exclude: Collection[str], uow: UnitOfWork
    ) -> tuple[Seats, list[Document]]:
        """The head of the queue that fits in the free seats, and the book after it."""
        wanted = domain.promotable(book)
        if wanted == 0:
            return book, []
        heads = await self.registrations.waitlist_head(
            seminar_id, limit=wanted + len(exclude), session=uow.session
        )
        heads = [d for d in heads if d["_id"] not in exclude][:wanted]
        return domain.promote(book, len(heads)), heads

    async def apply_promotions(
        self, uow: UnitOfWork, heads: Sequence[Document], *, traceparent: str | None
    ) -> None:
        """Write and announce the promotions ``promotions`` chose."""
        if not heads:
            return
        promoted = {
            "status": RegistrationStatus.CONFIRMED.value,
            "promoted_at": uow.now,
            "updated_at": uow.now,
        }
        await self.registrations.update_many_versions(
            [(d["_id"], int(d["version"]), promoted) for d in heads],
            unset=("waitlist_seq",),
            session=uow.session,
        )
        with traced(traceparent):
            for doc in heads:
                uow.emit(
                    RegistrationPromoted(
                        **event_fields({**doc, "version": int(doc["version"]) + 1})
                    )
                )
