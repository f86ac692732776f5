"""Deciding registration requests: confirmed while seats remain, then waitlisted in
arrival order; parked while the seminar is unknown; a kept cancellation settled when
its request is decided."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from seminarops_shared.events.registration import RegistrationStatus
from seminarops_shared.mongo import Document
from seminarops_shared.unit_of_work import UnitOfWork

from .. import domain
from ..domain import Seats, SeminarStatus
from ..repository import (
    ParkedRequestRepository,
    PendingCancellationRepository,
    RegistrationRepository,
    SeminarRepository,
)
from .documents import earliest_request, emit_decision, held, registration_doc
from .kept_cancellations import KeptCancellations
from .outcomes import (
    Outcome,
    OutcomeStatus,
    RegistrationRequest,
    cancelled_outcome,
    existing_outcome,
)
from .parking import RequestParking
from .seat_moves import SeatMoves


@dataclass(slots=True)
class _Writes:
    """Registrations decided in one batch, written with one call each (new ones, and
    those decided anew) at its end: ``decided`` maps each to its document and the
    version it had before (``None``: new). The documents may still change until then."""

    decided: dict[str, tuple[Document, int | None]] = field(default_factory=dict)

    async def flush(self, registrations: RegistrationRepository, session: Any) -> None:
        inserts = [doc for doc, previous in self.decided.values() if previous is None]
        replacements = [
            (doc["_id"], previous, {k: v for k, v in doc.items() if k not in {"_id", "version"}})
            for doc, previous in self.decided.values()
            if previous is not None
        ]
        await registrations.insert_many(inserts, session=session)
        await registrations.update_many_versions(replacements, session=session)


def _earliest_of_batch(requests: Sequence[RegistrationRequest]) -> dict[str, datetime]:
    """When each registration's earliest request in a batch was published."""
    earliest: dict[str, datetime] = {}
    for request in requests:
        seen = earliest.get(request.registration_id)
        if seen is None or domain.earlier_request(request.requested_at, seen):
            earliest[request.registration_id] = request.requested_at
    return earliest


def _redecidable(doc: Mapping[str, Any], book: Seats | None, request_id: str) -> bool:
    """A request rejected because its seminar stayed unknown is decided anew once the
    seminar is known (a platform system may ask again later), but only by a new
    request: the same one again (a redelivery or a replay of the topic) changes
    nothing, so requests need no processed-event marker."""
    return (
        doc.get("request_id") != request_id
        and doc["status"] == RegistrationStatus.REJECTED.value
        and doc.get("reason") == domain.REASON_SEMINAR_UNKNOWN
        and book is not None
        and book.status is not SeminarStatus.UNKNOWN
    )


