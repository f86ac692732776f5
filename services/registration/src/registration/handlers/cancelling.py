"""Cancelling registrations at the participant's request: over HTTP (the caller names
a registration) or by ``registration.cancellation_requested.v1``, which may arrive
before or after the request it cancels."""

from __future__ import annotations

import structlog

from seminarops_shared.events.registration import RegistrationStatus
from seminarops_shared.mongo import Document
from seminarops_shared.unit_of_work import UnitOfWork

from .. import domain
from ..domain import SeminarStatus
from ..repository import ParkedRequestRepository, RegistrationRepository, SeminarRepository
from .documents import cancellation_doc, earliest_request, held
from .kept_cancellations import KeptCancellations
from .outcomes import (
    CancellationRequest,
    Outcome,
    OutcomeStatus,
    RegistrationClosed,
    existing_outcome,
)
from .seat_moves import SeatMoves

_log = structlog.get_logger(__name__)


class RegistrationCancelling:
    """The cancellation use cases."""

    def __init__(
        self,
        *,
        seminars: SeminarRepository,
        registrations: RegistrationRepository,
        parked: ParkedRequestRepository,
        kept: KeptCancellations,
        moves: SeatMoves,
    ) -> None:
        self.seminars = seminars
        self.registrations = registrations
        self.parked = parked
        self._kept = kept
        self._moves = moves

    async def cancel(
        self,
        uow: UnitOfWork,
        *,
        registration_id: str,
        traceparent: str | None = None,
        source: str | None = None,
    ) -> Outcome | None:
        """Cancel a registration now (the HTTP API: the caller names a registration).

        A confirmed registration frees its seat and the head of the waiting list is
        promoted in the same transaction; a waitlisted one leaves the queue; a parked
        request is withdrawn (and the withdrawal kept as a cancellation, so that the
        same request delivered again ends cancelled). Idempotent: cancelling what is cancelled
        or rejected changes nothing, and ``None`` means there is nothing by that id (a
        request still on its way is not known here: the caller asks again later).
        Raises ``RegistrationClosed`` for a completed seminar.
        """
        doc = await self.registrations.get(registration_id, session=uow.session)
        if doc is None:
            parked = (await self.parked.get_many([registration_id], session=uow.session)).get(
                registration_id
            )
            if parked is None:
                return None
            await self._moves.withdraw_parked(uow, parked)
            await self._kept.keep(
                uow,
                CancellationRequest(
                    seminar_id=parked["seminar_id"],
                    participant_id=parked["participant"]["id"],
                    event_id=f"withdrawn:{registration_id}",
                    source=source,
                    cancelled_at=uow.now,
                    traceparent=traceparent,
                ),
            )
            return Outcome(registration_id, OutcomeStatus.WITHDRAWN, created=True)
        if RegistrationStatus(doc["status"]) not in domain.ACTIVE_STATUSES:
            return existing_outcome(doc)
        await self._moves.cancel_active(uow, doc["seminar_id"], [(doc, traceparent)])
        return Outcome(
            registration_id, OutcomeStatus.CANCELLED, created=True, reason=domain.REASON_PARTICIPANT
        )

    async def cancel_requested(self, uow: UnitOfWork, cancellation: CancellationRequest) -> None:
        """``registration.cancellation_requested.v1``, which may arrive before or after
        the request it cancels (they may come on different partitions).

        The outcome is the one publishing order gives (``domain.cancellation_applies``):
        an active registration whose earliest request was published at or before the
        cancellation is cancelled (seat freed, queue head promoted); one requested only
        after it holds the cancellation in case an earlier request still comes; with no
        registration yet, the cancellation is kept (``pending_cancellations``) until
        the request is decided, withdrawing a parked request published before it, and
        dropped when the seminar is completed or cancelled, on erasure, or after the
        cancellation lifetime. Idempotent with the consumer's processed-event marker;
        of two kept cancellations the later is kept. Raises ``RegistrationClosed`` for
        a registration of a completed seminar.
        """
        session = uow.session
        reg_id = cancellation.registration_id
        doc = await self.registrations.get(reg_id, session=session)
        if doc is not None:
            if RegistrationStatus(doc["status"]) not in domain.ACTIVE_STATUSES:
                return
            if domain.cancellation_applies(
                cancelled_at=cancellation.cancelled_at, requested_at=earliest_request(doc)
            ):
                await self._moves.cancel_active(
                    uow, doc["seminar_id"], [(doc, cancellation.traceparent)]
                )
                return
            await self._hold(uow, doc, cancellation)
            return
        book = await self.seminars.get(cancellation.seminar_id, session=session)
        if book is not None and book.status in {SeminarStatus.CLOSED, SeminarStatus.CANCELLED}:
            return  # nothing can be registered any more: nothing to keep it for
        parked = (await self.parked.get_many([reg_id], session=session)).get(reg_id)
        if parked is not None and domain.cancellation_applies(
            cancelled_at=cancellation.cancelled_at, requested_at=parked["requested_at"]
        ):
            await self._moves.withdraw_parked(uow, parked)
        await self._kept.keep(uow, cancellation)

    async def _hold(
        self, uow: UnitOfWork, doc: Document, cancellation: CancellationRequest
    ) -> None:
        """An active registration holds a cancellation published before every request
        seen for it: it applies if an earlier request comes (``_earlier_repeats``)."""
        book = await self.seminars.get(doc["seminar_id"], session=uow.session)
        if book is not None and book.status is SeminarStatus.CLOSED:
            raise RegistrationClosed(f"seminar {doc['seminar_id']} is completed")
        held_cancellation = doc.get("held_cancellation")
        held_at = held_cancellation["cancelled_at"] if held_cancellation is not None else None
        if not domain.supersedes(cancellation.cancelled_at, held_at):
            return
        await self.registrations.set_quietly(
            [
                (
                    doc["_id"],
                    int(doc["version"]),
                    {"held_cancellation": held(cancellation_doc(cancellation, now=uow.now))},
                )
            ],
            session=uow.session,
        )
        _log.info("cancellation published before the request: held", seminar_id=doc["seminar_id"])
