"""Seat offers (seminars with ``offer`` promotion): a freed seat is offered to the head
of the waiting list (``SeatMoves``); here the offer is answered, accepted or declined,
or lapses when its durable timer comes due. Declined or lapsed, the seat is offered to
the next in the queue in the same transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from seminarops_shared.errors import Conflict, NotFound
from seminarops_shared.events.registration import RegistrationConfirmed, RegistrationStatus
from seminarops_shared.mongo import Document
from seminarops_shared.scheduler import Job, Scheduler
from seminarops_shared.unit_of_work import UnitOfWork

from .. import domain
from ..domain import SeminarStatus
from ..repository import RegistrationRepository, SeminarRepository
from .documents import event_fields, traced
from .outcomes import Outcome, OutcomeStatus, RegistrationClosed
from .seat_moves import SeatMoves, Withdrawal, offer_job_id

_log = structlog.get_logger(__name__)


class NoOpenOffer(Conflict):
    """The registration holds no seat offer that can still be answered: it was never
    offered one, answered it already, or the offer expired."""


def _open_offer(doc: Mapping[str, Any] | None, registration_id: str, *, now: Any) -> Document:
    if doc is None:
        raise NotFound(f"no registration {registration_id}")
    if doc["status"] != RegistrationStatus.OFFERED.value:
        raise NoOpenOffer(f"registration {registration_id} is {doc['status']}, not offered a seat")
    if doc["offer_expires_at"] <= domain.instant(now):
        raise NoOpenOffer(f"the seat offer of registration {registration_id} has expired")
    return dict(doc)


class SeatOffers:
    """Answering seat offers, and their expiry."""

    def __init__(
        self,
        *,
        seminars: SeminarRepository,
        registrations: RegistrationRepository,
        moves: SeatMoves,
        scheduler: Scheduler,
    ) -> None:
        self.seminars = seminars
        self.registrations = registrations
        self._moves = moves
        self._scheduler = scheduler

    async def accept(
        self, uow: UnitOfWork, *, registration_id: str, traceparent: str | None = None
    ) -> Outcome:
        """Take the offered seat: the registration is confirmed
        (``registration.confirmed.v1``) and its expiry timer cancelled; the seat stays
        taken, so capacity is never exceeded. Raises ``NotFound`` for an unknown id,
        ``NoOpenOffer`` (409) when there is no offer to answer (never offered, answered
        already, or expired) and ``RegistrationClosed`` for a completed seminar. Not
        idempotent by itself: a second accept finds a confirmed registration (409)."""
        session, now = uow.session, uow.now
        doc = _open_offer(
            await self.registrations.get(registration_id, session=session),
            registration_id,
            now=now,
        )
        seminar_id = doc["seminar_id"]
        book = await self.seminars.get(seminar_id, uow=uow)
        if book is None:  # pragma: no cover - a registration always has its seat book
            raise RuntimeError(f"registration {registration_id} without a seat book")
        if book.status is SeminarStatus.CLOSED:
            raise RegistrationClosed(f"seminar {seminar_id} is completed")
        await self.seminars.save(
            seminar_id, old=book, new=domain.accept_offer(book), now=now, uow=uow
        )
        await self.registrations.update_many_versions(
            [
                (
                    registration_id,
                    int(doc["version"]),
                    {
                        "status": RegistrationStatus.CONFIRMED.value,
                        "accepted_at": now,
                        "updated_at": now,
                    },
                )
            ],
            unset=("waitlist_seq", "offer_expires_at"),
            session=session,
        )
        await self._scheduler.cancel(uow, [offer_job_id(registration_id)])
        with traced(traceparent):
            uow.emit(
                RegistrationConfirmed(
                    **event_fields({**doc, "version": int(doc["version"]) + 1}),
                    requested_at=doc["requested_at"],
                )
            )
        return Outcome(registration_id, OutcomeStatus.CONFIRMED, created=True)

    async def decline(
        self, uow: UnitOfWork, *, registration_id: str, traceparent: str | None = None
    ) -> Outcome:
        """Turn the offered seat down: the registration is cancelled ``offer_declined``
        and the seat offered to the next in the queue, in this transaction. Raises as
        ``accept`` does."""
        doc = _open_offer(
            await self.registrations.get(registration_id, session=uow.session),
            registration_id,
            now=uow.now,
        )
        withdrawal = Withdrawal(
            doc,
            traceparent=traceparent,
            published_at=uow.now,
            reason=domain.REASON_OFFER_DECLINED,
        )
        await self._moves.cancel_active(uow, doc["seminar_id"], [withdrawal])
        return Outcome(
            registration_id,
            OutcomeStatus.CANCELLED,
            created=True,
            reason=domain.REASON_OFFER_DECLINED,
        )

    async def on_offer_expired(self, job: Job, uow: UnitOfWork) -> None:
        """An offer's timer is due: if the registration still holds that offer and it
        has lapsed, it is cancelled ``offer_expired`` and the seat offered to the next.
        Idempotent and safe across replicas: the scheduler runs a job once (lease and
        delete in this transaction), an offer answered meanwhile is no longer offered,
        and a later offer moved the timer. A completed seminar's offers stay as they
        are (registration is closed)."""
        reg_id = str(job.payload["registration_id"])
        doc = await self.registrations.get(reg_id, session=uow.session)
        if (
            doc is None
            or doc["status"] != RegistrationStatus.OFFERED.value
            or doc["offer_expires_at"] > domain.instant(uow.now)
        ):
            return
        book = await self.seminars.get(doc["seminar_id"], uow=uow)
        if book is None or book.status is not SeminarStatus.OPEN:
            return
        withdrawal = Withdrawal(
            doc, traceparent=None, published_at=uow.now, reason=domain.REASON_OFFER_EXPIRED
        )
        await self._moves.cancel_active(uow, doc["seminar_id"], [withdrawal])
        _log.info("seat offer expired", seminar_id=doc["seminar_id"])