class RequestDecisions:
    """The ``decide`` use case, which the consumer and the HTTP groups share."""

    def __init__(
        self,
        *,
        seminars: SeminarRepository,
        registrations: RegistrationRepository,
        parked: ParkedRequestRepository,
        cancellations: PendingCancellationRepository,
        parking: RequestParking,
        kept: KeptCancellations,
        moves: SeatMoves,
    ) -> None:
        self.seminars = seminars
        self.registrations = registrations
        self.parked = parked
        self.cancellations = cancellations
        self._parking = parking
        self._kept = kept
        self._moves = moves

    async def claim_seminars(self, uow: UnitOfWork, seminar_ids: Iterable[str]) -> None:
        """Take the seat books a batch will change, first thing in its transaction
        (see ``SeminarRepository.claim``)."""
        await self.seminars.claim(seminar_ids, session=uow.session)

    async def decide(
        self, uow: UnitOfWork, requests: Sequence[RegistrationRequest]
    ) -> list[Outcome]:
        """Decide a batch of requests (any seminars, arrival order), one outcome each.

        Invariants: one registration per (seminar, participant), whatever path or
        source a request came by (a repeat answers with the existing registration and
        changes nothing); never more confirmed than capacity (seats are taken with one
        conditional update per seminar and batch); the waiting list keeps arrival order.
        Requests for a seminar not known yet are parked (status ``pending``), decided
        when ``seminar.scheduled.v1`` arrives or rejected ``seminar_unknown`` after the
        park timeout. A cancellation kept because it arrived first is settled when its
        request is decided: the new registration is cancelled at once if the
        cancellation was published at or after the request, and otherwise holds it in
        case an earlier request of the same person still comes (a repeat published
        before every request seen so far is the one kind of repeat that can change
        something: see ``domain.cancellation_applies``). Cost: a handful of queries per
        batch, not per request.
        """
        if not requests:
            return []
        session = uow.session
        ids = [r.registration_id for r in requests]
        books = await self.seminars.claim((r.seminar_id for r in requests), session=session)
        existing = await self.registrations.get_many(ids, session=session)
        earliest = _earliest_of_batch(requests)
        outcomes: list[Outcome | None] = [None] * len(requests)
        first: dict[str, int] = {}
        fresh: dict[str, list[int]] = {}
        repeats: list[int] = []
        for i, (request, reg_id) in enumerate(zip(requests, ids, strict=True)):
            if reg_id in first:
                continue  # the same registration twice in this batch: answered below
            first[reg_id] = i
            doc = existing.get(reg_id)
            book = books.get(request.seminar_id)
            if doc is not None and not _redecidable(doc, book, request.request_id):
                outcomes[i] = existing_outcome(doc)
                repeats.append(i)
            else:
                fresh.setdefault(request.seminar_id, []).append(i)

        unknown = {
            sid
            for sid in fresh
            if (book := books.get(sid)) is None or book.status is SeminarStatus.UNKNOWN
        }
        # Cancellations kept for what is decided now: looked up only for seminars whose
        # book counts any.
        kept = await self.cancellations.get_many(
            (
                ids[i]
                for sid, indices in fresh.items()
                if sid not in unknown and books[sid].pending_cancellations
                for i in indices
            ),
            session=session,
        )
        already_parked = await self.parked.get_many(
            (ids[i] for sid in unknown for i in fresh[sid]), session=session
        )
        writes = _Writes()
        for seminar_id, indices in fresh.items():
            book = books.get(seminar_id)
            if seminar_id in unknown:
                # A kept cancellation waits for the decision, made when the seminar is
                # known (it withdraws a parked request only if it arrives after it).
                new = [i for i in indices if ids[i] not in already_parked]
                await self._parking.park(uow, seminar_id, book, [requests[i] for i in new])
                for i in indices:
                    outcomes[i] = Outcome(ids[i], OutcomeStatus.PENDING, created=i in new)
                continue
            assert book is not None
            decided = await self._decide_known(
                uow,
                seminar_id,
                book,
                [(requests[i], existing.get(ids[i])) for i in indices],
                writes,
            )
            for i, outcome in zip(indices, decided, strict=True):
                outcomes[i] = outcome
        to_cancel: dict[str, list[tuple[Document, str | None]]] = {}
        settled = self._settle_kept(writes, kept, earliest, to_cancel)
        await writes.flush(self.registrations, session)
        await self._earlier_repeats(
            uow,
            [(existing[ids[i]], earliest[ids[i]]) for i in repeats],
            books,
            to_cancel,
        )
        await self._kept.drop(uow, settled)
        for seminar_id, items in to_cancel.items():
            await self._moves.cancel_active(uow, seminar_id, items)
        cancelled = {doc["_id"] for items in to_cancel.values() for doc, _ in items}

        answered: list[Outcome] = []
        for i, reg_id in enumerate(ids):
            found = outcomes[i] or outcomes[first[reg_id]]
            assert found is not None
            if reg_id in cancelled:
                found = cancelled_outcome(found)
            answered.append(found if first[reg_id] == i else replace(found, created=False))
        return answered

    def _settle_kept(
        self,
        writes: _Writes,
        kept: Mapping[str, Document],
        earliest: Mapping[str, datetime],
        to_cancel: dict[str, list[tuple[Document, str | None]]],
    ) -> dict[str, list[str]]:
        """Registrations just decided: note an earlier request of the batch, and settle
        the cancellation kept for each (cancel it now, or hold it on the registration).
        Returns the settled cancellations' ids per seminar (to drop)."""
        settled: dict[str, list[str]] = {}
        for reg_id, (doc, _) in writes.decided.items():
            requested_at = earliest[reg_id]
            if domain.earlier_request(requested_at, doc["requested_at"]):
                doc["first_requested_at"] = requested_at
            cancellation = kept.get(reg_id)
            if cancellation is None:
                continue
            settled.setdefault(doc["seminar_id"], []).append(reg_id)
            if RegistrationStatus(doc["status"]) not in domain.ACTIVE_STATUSES:
                continue  # rejected: nothing to cancel
            if domain.cancellation_applies(
                cancelled_at=cancellation["cancelled_at"], requested_at=requested_at
            ):
                to_cancel.setdefault(doc["seminar_id"], []).append(
                    (doc, cancellation.get("traceparent"))
                )
            else:
                doc["held_cancellation"] = held(cancellation)
        return settled

    async def _earlier_repeats(
        self,
        uow: UnitOfWork,
        repeats: Sequence[tuple[Document, datetime]],
        books: Mapping[str, Seats],
        to_cancel: dict[str, list[tuple[Document, str | None]]],
    ) -> None:
        """Repeats of active registrations published before every request seen so far
        (only where partitions disagree): the cancellation the registration holds
        applies to them if it was published after them; otherwise the earlier time is
        noted for cancellations still to come. Every other repeat changes nothing."""
        noted: list[tuple[str, int, Mapping[str, Any]]] = []
        for doc, requested_at in repeats:
            book = books.get(doc["seminar_id"])
            if (
                book is None
                or book.status is not SeminarStatus.OPEN
                or RegistrationStatus(doc["status"]) not in domain.ACTIVE_STATUSES
                or not domain.earlier_request(requested_at, earliest_request(doc))
            ):
                continue
            held_cancellation = doc.get("held_cancellation")
            if held_cancellation is not None and domain.cancellation_applies(
                cancelled_at=held_cancellation["cancelled_at"], requested_at=requested_at
            ):
                to_cancel.setdefault(doc["seminar_id"], []).append(
                    (doc, held_cancellation.get("traceparent"))
                )
            else:
                noted.append(
                    (doc["_id"], int(doc["version"]), {"first_requested_at": requested_at})
                )
        await self.registrations.set_quietly(noted, session=uow.session)

    async def _decide_known(
        self,
        uow: UnitOfWork,
        seminar_id: str,
        book: Seats,
        items: Sequence[tuple[RegistrationRequest, Document | None]],
        writes: _Writes,
    ) -> list[Outcome]:
        """New requests for a known seminar: one conditional update of its seat book."""
        decided, decisions = domain.decide_requests(book, len(items))
        if decided != book:
            await self.seminars.save(
                seminar_id, old=book, new=decided, now=uow.now, session=uow.session
            )
        outcomes = []
        for (request, previous), decision in zip(items, decisions, strict=True):
            version = int(previous["version"]) + 1 if previous else 1
            doc = registration_doc(request, decision, now=uow.now, version=version)
            writes.decided[doc["_id"]] = (doc, version - 1 if previous else None)
            emit_decision(uow, request, doc, decision)
            outcomes.append(
                Outcome(
                    doc["_id"],
                    OutcomeStatus(decision.kind.value),
                    created=True,
                    position=decision.position,
                    reason=decision.reason,
                )
            )
        return outcomes
