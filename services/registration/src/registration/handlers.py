"""The registration use cases: load, decide (``domain``), persist and emit through the
unit of work. Kafka subscribers and HTTP routes both call these; neither decides
anything itself.

Every use case runs inside one transaction (``uow``): the state change, the events it
emits (outbox) and, for consumed events, the processed-event markers commit together.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog

from seminarops_shared import retry
from seminarops_shared.clock import Clock
from seminarops_shared.errors import Conflict
from seminarops_shared.events import Event
from seminarops_shared.events.inbound import Participant
from seminarops_shared.events.registration import (
    ParticipantErased,
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationPromoted,
    RegistrationRejected,
    RegistrationStatus,
    RegistrationWaitlisted,
)
from seminarops_shared.keyed import GroupCommitter, Turns
from seminarops_shared.mongo import Document
from seminarops_shared.scheduler import Job, Scheduler
from seminarops_shared.unit_of_work import UnitOfWork, UnitOfWorkFactory, current_traceparent

from . import domain
from .domain import Decision, DecisionKind, Seats, SeminarStatus
from .repository import (
    ParkedRequestRepository,
    PendingCancellationRepository,
    RegistrationRepository,
    SeminarRepository,
)

_log = structlog.get_logger(__name__)
T = TypeVar("T")

PARK_TIMEOUT_JOB = "registration.park_timeout"
PENDING_CANCELLATION_JOB = "registration.pending_cancellation_expiry"


class OutcomeStatus(enum.StrEnum):
    """What a caller learns about its request."""

    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    # Parked: the seminar is not known yet; decided when it becomes known.
    PENDING = "pending"
    # A parked request was withdrawn before its seminar became known.
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class RegistrationRequest:
    """One request to register, from either path. ``source`` is the requesting
    system (the envelope's ``source``, or this service's HTTP API); ``request_id`` the
    event id or an HTTP request id."""

    seminar_id: str
    participant: Participant
    source: str
    request_id: str
    requested_at: datetime
    traceparent: str | None = None

    @property
    def registration_id(self) -> str:
        return domain.registration_id(self.seminar_id, self.participant.id)


@dataclass(frozen=True, slots=True)
class CancellationRequest:
    """A ``registration.cancellation_requested.v1``: ``cancelled_at`` is its envelope's
    ``time`` (when it was published), which orders it against the requests of the same
    registration (``domain.cancellation_applies``)."""

    seminar_id: str
    participant_id: str
    event_id: str
    source: str | None
    cancelled_at: datetime
    traceparent: str | None = None

    @property
    def registration_id(self) -> str:
        return domain.registration_id(self.seminar_id, self.participant_id)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to a request: the registration, its status, and whether this request
    created it (``False``: it existed already, or is a duplicate)."""

    registration_id: str
    status: OutcomeStatus
    created: bool
    position: int | None = None
    reason: str | None = None


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


# A kept cancellation's fields that travel with it onto a registration (``held``).
_HELD_FIELDS = ("event_id", "source", "cancelled_at", "traceparent")


class RegistrationClosed(Conflict):
    """The seminar is completed: its registrations no longer change."""


@contextlib.contextmanager
def traced(traceparent: str | None) -> Iterator[None]:
    """Events emitted inside carry ``traceparent`` (the request's trace context)."""
    token = current_traceparent.set(traceparent)
    try:
        yield
    finally:
        current_traceparent.reset(token)


