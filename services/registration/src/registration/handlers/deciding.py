"""Deciding registration requests: confirmed while seats remain, then waitlisted in
arrival order; rejected ``not_eligible`` from a country the seminar does not admit;
parked while the seminar is unknown; decided anew after the participant cancelled; a
kept cancellation settled when its request is decided."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from .documents import cancellation_time, emit_decision, latest_request, registration_doc
from .kept_cancellations import KeptCancellations
from .outcomes import (
    Outcome,
    OutcomeStatus,
    RegistrationRequest,
    cancelled_outcome,
    existing_outcome,
)
from .parking import RequestParking
from .seat_moves import SeatMoves, Withdrawal

# What a registration decided anew must not keep from its previous life.
_PREVIOUS_LIFE = (
    "reason",
    "waitlist_seq",
    "cancelled_at",
    "cancellation_published_at",
    "last_requested_at",
    "first_requested_at",
    "held_cancellation",
    "promoted_at",
    "offered_at",
    "offer_expires_at",
)


@dataclass(slots=True)
class _Writes:
    """Registrations decided in one batch, written with one call each (new ones, and
    those decided anew) at its end: ``decided`` maps each to its document and the
    version it had before (``None``: new). The documents may still change until then."""

    decided: dict[str, tuple[Document, int | None]] = field(default_factory=dict)

    async def flush(self, registrations: RegistrationRepository, session: Any) -> None:
        inserts = [doc for doc, previous in self.decided.values() if previous is None]
        await registrations.insert_many(inserts, session=session)
        # Decided anew: every field of the new decision, and none left of the previous
        # one (one call per set of fields to drop: one or two per batch).
        by_unset: dict[tuple[str, ...], list[tuple[str, int, Mapping[str, Any]]]] = {}
        for doc, previous in self.decided.values():
            if previous is None:
                continue
            unset = tuple(name for name in _PREVIOUS_LIFE if name not in doc)
            fields = {k: v for k, v in doc.items() if k not in {"_id", "version"}}
            by_unset.setdefault(unset, []).append((doc["_id"], previous, fields))
        for unset, replacements in by_unset.items():
            await registrations.update_many_versions(replacements, unset=unset, session=session)


def _latest_of_batch(requests: Sequence[RegistrationRequest]) -> dict[str, int]:
    """Each registration's latest-published request in a batch (its index; the first
    of equals)."""
    latest: dict[str, int] = {}
    for i, request in enumerate(requests):
        seen = latest.get(request.registration_id)
        if seen is None or domain.later_request(request.requested_at, requests[seen].requested_at):
            latest[request.registration_id] = i
    return latest


# How many request ids a registration remembers (those that decided it): a replay of an
# older one is already refused by its time (published before the cancellation that
# followed it); the ids guard against producers' clocks that disagree.
_REMEMBERED_REQUESTS = 16


def _applied_requests(doc: Mapping[str, Any]) -> list[str]:
    """The ids of the requests that decided this registration, oldest first."""
    remembered: list[str] | None = doc.get("request_ids")
    return remembered if remembered is not None else [doc["request_id"]]


def _decided_anew(doc: Mapping[str, Any], book: Seats | None, request: RegistrationRequest) -> bool:
    """Whether a new request for an existing registration is decided again.

    A request rejected because its seminar stayed unknown is, once the seminar is known
    (a platform system may ask again later). So is a request published after the
    participant's side ended the registration (they cancelled, declined or let an offer
    lapse; not the seminar's cancellation), while registration is open: confirmed if a
    seat is free, else waitlisted at the end of the queue. Only a new request does: the
    same one again (a redelivery or a replay of the topic) changes nothing, and an older
    one was cancelled by that cancellation, so requests need no processed-event marker.
    """
    if request.request_id in _applied_requests(doc) or book is None:
        return False
    status, reason = doc["status"], doc.get("reason")
    if status == RegistrationStatus.REJECTED.value and reason == domain.REASON_SEMINAR_UNKNOWN:
        return book.status is not SeminarStatus.UNKNOWN
    return (
        status == RegistrationStatus.CANCELLED.value
        and reason in domain.PARTICIPANT_REASONS
        and book.status is SeminarStatus.OPEN
        and domain.registers_again(
            requested_at=request.requested_at, cancelled_at=cancellation_time(doc)
        )
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

    async def decide(
        self, uow: UnitOfWork, requests: Sequence[RegistrationRequest]
    ) -> list[Outcome]:
        """Decide a batch of requests (any seminars, arrival order), one outcome each.

        Invariants: one registration per (seminar, participant), whatever path or
        source a request came by (a repeat answers with the existing registration and
        changes nothing; after the participant cancelled, a request published later
        decides it anew, keeping its id: ``_decided_anew``); never more confirmed (plus
        offered) than capacity (seats are taken with one conditional update per seminar
        and batch); the waiting list keeps arrival order; a participant from a country
        the seminar does not admit is rejected ``not_eligible``. Requests for a seminar
        not known yet are parked (status ``pending``), decided when
        ``seminar.scheduled.v1`` arrives or rejected ``seminar_unknown`` after the park
        timeout. A cancellation kept because it arrived first is settled when its
        request is decided: the new registration is cancelled at once if the
        cancellation was published at or after its latest request, and stands
        otherwise (a later request registered the person again: see
        ``domain.cancellation_applies``). Cost: a handful of queries per batch, not per
        request.
        """
        if not requests:
            return []
        session = uow.session
        ids = [r.registration_id for r in requests]
        books = await self.seminars.claim(uow, (r.seminar_id for r in requests))
        existing = await self.registrations.get_many(ids, session=session)
        latest = _latest_of_batch(requests)
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
            if doc is not None and not _decided_anew(doc, book, requests[latest[reg_id]]):
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
                [
                    (
                        requests[latest[ids[i]]] if ids[i] in existing else requests[i],
                        existing.get(ids[i]),
                    )
                    for i in indices
                ],
                writes,
            )
            for i, outcome in zip(indices, decided, strict=True):
                outcomes[i] = outcome
        latest_at = {reg_id: requests[i].requested_at for reg_id, i in latest.items()}
        to_cancel: dict[str, list[Withdrawal]] = {}
        settled = self._settle_kept(writes, kept, latest_at, to_cancel)
        await writes.flush(self.registrations, session)
        await self._later_repeats(uow, [(existing[ids[i]], latest_at[ids[i]]) for i in repeats])
        await self._kept.drop(uow, settled)
        for seminar_id, items in to_cancel.items():
            await self._moves.cancel_active(uow, seminar_id, items)
        cancelled = {item.doc["_id"] for items in to_cancel.values() for item in items}

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
        latest: Mapping[str, datetime],
        to_cancel: dict[str, list[Withdrawal]],
    ) -> dict[str, list[str]]:
        """Registrations just decided: note a later request of the batch, and settle the
        cancellation kept for each: it cancels the registration now if it was published
        at or after the latest request, and is simply dropped otherwise (that request
        came after it). Returns the settled cancellations' ids per seminar (to drop)."""
        settled: dict[str, list[str]] = {}
        for reg_id, (doc, _) in writes.decided.items():
            requested_at = latest[reg_id]
            if domain.later_request(requested_at, doc["requested_at"]):
                doc["last_requested_at"] = requested_at
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
                    Withdrawal(
                        doc,
                        traceparent=cancellation.get("traceparent"),
                        published_at=cancellation["cancelled_at"],
                    )
                )
        return settled

    async def _later_repeats(
        self, uow: UnitOfWork, repeats: Sequence[tuple[Document, datetime]]
    ) -> None:
        """Repeats of active registrations published after every request seen so far
        (only where partitions disagree) are noted: a cancellation published before
        them, still to come, no longer applies. Every other repeat changes nothing."""
        noted: list[tuple[str, int, Mapping[str, Any]]] = [
            (doc["_id"], int(doc["version"]), {"last_requested_at": requested_at})
            for doc, requested_at in repeats
            if RegistrationStatus(doc["status"]) in domain.ACTIVE_STATUSES
            and domain.later_request(requested_at, latest_request(doc))
        ]
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
        decided, decisions = domain.decide_for_countries(
            book, [request.participant.country for request, _ in items]
        )
        if decided != book:
            await self.seminars.save(seminar_id, old=book, new=decided, now=uow.now, uow=uow)
        outcomes = []
        for (request, previous), decision in zip(items, decisions, strict=True):
            version = int(previous["version"]) + 1 if previous else 1
            doc = registration_doc(request, decision, now=uow.now, version=version)
            if previous is not None:
                doc["request_ids"] = [*_applied_requests(previous), request.request_id][
                    -_REMEMBERED_REQUESTS:
                ]
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
