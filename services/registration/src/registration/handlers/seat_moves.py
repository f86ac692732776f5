"""Moves of seats shared by several use cases: cancelling active registrations with
the promotions that follow, promoting the head of the queue into free seats (confirmed
at once, or offered under ``offer`` promotion), and withdrawing a parked request."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from seminarops_shared.events.registration import (
    RegistrationCancelled,
    RegistrationOffered,
    RegistrationPromoted,
    RegistrationStatus,
)
from seminarops_shared.mongo import Document
from seminarops_shared.scheduler import Job, Scheduler
from seminarops_shared.unit_of_work import UnitOfWork

from .. import domain
from ..domain import Seats, SeminarStatus
from ..repository import ParkedRequestRepository, RegistrationRepository, SeminarRepository
from .documents import event_fields, traced
from .outcomes import RegistrationClosed

OFFER_EXPIRY_JOB = "registration.offer_expiry"


def offer_job_id(registration_id: str) -> str:
    return f"{OFFER_EXPIRY_JOB}:{registration_id}"


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """One active registration the participant's side ends: ``published_at`` is when
    the cancellation was published (a request published after it registers again),
    ``reason`` why (``participant_request``, ``offer_declined``, ``offer_expired``)."""

    doc: Document
    traceparent: str | None
    published_at: datetime
    reason: str = domain.REASON_PARTICIPANT


class SeatMoves:
    """Freeing and filling seats, each through one conditional update of the book."""

    def __init__(
        self,
        *,
        seminars: SeminarRepository,
        registrations: RegistrationRepository,
        parked: ParkedRequestRepository,
        scheduler: Scheduler,
    ) -> None:
        self.seminars = seminars
        self.registrations = registrations
        self.parked = parked
        self._scheduler = scheduler

    async def cancel_active(
        self, uow: UnitOfWork, seminar_id: str, items: Sequence[Withdrawal]
    ) -> None:
        """Cancel active registrations of one seminar from the participants' side (each
        with the trace context of its cancellation): their seats, offers or queue places
        are freed and the head of the queue promoted into free seats, in one
        conditional update of the seat book."""
        session, now = uow.session, uow.now
        book = await self.seminars.get(seminar_id, uow=uow)
        if book is None:  # pragma: no cover - a registration always has its seat book
            raise RuntimeError(f"registrations of {seminar_id} without a seat book")
        if book.status is SeminarStatus.CLOSED:
            raise RegistrationClosed(f"seminar {seminar_id} is completed")
        released = book
        for item in items:
            released = domain.release(released, RegistrationStatus(item.doc["status"]))
        promoted, heads = await self.promotions(
            seminar_id, released, exclude={item.doc["_id"] for item in items}, uow=uow
        )
        await self.seminars.save(seminar_id, old=book, new=promoted, now=now, uow=uow)
        for reason in dict.fromkeys(item.reason for item in items):
            await self.registrations.update_many_versions(
                [
                    (
                        item.doc["_id"],
                        int(item.doc["version"]),
                        {
                            "status": RegistrationStatus.CANCELLED.value,
                            "reason": reason,
                            "updated_at": now,
                            "cancelled_at": now,
                            "cancellation_published_at": item.published_at,
                        },
                    )
                    for item in items
                    if item.reason == reason
                ],
                # held_cancellation: left by an earlier version of this service.
                unset=("waitlist_seq", "held_cancellation", "offer_expires_at"),
                session=session,
            )
        # An expired offer's timer is the job running now, which the scheduler deletes
        # itself (deleting it here would lose the scheduler its lease).
        offers = [
            item.doc["_id"]
            for item in items
            if item.doc["status"] == RegistrationStatus.OFFERED.value
            and item.reason != domain.REASON_OFFER_EXPIRED
        ]
        if offers:
            await self._scheduler.cancel(uow, [offer_job_id(r) for r in offers])
        for item in items:
            with traced(item.traceparent):
                uow.emit(
                    RegistrationCancelled(
                        **event_fields({**item.doc, "version": int(item.doc["version"]) + 1}),
                        previous_status=RegistrationStatus(item.doc["status"]),
                        reason=item.reason,
                    )
                )
        await self.apply_promotions(uow, promoted, heads, traceparent=items[0].traceparent)

    async def withdraw_parked(self, uow: UnitOfWork, parked: Document) -> None:
        """A parked request leaves the parking (its book counts one fewer)."""
        reg_id, seminar_id = parked["_id"], parked["seminar_id"]
        await self.parked.delete([reg_id], session=uow.session)
        book = await self.seminars.get(seminar_id, uow=uow)
        if book is not None:
            await self.seminars.save(
                seminar_id, old=book, new=domain.unpark(book, 1), now=uow.now, uow=uow
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
        self, uow: UnitOfWork, book: Seats, heads: Sequence[Document], *, traceparent: str | None
    ) -> None:
        """Write and announce the promotions ``promotions`` chose (``book``: the book
        after them): confirmed, or, under ``offer`` promotion, offered until the offer
        period ends, with a durable timer for its expiry."""
        if not heads:
            return
        if book.terms.offers:
            await self._offer(uow, book, heads, traceparent=traceparent)
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

    async def _offer(
        self, uow: UnitOfWork, book: Seats, heads: Sequence[Document], *, traceparent: str | None
    ) -> None:
        # The offered keep their waitlist_seq: should the capacity shrink, they go back
        # to their place at the head of the queue.
        expires_at = domain.offer_expires_at(book, now=uow.now)
        offered = {
            "status": RegistrationStatus.OFFERED.value,
            "offered_at": uow.now,
            "offer_expires_at": expires_at,
            "updated_at": uow.now,
        }
        await self.registrations.update_many_versions(
            [(d["_id"], int(d["version"]), offered) for d in heads], session=uow.session
        )
        await self._scheduler.schedule_many(
            uow,
            [
                Job(
                    id=offer_job_id(doc["_id"]),
                    kind=OFFER_EXPIRY_JOB,
                    group=doc["seminar_id"],
                    due_at=expires_at,
                    payload={"registration_id": doc["_id"]},
                )
                for doc in heads
            ],
        )
        with traced(traceparent):
            for doc in heads:
                uow.emit(
                    RegistrationOffered(
                        **event_fields({**doc, "version": int(doc["version"]) + 1}),
                        offer_expires_at=expires_at,
                    )
                )