def _event_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What every registration event carries: ids, country, school, version, source;
    never a name or an e-mail address."""
    return {
        "registration_id": doc["_id"],
        "seminar_id": doc["seminar_id"],
        "participant_id": doc["participant_id"],
        "country": doc.get("country"),
        "school_id": doc.get("school_id"),
        "version": int(doc["version"]),
        "source": doc.get("source"),
    }


def _existing(doc: Mapping[str, Any]) -> Outcome:
    return Outcome(
        registration_id=doc["_id"],
        status=OutcomeStatus(doc["status"]),
        created=False,
        reason=doc.get("reason"),
    )


def _earliest_request(doc: Mapping[str, Any]) -> datetime:
    """When the earliest request seen for this registration was published."""
    first: datetime | None = doc.get("first_requested_at")
    requested: datetime = doc["requested_at"]
    return first if first is not None and domain.earlier_request(first, requested) else requested


def _held(cancellation: Mapping[str, Any]) -> dict[str, Any]:
    return {name: cancellation.get(name) for name in _HELD_FIELDS}


def _cancellation_doc(cancellation: CancellationRequest, *, now: datetime) -> Document:
    return {
        "_id": cancellation.registration_id,
        "seminar_id": cancellation.seminar_id,
        "participant_id": cancellation.participant_id,
        "event_id": cancellation.event_id,
        "source": cancellation.source,
        "cancelled_at": cancellation.cancelled_at,
        "traceparent": cancellation.traceparent,
        "kept_at": now,
    }


def _earliest_of_batch(requests: Sequence[RegistrationRequest]) -> dict[str, datetime]:
    """When each registration's earliest request in a batch was published."""
    earliest: dict[str, datetime] = {}
    for request in requests:
        seen = earliest.get(request.registration_id)
        if seen is None or domain.earlier_request(request.requested_at, seen):
            earliest[request.registration_id] = request.requested_at
    return earliest


def _cancelled(outcome: Outcome) -> Outcome:
    """The answer to a request whose registration was cancelled in the same
    transaction (by a cancellation published after it)."""
    return replace(
        outcome, status=OutcomeStatus.CANCELLED, position=None, reason=domain.REASON_PARTICIPANT
    )


def _expiry_job_id(registration_id: str) -> str:
    return f"{PENDING_CANCELLATION_JOB}:{registration_id}"


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


def _registration_doc(
    request: RegistrationRequest, decision: Decision, *, now: datetime, version: int
) -> Document:
    participant = request.participant
    doc: Document = {
        "_id": request.registration_id,
        "seminar_id": request.seminar_id,
        "participant_id": participant.id,
        "status": decision.kind.value,
        "version": version,
        "country": participant.country,
        "school_id": participant.school_id,
        # Personal data: stored here only, never in an event or a log line.
        "display_name": participant.display_name,
        "email": str(participant.email) if participant.email else None,
        "source": request.source,
        "request_id": request.request_id,
        "requested_at": request.requested_at,
        "decided_at": now,
        "updated_at": now,
    }
    if decision.waitlist_seq is not None:
        doc["waitlist_seq"] = decision.waitlist_seq
    if decision.reason is not None:
        doc["reason"] = decision.reason
    return doc


def _parked_doc(request: RegistrationRequest, *, seq: int, now: datetime) -> Document:
    return {
        "_id": request.registration_id,
        "seminar_id": request.seminar_id,
        "seq": seq,
        "parked_at": now,
        "participant": request.participant.model_dump(mode="json"),
        "source": request.source,
        "request_id": request.request_id,
        "requested_at": request.requested_at,
        "traceparent": request.traceparent,
    }


def _request_from_parked(doc: Mapping[str, Any]) -> RegistrationRequest:
    return RegistrationRequest(
        seminar_id=doc["seminar_id"],
        participant=Participant.model_validate(doc["participant"]),
        source=doc["source"],
        request_id=doc["request_id"],
        requested_at=doc["requested_at"],
        traceparent=doc.get("traceparent"),
    )


