"""The registration use cases: load, decide (``domain``), persist and emit through the
unit of work. Kafka subscribers and HTTP routes both call these; neither decides
anything itself.

Every use case runs inside one transaction (``uow``): the state change, the events it
emits (outbox) and, for consumed events, the processed-event markers commit together.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog

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
from seminarops_shared.mongo import Document
from seminarops_shared.scheduler import Job, Scheduler
from seminarops_shared.unit_of_work import UnitOfWork, UnitOfWorkFactory, current_traceparent

from . import domain
from .batching import GroupCommitter, Turns, retry_for
from .domain import Decision, DecisionKind, Seats, SeminarStatus
from .repository import ParkedRequestRepository, RegistrationRepository, SeminarRepository

_log = structlog.get_logger(__name__)
T = TypeVar("T")

PARK_TIMEOUT_JOB = "registration.park_timeout"


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
    """Registration writes of one batch, done with one call each at its end."""

    inserts: list[Document] = field(default_factory=list)
    replacements: list[tuple[str, int, Mapping[str, Any]]] = field(default_factory=list)


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
        scheduler: Scheduler,
        park_timeout: timedelta,
        pseudonym: Callable[[str], str],
    ) -> None:
        self.seminars = seminars
        self.registrations = registrations
        self.parked = parked
        self._scheduler = scheduler
        self._park_timeout = park_timeout
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
        park timeout. Cost: a handful of queries per batch, not per request.
        """
        if not requests:
            return []
        session = uow.session
        ids = [r.registration_id for r in requests]
        books = await self.seminars.claim((r.seminar_id for r in requests), session=session)
        existing = await self.registrations.get_many(ids, session=session)
        outcomes: list[Outcome | None] = [None] * len(requests)
        first: dict[str, int] = {}
        fresh: dict[str, list[int]] = {}
        for i, (request, reg_id) in enumerate(zip(requests, ids, strict=True)):
            if reg_id in first:
                continue  # the same registration twice in this batch: answered below
            first[reg_id] = i
            doc = existing.get(reg_id)
            book = books.get(request.seminar_id)
            if doc is not None and not _redecidable(doc, book, request.request_id):
                outcomes[i] = _existing(doc)
            else:
                fresh.setdefault(request.seminar_id, []).append(i)

        unknown = {
            sid
            for sid in fresh
            if (book := books.get(sid)) is None or book.status is SeminarStatus.UNKNOWN
        }
        already_parked = await self.parked.get_many(
            (ids[i] for sid in unknown for i in fresh[sid]), session=session
        )
        writes = _Writes()
        for seminar_id, indices in fresh.items():
            book = books.get(seminar_id)
            if seminar_id in unknown:
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
        await self.registrations.insert_many(writes.inserts, session=session)
        await self.registrations.update_many_versions(writes.replacements, session=session)

        answered: list[Outcome] = []
        for i, reg_id in enumerate(ids):
            found = outcomes[i] or outcomes[first[reg_id]]
            assert found is not None
            answered.append(found if first[reg_id] == i else replace(found, created=False))
        return answered

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
            if previous is None:
                writes.inserts.append(doc)
            else:
                fields = {k: v for k, v in doc.items() if k not in {"_id", "version"}}
                writes.replacements.append((doc["_id"], version - 1, fields))
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
        self, uow: UnitOfWork, *, registration_id: str, traceparent: str | None = None
    ) -> Outcome | None:
        """Cancel a registration at the participant's request.

        A confirmed registration frees its seat and the head of the waiting list is
        promoted in the same transaction; a waitlisted one leaves the queue; a parked
        request is withdrawn. Idempotent: cancelling what is cancelled or rejected
        changes nothing, and ``None`` means there is nothing by that id. Raises
        ``RegistrationClosed`` for a completed seminar.
        """
        session, now = uow.session, uow.now
        doc = await self.registrations.get(registration_id, session=session)
        if doc is None:
            return await self._withdraw_parked(uow, registration_id)
        previous = RegistrationStatus(doc["status"])
        if previous not in domain.ACTIVE_STATUSES:
            return _existing(doc)
        seminar_id = doc["seminar_id"]
        book = await self.seminars.get(seminar_id, session=session)
        if book is None:  # pragma: no cover - a registration always has its seat book
            raise RuntimeError(f"registration {registration_id} without a seat book")
        if book.status is SeminarStatus.CLOSED:
            raise RegistrationClosed(f"seminar {seminar_id} is completed")
        released = domain.release(book, previous)
        promoted, heads = await self._promotions(
            seminar_id, released, exclude=registration_id, uow=uow
        )
        await self.seminars.save(seminar_id, old=book, new=promoted, now=now, session=session)
        cancelled = {
            "status": RegistrationStatus.CANCELLED.value,
            "reason": domain.REASON_PARTICIPANT,
            "updated_at": now,
            "cancelled_at": now,
        }
        await self.registrations.update_many_versions(
            [(registration_id, int(doc["version"]), cancelled)],
            unset=("waitlist_seq",),
            session=session,
        )
        with traced(traceparent):
            uow.emit(
                RegistrationCancelled(
                    **_event_fields({**doc, "version": int(doc["version"]) + 1}),
                    previous_status=previous,
                    reason=domain.REASON_PARTICIPANT,
                )
            )
        await self._apply_promotions(uow, heads, traceparent=traceparent)
        return Outcome(
            registration_id, OutcomeStatus.CANCELLED, created=True, reason=domain.REASON_PARTICIPANT
        )

    async def _withdraw_parked(self, uow: UnitOfWork, reg_id: str) -> Outcome | None:
        parked = await self.parked.get_many([reg_id], session=uow.session)
        if not parked:
            return None
        seminar_id = parked[reg_id]["seminar_id"]
        await self.parked.delete([reg_id], session=uow.session)
        book = await self.seminars.get(seminar_id, session=uow.session)
        if book is not None:
            await self.seminars.save(
                seminar_id, old=book, new=domain.unpark(book, 1), now=uow.now, session=uow.session
            )
        return Outcome(reg_id, OutcomeStatus.WITHDRAWN, created=True)

    async def _promotions(
        self, seminar_id: str, book: Seats, *, exclude: str | None, uow: UnitOfWork
    ) -> tuple[Seats, list[Document]]:
        """The head of the queue that fits in the free seats, and the book after it."""
        wanted = domain.promotable(book)
        if wanted == 0:
            return book, []
        heads = await self.registrations.waitlist_head(
            seminar_id, limit=wanted + (1 if exclude else 0), session=uow.session
        )
        heads = [d for d in heads if d["_id"] != exclude][:wanted]
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
        promoted, heads = await self._promotions(seminar_id, changed, exclude=None, uow=uow)
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
        base = book or Seats(status=SeminarStatus.CLOSED, capacity=0)
        await self.seminars.save(
            seminar_id, old=book, new=domain.close_seminar(base), now=uow.now, session=session
        )
        await self._decide_parked(uow, seminar_id, parked)

    # ---- personal data -------------------------------------------------------------------

    async def erase(self, uow: UnitOfWork, *, participant_id: str) -> int:
        """Forget a person: name and e-mail removed and the participant id replaced by
        its pseudonym (``seminarops_shared.privacy``: the same in every service) in
        every registration (statuses and counts stay), parked requests
        dropped, and ``participant.erased.v1`` emitted for the other services.
        Idempotent: a second erasure changes nothing here (and is announced again,
        which the other services absorb). Returns how many registrations changed."""
        changed = await self.registrations.anonymise(
            participant_id,
            pseudonym=self._pseudonym(participant_id),
            now=uow.now,
            session=uow.session,
        )
        dropped = await self.parked.delete_of_participant(participant_id, session=uow.session)
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


class Registrations:
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
        self.service = service
        self.now = clock
        self._uow = uow
        self._patience_s = patience_s
        self._requests: GroupCommitter[str, RegistrationRequest, Outcome] = GroupCommitter(
            uow=uow, process=service.decide, max_batch=group_max, patience_s=patience_s, turns=turns
        )

    async def request(self, request: RegistrationRequest) -> Outcome:
        return await self._requests.submit(request.seminar_id, request)

    async def run(self, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        async def attempt() -> T:
            async with self._uow.begin() as uow:
                return await work(uow)

        return await retry_for(attempt, patience_s=self._patience_s)
