"""The seminar service's collections, one repository per aggregate.

- ``seminars``: one document per seminar, ``_id`` = seminar id; every change is a write
  conditional on the ``version`` it was read at (optimistic concurrency).
- ``roster``: the projection of the registration service's events, one document per
  (seminar, participant), ``_id`` = ``"<seminar>|<participant>"`` (``|`` cannot occur in
  an identifier), with the registration ``version`` it reflects.
- ``attendance``: one document per (seminar, participant) that attended; the ``_id``
  makes "the same attendance twice" impossible.
- ``erasures``: pseudonyms of people who were erased, so late registration events for
  them land on the pseudonym and never bring the real id back.
- ``reminders_sent``: one document per reminder sent, ``_id`` = ``"<job id>@<session
  start>"``; what operators see as sent, and what keeps a re-plan from sending a late
  reminder twice for the same session start.

All writes take the unit of work's session: they commit with the outbox entries.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from pymongo import ASCENDING, IndexModel, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from seminarops_shared.errors import Conflict, FieldProblem, Invalid
from seminarops_shared.events.vocabulary import Kind, Programme, Promotion
from seminarops_shared.mongo import (
    IN_QUERY_LIMIT,
    ConcurrentChange,
    Document,
    Repository,
    find_by_ids,
)

from .domain import RosterStatus, Seminar, SeminarStatus, Session

SEMINARS = "seminars"
ROSTER = "roster"
ATTENDANCE = "attendance"
ERASURES = "erasures"
REMINDERS_SENT = "reminders_sent"


class ConcurrentUpdate(ConcurrentChange):
    """The seminar changed between reading and writing it; the use case runs again
    (the shared ``ConcurrentChange``, which every retry policy retries). Its own class
    because the seminar API answers it 409 once the retries are spent."""


class StillContended(Conflict):
    """A ``ConcurrentUpdate`` that outlasted every retry: the caller may try again (409).
    ``what``: the seminar id (or the database's word on the conflict)."""

    def __init__(self, what: str) -> None:
        super().__init__("the seminar changed concurrently; try again")
        self.what = what


def pair_id(seminar_id: str, participant_id: str) -> str:
    return f"{seminar_id}|{participant_id}"


# Above ``IN_QUERY_LIMIT`` ids (shared), a lookup reads the seminar's whole roster (or
# attendance) through the seminar_id index instead of an `$in` of that many keys: still
# one query, and the embedded database's `$in` grows with the square of its matches.


def _among(seminar_id: str, participant_ids: Sequence[str]) -> dict[str, Any]:
    """One query for these participants' documents of one seminar (the caller filters
    a whole-seminar answer down to them)."""
    if len(participant_ids) <= IN_QUERY_LIMIT:
        return {"_id": {"$in": [pair_id(seminar_id, p) for p in participant_ids]}}
    return {"seminar_id": seminar_id}


# ---- seminars ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeminarFilter:
    kind: Kind | None = None
    programme: Programme | None = None
    status: SeminarStatus | None = None
    language: str | None = None
    year: int | None = None
    starts_from: datetime | None = None
    starts_before: datetime | None = None


class InvalidCursor(Invalid):
    """A page cursor this service did not hand out."""

    def __init__(self) -> None:
        super().__init__(
            "invalid cursor", fields=[FieldProblem(("cursor",), "invalid cursor")], part="query"
        )


def encode_cursor(seminar: Seminar) -> str:
    raw = json.dumps([seminar.starts_at.isoformat(), seminar.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        starts_at, seminar_id = json.loads(raw)
        moment = datetime.fromisoformat(starts_at)
    except (binascii.Error, ValueError, TypeError) as error:
        raise InvalidCursor from error
    if moment.tzinfo is None or not isinstance(seminar_id, str):
        raise InvalidCursor
    return moment, seminar_id


def _to_document(seminar: Seminar) -> Document:
    return {
        "_id": seminar.id,
        "title": seminar.title,
        "kind": seminar.kind.value,
        "programme": seminar.programme.value,
        "theme": seminar.theme,
        "language": seminar.language,
        "timezone": seminar.timezone,
        "sessions": [{"starts_at": s.starts_at, "ends_at": s.ends_at} for s in seminar.sessions],
        "capacity": seminar.capacity,
        "moderator": seminar.moderator,
        "host_school_id": seminar.host_school_id,
        "open_to_other_schools": seminar.open_to_other_schools,
        "status": seminar.status.value,
        "fingerprint": seminar.fingerprint,
        "version": seminar.version,
        "created_at": seminar.created_at,
        "updated_at": seminar.updated_at,
        "went_live_at": seminar.went_live_at,
        "cancelled_at": seminar.cancelled_at,
        "cancel_reason": seminar.cancel_reason,
        "completed_at": seminar.completed_at,
        "attendee_count": seminar.attendee_count,
        "reschedules": seminar.reschedules,
        "promotion": seminar.promotion.value,
        "offer_hours": seminar.offer_hours,
        "eligible_countries": (
            None if seminar.eligible_countries is None else list(seminar.eligible_countries)
        ),
        # Denormalised for filtering and sorting (each behind an index).
        "starts_at": seminar.starts_at,
        "ends_at": seminar.ends_at,
        "year": seminar.year,
    }


def _from_document(doc: Document) -> Seminar:
    return Seminar(
        id=doc["_id"],
        title=doc["title"],
        kind=Kind(doc["kind"]),
        programme=Programme(doc["programme"]),
        theme=doc.get("theme"),
        language=doc["language"],
        timezone=doc["timezone"],
        sessions=tuple(Session(s["starts_at"], s["ends_at"]) for s in doc["sessions"]),
        capacity=doc["capacity"],
        moderator=doc.get("moderator"),
        host_school_id=doc.get("host_school_id"),
        open_to_other_schools=doc.get("open_to_other_schools", True),
        status=SeminarStatus(doc["status"]),
        fingerprint=doc["fingerprint"],
        version=doc["version"],
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        went_live_at=doc.get("went_live_at"),
        cancelled_at=doc.get("cancelled_at"),
        cancel_reason=doc.get("cancel_reason"),
        completed_at=doc.get("completed_at"),
        attendee_count=doc.get("attendee_count", 0),
        reschedules=doc.get("reschedules", 0),
        # Seminars stored before the participant journey: automatic, open to everyone.
        promotion=Promotion(doc.get("promotion", Promotion.AUTOMATIC)),
        offer_hours=doc.get("offer_hours"),
        eligible_countries=(
            None if doc.get("eligible_countries") is None else tuple(doc["eligible_countries"])
        ),
    )


class SeminarRepository(Repository):
    indexes: ClassVar[dict[str, Sequence[IndexModel]]] = {
        SEMINARS: [
            # Listing: sorted by start, then id (keyset pagination), optionally filtered.
            IndexModel([("starts_at", ASCENDING), ("_id", ASCENDING)]),
            IndexModel([("status", ASCENDING), ("starts_at", ASCENDING)]),
            IndexModel([("kind", ASCENDING), ("programme", ASCENDING), ("starts_at", ASCENDING)]),
            IndexModel([("programme", ASCENDING), ("starts_at", ASCENDING)]),
            IndexModel([("language", ASCENDING), ("starts_at", ASCENDING)]),
            IndexModel([("year", ASCENDING), ("starts_at", ASCENDING)]),
        ]
    }

    @property
    def _seminars(self) -> AsyncCollection[Document]:
        return self.collection(SEMINARS)

    async def get(
        self, seminar_id: str, *, session: AsyncClientSession | None = None
    ) -> Seminar | None:
        doc = await self._seminars.find_one({"_id": seminar_id}, session=session)
        return None if doc is None else _from_document(doc)

    async def get_many(
        self, seminar_ids: Iterable[str], *, session: AsyncClientSession | None = None
    ) -> dict[str, Seminar]:
        ids = list(seminar_ids)
        if not ids:
            return {}
        docs = self._seminars.find({"_id": {"$in": ids}}, session=session)
        return {doc["_id"]: _from_document(doc) async for doc in docs}

    async def add_many(self, seminars: Sequence[Seminar], *, session: AsyncClientSession) -> None:
        """Insert new seminars (their ids must be free: the caller looked them up in the
        same transaction)."""
        if seminars:
            await self._seminars.insert_many(
                [_to_document(s) for s in seminars], ordered=True, session=session
            )

    async def save(
        self, seminar: Seminar, *, expected_version: int, session: AsyncClientSession
    ) -> None:
        """Replace the seminar if it is still at ``expected_version``; else ``ConcurrentUpdate``."""
        result = await self._seminars.replace_one(
            {"_id": seminar.id, "version": expected_version}, _to_document(seminar), session=session
        )
        if result.matched_count != 1:
            raise ConcurrentUpdate(seminar.id)

    async def add_attendees(
        self, seminar_id: str, count: int, *, expected_version: int, session: AsyncClientSession
    ) -> None:
        """Count new attendees; conditional on the version read, so two concurrent
        attendance calls (or attendance racing completion) cannot both pass."""
        result = await self._seminars.update_one(
            {"_id": seminar_id, "version": expected_version},
            {"$inc": {"attendee_count": count, "version": 1}},
            session=session,
        )
        if result.matched_count != 1:
            raise ConcurrentUpdate(seminar_id)

    async def search(
        self,
        seminar_filter: SeminarFilter,
        *,
        limit: int,
        after: tuple[datetime, str] | None = None,
    ) -> list[Seminar]:
        """Seminars matching the filter, by start time then id, after the cursor."""
        query: dict[str, Any] = {}
        for field in ("kind", "programme", "status", "language", "year"):
            value = getattr(seminar_filter, field)
            if value is not None:
                query[field] = value.value if hasattr(value, "value") else value
        starts: dict[str, datetime] = {}
        if seminar_filter.starts_from is not None:
            starts["$gte"] = seminar_filter.starts_from
        if seminar_filter.starts_before is not None:
            starts["$lt"] = seminar_filter.starts_before
        if starts:
            query["starts_at"] = starts
        if after is not None:
            moment, last_id = after
            query["$or"] = [
                {"starts_at": {"$gt": moment}},
                {"starts_at": moment, "_id": {"$gt": last_id}},
            ]
        cursor = (
            self._seminars.find(query)
            .sort([("starts_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [_from_document(doc) async for doc in cursor]


# ---- rosters -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RosterEntry:
    seminar_id: str
    participant_id: str
    status: RosterStatus
    version: int
    registration_id: str | None


def _roster_entry(doc: Document) -> RosterEntry:
    return RosterEntry(
        seminar_id=doc["seminar_id"],
        participant_id=doc["participant_id"],
        status=RosterStatus(doc["status"]),
        version=doc["version"],
        registration_id=doc.get("registration_id"),
    )


class RosterRepository(Repository):
    indexes: ClassVar[dict[str, Sequence[IndexModel]]] = {
        ROSTER: [
            IndexModel([("seminar_id", ASCENDING), ("participant_id", ASCENDING)]),
            IndexModel("participant_id"),
        ],
        ERASURES: [],  # looked up by _id only
    }

    async def get_many(
        self, keys: Iterable[tuple[str, str]], *, session: AsyncClientSession
    ) -> dict[tuple[str, str], RosterEntry]:
        """The stored entries of these (seminar, participant) pairs, by pair."""
        docs = await find_by_ids(
            self.collection(ROSTER), (pair_id(*key) for key in keys), session=session
        )
        return {(doc["seminar_id"], doc["participant_id"]): _roster_entry(doc) for doc in docs}

    async def put_many(
        self, entries: Sequence[RosterEntry], *, now: datetime, session: AsyncClientSession
    ) -> None:
        """Store these entries, one write for all (the caller decided each supersedes
        what is stored, and gives each pair at most once)."""
        if not entries:
            return
        await self.collection(ROSTER).bulk_write(
            [
                ReplaceOne(
                    {"_id": pair_id(entry.seminar_id, entry.participant_id)},
                    {
                        "seminar_id": entry.seminar_id,
                        "participant_id": entry.participant_id,
                        "status": entry.status.value,
                        "version": entry.version,
                        "registration_id": entry.registration_id,
                        "updated_at": now,
                    },
                    upsert=True,
                )
                for entry in entries
            ],
            session=session,
        )

    async def statuses(
        self, seminar_id: str, participant_ids: Sequence[str], *, session: AsyncClientSession
    ) -> dict[str, RosterStatus]:
        """The roster status of each of ``participant_ids`` that is on it (one query)."""
        if not participant_ids:
            return {}
        wanted = set(participant_ids)
        docs = self.collection(ROSTER).find(
            _among(seminar_id, participant_ids), {"participant_id": 1, "status": 1}, session=session
        )
        return {
            doc["participant_id"]: RosterStatus(doc["status"])
            async for doc in docs
            if doc["participant_id"] in wanted
        }

    async def of_seminar(self, seminar_id: str) -> list[RosterEntry]:
        docs = self.collection(ROSTER).find({"seminar_id": seminar_id}).sort("participant_id", 1)
        return [_roster_entry(doc) async for doc in docs]

    async def is_erased(self, pseudonym: str, *, session: AsyncClientSession) -> bool:
        return (
            await self.collection(ERASURES).find_one({"_id": pseudonym}, session=session)
            is not None
        )

    async def erased_among(
        self, pseudonyms: Iterable[str], *, session: AsyncClientSession
    ) -> set[str]:
        """Which of these pseudonyms belong to people who were erased."""
        docs = await find_by_ids(self.collection(ERASURES), pseudonyms, session=session)
        return {doc["_id"] for doc in docs}

    async def erase(
        self, participant_id: str, pseudonym: str, *, now: datetime, session: AsyncClientSession
    ) -> int:
        """Put ``pseudonym`` in place of ``participant_id`` on every roster, and remember
        the erasure. Where the pseudonym is on a roster already (a registration event
        that carried it), the newer version of the two stays. An entry already under the
        pseudonym (``participant_id`` is one) stays as it is. Idempotent; a handful of
        round trips however many rosters. Returns how many roster entries were moved."""
        await self.collection(ERASURES).update_one(
            {"_id": pseudonym}, {"$setOnInsert": {"erased_at": now}}, upsert=True, session=session
        )
        roster = self.collection(ROSTER)
        docs = await roster.find({"participant_id": participant_id}, session=session).to_list()
        moves = {
            doc["_id"]: (pair_id(doc["seminar_id"], pseudonym), doc)
            for doc in docs
            if doc["_id"] != pair_id(doc["seminar_id"], pseudonym)
        }
        if not moves:
            return 0
        held = {
            doc["_id"]: doc["version"]
            for doc in await find_by_ids(
                roster, (target for target, _ in moves.values()), session=session
            )
        }
        await roster.delete_many({"_id": {"$in": list(moves)}}, session=session)
        writes = [
            ReplaceOne(
                {"_id": target},
                {**{k: v for k, v in doc.items() if k != "_id"}, "participant_id": pseudonym},
                upsert=True,
            )
            for target, doc in moves.values()
            if target not in held or held[target] < doc["version"]
        ]
        if writes:
            await roster.bulk_write(writes, session=session)
        return len(moves)


# ---- attendance --------------------------------------------------------------------------


class AttendanceRepository(Repository):
    indexes: ClassVar[dict[str, Sequence[IndexModel]]] = {
        ATTENDANCE: [
            IndexModel([("seminar_id", ASCENDING), ("participant_id", ASCENDING)]),
            IndexModel("participant_id"),
        ]
    }

    async def recorded_among(
        self, seminar_id: str, participant_ids: Sequence[str], *, session: AsyncClientSession
    ) -> set[str]:
        """Which of ``participant_ids`` are recorded already (one query)."""
        if not participant_ids:
            return set()
        wanted = set(participant_ids)
        docs = self.collection(ATTENDANCE).find(
            _among(seminar_id, participant_ids), {"participant_id": 1}, session=session
        )
        return {doc["participant_id"] async for doc in docs if doc["participant_id"] in wanted}

    async def add(
        self,
        seminar_id: str,
        participant_ids: Sequence[str],
        *,
        now: datetime,
        session: AsyncClientSession,
    ) -> None:
        """Record attendance (one insert; the ids were checked to be new in this
        transaction, and the ``_id`` forbids a second record in any case)."""
        if participant_ids:
            await self.collection(ATTENDANCE).insert_many(
                [
                    {
                        "_id": pair_id(seminar_id, p),
                        "seminar_id": seminar_id,
                        "participant_id": p,
                        "recorded_at": now,
                    }
                    for p in participant_ids
                ],
                session=session,
            )

    async def attendees(
        self, seminar_id: str, *, session: AsyncClientSession | None = None
    ) -> list[str]:
        docs = self.collection(ATTENDANCE).find(
            {"seminar_id": seminar_id}, {"participant_id": 1}, session=session
        )
        return sorted([doc["participant_id"] async for doc in docs])

    async def erase(
        self, participant_id: str, pseudonym: str, *, session: AsyncClientSession
    ) -> int:
        """Put ``pseudonym`` in place of ``participant_id`` in every attendance record
        (counts unchanged). Idempotent; three round trips however many records. Returns
        how many records were moved."""
        attendance = self.collection(ATTENDANCE)
        docs = await attendance.find({"participant_id": participant_id}, session=session).to_list()
        # A record already under the pseudonym (``participant_id`` is one) is in place.
        moved = [doc for doc in docs if doc["_id"] != pair_id(doc["seminar_id"], pseudonym)]
        if not moved:
            return 0
        await attendance.delete_many(
            {"_id": {"$in": [doc["_id"] for doc in moved]}}, session=session
        )
        await attendance.bulk_write(
            [
                ReplaceOne(
                    {"_id": pair_id(doc["seminar_id"], pseudonym)},
                    {
                        "seminar_id": doc["seminar_id"],
                        "participant_id": pseudonym,
                        "recorded_at": doc["recorded_at"],
                    },
                    upsert=True,
                )
                for doc in moved
            ],
            session=session,
        )
        return len(moved)


# ---- reminders sent ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SentReminder:
    job_id: str
    session_index: int
    session_starts_at: datetime
    offset_minutes: int
    due_at: datetime
    sent_at: datetime


class ReminderLog(Repository):
    indexes: ClassVar[dict[str, Sequence[IndexModel]]] = {
        REMINDERS_SENT: [IndexModel([("seminar_id", ASCENDING), ("due_at", ASCENDING)])],
    }

    async def record(
        self, seminar_id: str, sent: SentReminder, *, session: AsyncClientSession
    ) -> None:
        """Note a reminder as sent (idempotent: the same reminder for the same session
        start is one document)."""
        await self.collection(REMINDERS_SENT).update_one(
            {"_id": f"{sent.job_id}@{sent.session_starts_at.isoformat()}"},
            {
                "$setOnInsert": {
                    "seminar_id": seminar_id,
                    "job_id": sent.job_id,
                    "session_index": sent.session_index,
                    "session_starts_at": sent.session_starts_at,
                    "offset_minutes": sent.offset_minutes,
                    "due_at": sent.due_at,
                    "sent_at": sent.sent_at,
                }
            },
            upsert=True,
            session=session,
        )

    async def of_seminar(
        self, seminar_id: str, *, session: AsyncClientSession | None = None
    ) -> list[SentReminder]:
        """The seminar's sent reminders, by due time."""
        cursor = (
            self.collection(REMINDERS_SENT)
            .find({"seminar_id": seminar_id}, session=session)
            .sort("due_at", ASCENDING)
        )
        return [
            SentReminder(
                job_id=doc["job_id"],
                session_index=doc["session_index"],
                session_starts_at=doc["session_starts_at"],
                offset_minutes=doc["offset_minutes"],
                due_at=doc["due_at"],
                sent_at=doc["sent_at"],
            )
            async for doc in cursor
        ]
