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
from .documents import cancellation_time, latest_request
from .kept_cancellations import KeptCancellations
from .outcomes import (
    CancellationRequest,
    Outcome,
    OutcomeStatus,
    existing_outcome,
)
from .seat_moves import SeatMoves, Withdrawal

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
        await self._moves.cancel_active(
            uow, doc["seminar_id"], [Withdrawal(doc, traceparent=traceparent, published_at=uow.now)]
        )
        return Outcome(
            registration_id, OutcomeStatus.CANCELLED, created=True, reason=domain.REASON_PARTICIPANT
        )

    async def cancel_requested(self, uow: UnitOfWork, cancellation: CancellationRequest) -> None:
        """``registration.cancellation_requested.v1``, which may arrive before or after
        the request it cancels (they may come on different partitions).

        The outcome is the one publishing order gives (``domain.cancellation_applies``):
        an active registration whose latest request was published at or before the
        cancellation is cancelled (seat or offer freed, queue head promoted); one whose
        latest request came after it stays (that request registered the person again);
        with no registration yet, the cancellation is kept (``pending_cancellations``)
        until the request is decided, withdrawing a parked request published before it,
        and dropped when the seminar is completed or cancelled, on erasure, or after the
        cancellation lifetime. A registration the participant's side ended notes a later
        cancellation (a request must be published after it to register again).
        Idempotent with the consumer's processed-event marker; of two kept
        cancellations the later is kept. Raises ``RegistrationClosed`` for a
        registration of a completed seminar.
        """
        session = uow.session
        reg_id = cancellation.registration_id
        doc = await self.registrations.get(reg_id, session=session)
        if doc is not None:
            await self._cancel_existing(uow, doc, cancellation)
            return
        book = await self.seminars.get(cancellation.seminar_id, uow=uow)
        if book is not None and book.status in {SeminarStatus.CLOSED, SeminarStatus.CANCELLED}:
            return  # nothing can be registered any more: nothing to keep it for
        parked = (await self.parked.get_many([reg_id], session=session)).get(reg_id)
        if parked is not None and domain.cancellation_applies(
            cancelled_at=cancellation.cancelled_at, requested_at=parked["requested_at"]
        ):
            await self._moves.withdraw_parked(uow, parked)
        await self._kept.keep(uow, cancellation)

    async def _cancel_existing(
        self, uow: UnitOfWork, doc: Document, cancellation: CancellationRequest
    ) -> None:
        status = RegistrationStatus(doc["status"])
        if status in domain.ACTIVE_STATUSES:
            if domain.cancellation_applies(
                cancelled_at=cancellation.cancelled_at, requested_at=latest_request(doc)
            ):
                withdrawal = Withdrawal(
                    doc,
                    traceparent=cancellation.traceparent,
                    published_at=cancellation.cancelled_at,
                )
                await self._moves.cancel_active(uow, doc["seminar_id"], [withdrawal])
            else:
                _log.info(
                    "cancellation published before the latest request: superseded",
                    seminar_id=doc["seminar_id"],
                )
            return
        if (
            status is RegistrationStatus.CANCELLED
            and doc.get("reason") in domain.PARTICIPANT_REASONS
            and domain.later_request(cancellation.cancelled_at, cancellation_time(doc))
        ):
            await self.registrations.set_quietly(
                [
                    (
                        doc["_id"],
                        int(doc["version"]),
                        {"cancellation_published_at": cancellation.cancelled_at},
                    )
                ],
                session=uow.session,
            )