class RegistrationService:
    """The registration use cases over the service's repositories."""

    def __init__(
        self,
        *,
        seminars: SeminarRepository,
        registrations: RegistrationRepository,
        parked: ParkedRequestRepository,
        cancellations: PendingCancellationRepository,
        scheduler: Scheduler,
        park_timeout: timedelta,
        cancellation_lifetime: timedelta,
        pseudonym: Callable[[str], str],
    ) -> None:
        self.seminars = seminars
        self.registrations = registrations
        self.parked = parked
        self.cancellations = cancellations
        self._scheduler = scheduler
        self._park_timeout = park_timeout
        self._cancellation_lifetime = cancellation_lifetime
        self._pseudonym = pseudonym

    # ---- requests ------------------------------------------------------------------------

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
                outcomes[i] = _existing(doc)
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
                await self._park(uow, seminar_id, book, [requests[i] for i in new])
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
        await self._drop_kept(uow, settled)
        for seminar_id, items in to_cancel.items():
            await self._cancel_active(uow, seminar_id, items)
        cancelled = {doc["_id"] for items in to_cancel.values() for doc, _ in items}

        answered: list[Outcome] = []
        for i, reg_id in enumerate(ids):
            found = outcomes[i] or outcomes[first[reg_id]]
            assert found is not None
            if reg_id in cancelled:
                found = _cancelled(found)
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
                doc["held_cancellation"] = _held(cancellation)
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
                or not domain.earlier_request(requested_at, _earliest_request(doc))
            ):
                continue
            held = doc.get("held_cancellation")
            if held is not None and domain.cancellation_applies(
                cancelled_at=held["cancelled_at"], requested_at=requested_at
            ):
                to_cancel.setdefault(doc["seminar_id"], []).append((doc, held.get("traceparent")))
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
            doc = _registration_doc(request, decision, now=uow.now, version=version)
            writes.decided[doc["_id"]] = (doc, version - 1 if previous else None)
            self._emit_decision(uow, request, doc, decision)
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

    async def claim_seminars(self, uow: UnitOfWork, seminar_ids: Iterable[str]) -> None:
        """Take the seat books a batch will change, first thing in its transaction
        (see ``SeminarRepository.claim``)."""
        await self.seminars.claim(seminar_ids, session=uow.session)

    def _emit_decision(
        self, uow: UnitOfWork, request: RegistrationRequest, doc: Document, decision: Decision
    ) -> None:
        fields = _event_fields(doc)
        event: Event
        if decision.kind is DecisionKind.CONFIRMED:
            event = RegistrationConfirmed(**fields, requested_at=request.requested_at)
        elif decision.kind is DecisionKind.WAITLISTED:
            assert decision.position is not None
            event = RegistrationWaitlisted(
                **fields, requested_at=request.requested_at, position=decision.position
            )
        else:
            event = RegistrationRejected(**fields, reason=decision.reason or "rejected")
        with traced(request.traceparent):
            uow.emit(event)

    async def _park(
        self,
        uow: UnitOfWork,
        seminar_id: str,
        book: Seats | None,
        requests: Sequence[RegistrationRequest],
    ) -> None:
        if not requests:
            return
        parked, first_seq, start_timer = domain.park(
            book or domain.unknown_seminar(), len(requests)
        )
        await self.seminars.save(seminar_id, old=book, new=parked, now=uow.now, session=uow.session)
        await self.parked.insert_many(
            [
                _parked_doc(request, seq=first_seq + n, now=uow.now)
                for n, request in enumerate(requests)
            ],
            session=uow.session,
        )
        if start_timer:
            await self._start_park_timer(
                uow, seminar_id, parked, due_at=uow.now + self._park_timeout
            )
        _log.info("requests parked: seminar unknown", seminar_id=seminar_id, parked=len(requests))

    async def _start_park_timer(
        self, uow: UnitOfWork, seminar_id: str, book: Seats, *, due_at: datetime
    ) -> None:
        await self._scheduler.schedule(
            uow,
            job_id=f"{PARK_TIMEOUT_JOB}:{seminar_id}:{book.park_round}",
            kind=PARK_TIMEOUT_JOB,
            group=seminar_id,
            due_at=due_at,
            payload={"seminar_id": seminar_id},
        )

    async def on_park_timeout(self, job: Job, uow: UnitOfWork) -> None:
        """A park timer is due: requests parked for at least the park timeout whose
        seminar is still unknown are rejected ``seminar_unknown``; a timer for the rest
        is started. Idempotent: a seminar that became known meanwhile is left alone, and
        a rejected request is no longer parked."""
        seminar_id = str(job.payload["seminar_id"])
        session, now = uow.session, uow.now
        book = await self.seminars.get(seminar_id, session=session)
        if book is None or book.status is not SeminarStatus.UNKNOWN:
            return
        parked = await self.parked.of_seminar(seminar_id, session=session)
        expired: list[Document] = []
        remaining: list[Document] = []
        for doc in parked:
            due = domain.expired(doc["parked_at"], now=now, timeout=self._park_timeout)
            (expired if due else remaining).append(doc)
        decision = Decision(DecisionKind.REJECTED, reason=domain.REASON_SEMINAR_UNKNOWN)
        inserts = []
        for doc in expired:
            request = _request_from_parked(doc)
            registration = _registration_doc(request, decision, now=now, version=1)
            inserts.append(registration)
            self._emit_decision(uow, request, registration, decision)
        await self.registrations.insert_many(inserts, session=session)
        await self.parked.delete([d["_id"] for d in expired], session=session)
        after = domain.next_park_round(book, len(remaining))
        await self.seminars.save(seminar_id, old=book, new=after, now=now, session=session)
        if remaining:
            oldest = min(d["parked_at"] for d in remaining)
            await self._start_park_timer(uow, seminar_id, after, due_at=oldest + self._park_timeout)
        _log.info(
            "parked requests timed out",
            seminar_id=seminar_id,
            rejected=len(expired),
            still_parked=len(remaining),
        )

    # ---- cancellations -------------------------------------------------------------------

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
            await self._withdraw_parked(uow, parked)
            await self._keep(
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
            return _existing(doc)
        await self._cancel_active(uow, doc["seminar_id"], [(doc, traceparent)])
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
                cancelled_at=cancellation.cancelled_at, requested_at=_earliest_request(doc)
            ):
                await self._cancel_active(uow, doc["seminar_id"], [(doc, cancellation.traceparent)])
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
            await self._withdraw_parked(uow, parked)
        await self._keep(uow, cancellation)

    async def _hold(
        self, uow: UnitOfWork, doc: Document, cancellation: CancellationRequest
    ) -> None:
        """An active registration holds a cancellation published before every request
        seen for it: it applies if an earlier request comes (``_earlier_repeats``)."""
        book = await self.seminars.get(doc["seminar_id"], session=uow.session)
        if book is not None and book.status is SeminarStatus.CLOSED:
            raise RegistrationClosed(f"seminar {doc['seminar_id']} is completed")
        held = doc.get("held_cancellation")
        held_at = held["cancelled_at"] if held is not None else None
        if not domain.supersedes(cancellation.cancelled_at, held_at):
            return
        await self.registrations.set_quietly(
            [
                (
                    doc["_id"],
                    int(doc["version"]),
                    {"held_cancellation": _held(_cancellation_doc(cancellation, now=uow.now))},
                )
            ],
            session=uow.session,
        )
        _log.info("cancellation published before the request: held", seminar_id=doc["seminar_id"])

    async def _keep(self, uow: UnitOfWork, cancellation: CancellationRequest) -> None:
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
            _cancellation_doc(cancellation, now=now), replacing=current, session=session
        )
        if current is None:
            book = await self.seminars.get(cancellation.seminar_id, session=session)
            await self.seminars.save(
                cancellation.seminar_id,
                old=book,
                new=domain.keep_cancellation(book or domain.unknown_seminar()),
                now=now,
                session=session,
            )
        await self._scheduler.schedule(
            uow,
            job_id=_expiry_job_id(reg_id),
            kind=PENDING_CANCELLATION_JOB,
            group=cancellation.seminar_id,
            due_at=now + self._cancellation_lifetime,
            payload={"registration_id": reg_id},
        )
        _log.info("cancellation before its registration: kept", seminar_id=cancellation.seminar_id)

    async def _drop_kept(
        self, uow: UnitOfWork, settled: Mapping[str, Sequence[str]], *, timers: bool = True
    ) -> None:
        """Kept cancellations that were settled (applied or held by their registration)
        are dropped with their timers (``timers=False``: the timer is the one running
        now, which the scheduler deletes itself), and the books count them no more."""
        for seminar_id, reg_ids in settled.items():
            dropped = await self.cancellations.delete(reg_ids, session=uow.session)
            if timers:
                await self._scheduler.cancel(uow, [_expiry_job_id(r) for r in reg_ids])
            book = await self.seminars.get(seminar_id, session=uow.session)
            if book is not None and dropped:
                await self.seminars.save(
                    seminar_id,
                    old=book,
                    new=domain.drop_cancellations(book, dropped),
                    now=uow.now,
                    session=uow.session,
                )

    async def on_cancellation_expired(self, job: Job, uow: UnitOfWork) -> None:
        """A kept cancellation's lifetime is over and its request never came: it is
        dropped (a request arriving later registers the person). Idempotent: one that
        was settled or dropped meanwhile is gone, and a later one moved the timer."""
        reg_id = str(job.payload["registration_id"])
        current = (await self.cancellations.get_many([reg_id], session=uow.session)).get(reg_id)
        if current is None:
            return
        await self._drop_kept(uow, {current["seminar_id"]: [reg_id]}, timers=False)
        _log.info("kept cancellation expired", seminar_id=current["seminar_id"])

    async def _drop_kept_of_seminar(self, uow: UnitOfWork, seminar_id: str, book: Seats) -> None:
        """The seminar is completed or cancelled: its kept cancellations have nothing
        left to cancel (the caller's book change sets the count to zero)."""
        if not book.pending_cancellations:
            return
        await self.cancellations.delete_of_seminar(seminar_id, session=uow.session)
        await self._scheduler.cancel_group(uow, seminar_id, kind=PENDING_CANCELLATION_JOB)

    async def _cancel_active(
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
        promoted, heads = await self._promotions(
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
                        **_event_fields({**doc, "version": int(doc["version"]) + 1}),
                        previous_status=RegistrationStatus(doc["status"]),
                        reason=domain.REASON_PARTICIPANT,
                    )
                )
        await self._apply_promotions(uow, heads, traceparent=items[0][1])

    async def _withdraw_parked(self, uow: UnitOfWork, parked: Document) -> None:
        reg_id, seminar_id = parked["_id"], parked["seminar_id"]
        await self.parked.delete([reg_id], session=uow.session)
        book = await self.seminars.get(seminar_id, session=uow.session)
        if book is not None:
            await self.seminars.save(
                seminar_id, old=book, new=domain.unpark(book, 1), now=uow.now, session=uow.session
            )

    async def _promotions(
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

    async def _apply_promotions(
        self, uow: UnitOfWork, heads: Sequence[Document], *, traceparent: str | None
    ) -> None:
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
                        **_event_fields({**doc, "version": int(doc["version"]) + 1})
                    )
                )

    # ---- seminar knowledge ---------------------------------------------------------------

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
        await self._scheduler.cancel_group(uow, seminar_id, kind=PARK_TIMEOUT_JOB)
        if not parked:
            return
        await self.parked.delete([d["_id"] for d in parked], session=uow.session)
        await self.decide(uow, [_request_from_parked(d) for d in parked])
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
        promoted, heads = await self._promotions(seminar_id, changed, exclude=(), uow=uow)
        if promoted != book:
            await self.seminars.save(seminar_id, old=book, new=promoted, now=now, session=session)
        await self._apply_promotions(uow, heads, traceparent=current_traceparent.get())

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
            await self._drop_kept_of_seminar(uow, seminar_id, book)
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
            [(d["_id"], int(d["version"]), cancelled) for d in active],
            unset=("waitlist_seq",),
            session=session,
        )
        for doc in active:
            uow.emit(
                RegistrationCancelled(
                    **_event_fields({**doc, "version": int(doc["version"]) + 1}),
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
            await self._drop_kept_of_seminar(uow, seminar_id, book)
        base = book or Seats(status=SeminarStatus.CLOSED, capacity=0)
        await self.seminars.save(
            seminar_id, old=book, new=domain.close_seminar(base), now=uow.now, session=session
        )
        await self._decide_parked(uow, seminar_id, parked)

    # ---- personal data -------------------------------------------------------------------

    async def erase(self, uow: UnitOfWork, *, participant_id: str) -> int:
        """Forget a person: name and e-mail removed and the participant id replaced by
        its pseudonym (``seminarops_shared.privacy``: the same in every service) in
        every registration (statuses and counts stay), parked requests and kept
        cancellations dropped (seat books keep counting those as an upper bound), and
        ``participant.erased.v1`` emitted for the other services.
        Idempotent: a second erasure changes nothing here (and is announced again,
        which the other services absorb). Returns how many registrations changed."""
        changed = await self.registrations.anonymise(
            participant_id,
            pseudonym=self._pseudonym(participant_id),
            now=uow.now,
            session=uow.session,
        )
        dropped = await self.parked.delete_of_participant(participant_id, session=uow.session)
        kept = await self.cancellations.delete_of_participant(participant_id, session=uow.session)
        if kept:
            await self._scheduler.cancel(uow, [_expiry_job_id(r) for r in kept])
        uow.emit(ParticipantErased(participant_id=participant_id, erased_at=uow.now))
        _log.info("participant erased", registrations=len(changed), parked_dropped=dropped)
        return len(changed)

    # ---- reads ---------------------------------------------------------------------------

    async def seat_book(self, seminar_id: str) -> Seats | None:
        return await self.seminars.get(seminar_id)

    async def of_seminar(
        self, seminar_id: str, *, status: RegistrationStatus | None, limit: int, offset: int
    ) -> list[Document]:
        return await self.registrations.of_seminar(
            seminar_id, status=status, limit=limit, offset=offset
        )

    async def of_participant(self, participant_id: str, *, limit: int) -> list[Document]:
        return await self.registrations.of_participant(participant_id, limit=limit)

    async def registration(self, registration_id: str) -> Document | None:
        return await self.registrations.get(registration_id)

    async def parked_request(self, registration_id: str) -> Document | None:
        found = await self.parked.get_many([registration_id])
        return found.get(registration_id)


class RegistrationsOverHttp:
    """The use cases as the HTTP API runs them: each in its own transaction, retried on
    write conflicts; registration requests for one seminar arriving together are
    decided together (``GroupCommitter``), by the same ``decide`` the consumer uses."""

    def __init__(
        self,
        *,
        service: RegistrationService,
        uow: UnitOfWorkFactory,
        clock: Clock,
        group_max: int,
        patience_s: float,
        turns: Turns | None = None,
    ) -> None:
        self.registrations = service
        self.now = clock
        self._uow = uow
        self._retry = retry.CONTENDED.within(patience_s)
        self._requests: GroupCommitter[str, RegistrationRequest, Outcome] = GroupCommitter(
            uow=uow, process=service.decide, max_batch=group_max, patience_s=patience_s, turns=turns
        )

    async def request(self, request: RegistrationRequest) -> Outcome:
        return await self._requests.submit(request.seminar_id, request)

    async def run(self, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        async def attempt() -> T:
            async with self._uow.begin() as uow:
                return await work(uow)

        return await retry.run(self._retry, attempt)
