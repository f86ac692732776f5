"""The metrics service's collections: projection documents (one class per projection),
the pointer naming the active projection set, and the report queries.

Projection sets: every projection collection exists once per *set*, named
``<projection><suffix>`` (the first set has the empty suffix). A rebuild writes a new
set (suffix ``__rebuild_<timestamp>``) and then switches the single pointer document
``projection_state/active`` to it, one atomic write; readers and the live consumer
resolve the pointer per request or unit of work. (Renaming collections would not be
atomic across five collections.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final, Generic, TypeVar

from pymongo import ASCENDING, IndexModel, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from seminarops_shared.events.registration import RegistrationStatus
from seminarops_shared.events.vocabulary import Kind, Programme, Rating
from seminarops_shared.mongo import Document, drop_indexes_named, find_by_ids

from .domain import (
    STATUS_TALLY_PREFIX,
    CertificateView,
    EvaluationView,
    ParticipationView,
    RegistrationView,
    SeminarStatus,
    SeminarView,
)

STATE: Final = "projection_state"
ACTIVE: Final = "active"
REBUILD_LOCK: Final = "rebuild_lock"
REBUILD_SUFFIX_PREFIX: Final = "__rebuild_"
# What the projection documents hold, recorded in the pointer when a set is built by
# this version (a rebuild, or a set still empty at start-up). 1: without it; 2:
# registrations keep ``steps`` (registering again, offers) and certificates are
# projected; 3: one document per person and seminar (``registrations``: the
# registration and the participation folded together, keyed by ``person_key``, people
# by pseudonym only) and ``participations`` holding attendees only (the reports'
# index). A set of an older format is read wrongly by this version: it needs a
# rebuild (``python -m metrics rebuild``, docs/runbook.md).
PROJECTION_FORMAT: Final = 3


@dataclass(frozen=True, slots=True)
class ProjectionSet:
    """One generation of the projection collections."""

    suffix: str = ""

    def name(self, projection: str) -> str:
        return f"{projection}{self.suffix}"


# ---- codecs --------------------------------------------------------------------------


def _opt(enum_type: Any, value: Any) -> Any:
    return None if value is None else enum_type(value)


def seminar_doc(view: SeminarView) -> Document:
    return {
        "_id": view.seminar_id,
        "kind": view.kind.value if view.kind else None,
        "programme": view.programme.value if view.programme else None,
        "year": view.year,
        "title": view.title,
        "capacity": view.capacity,
        "host_school_id": view.host_school_id,
        "open_to_other_schools": view.open_to_other_schools,
        "status": view.status.value,
    }


def seminar_view(doc: Document) -> SeminarView:
    return SeminarView(
        seminar_id=doc["_id"],
        kind=_opt(Kind, doc.get("kind")),
        programme=_opt(Programme, doc.get("programme")),
        year=doc.get("year"),
        title=doc.get("title"),
        capacity=doc.get("capacity"),
        host_school_id=doc.get("host_school_id"),
        open_to_other_schools=doc.get("open_to_other_schools"),
        status=SeminarStatus(doc.get("status", SeminarStatus.SCHEDULED)),
    )


_STAGES = ("ever_confirmed", "ever_waitlisted", "ever_promoted", "ever_cancelled", "ever_rejected")

# Between the seminar id and the person in ``person_key``.
_KEY_SEPARATOR: Final = "\x1f"


def person_key(seminar_id: str, person: str) -> str:
    """``_id`` of a person's document at a seminar (``registrations``, ``participations``).
    The person is a pseudonym (``Projector.person``), the same before and after an
    erasure, so an erasure never moves a document; it never holds the separator, so the
    key is one pair whatever the seminar id holds."""
    return f"{seminar_id}{_KEY_SEPARATOR}{person}"


def _registration_fields(view: RegistrationView) -> Document:
    return {
        "registration_id": view.registration_id,
        "status": view.status.value,
        "version": view.version,
        "country": view.country,
        "school_id": view.school_id,
        **{stage: getattr(view, stage) for stage in _STAGES},
        "steps": [[version, step] for version, step in view.steps],
    }


def _participation_fields(view: ParticipationView) -> Document:
    return {
        "attended": view.attended,
        "kind": view.kind.value if view.kind else None,
        "programme": view.programme.value if view.programme else None,
        "year": view.year,
        "country": view.country,
        "school_id": view.school_id,
    }


def person_doc(
    seminar_id: str,
    person: str,
    registration: RegistrationView | None,
    participation: ParticipationView | None,
) -> Document:
    """One person at one seminar: their registration and their participation, as far
    as either is known (one insert per registration event instead of two, and no
    secondary index: everything reads it by ``_id``)."""
    doc: Document = {
        "_id": person_key(seminar_id, person),
        "seminar_id": seminar_id,
        "person": person,
    }
    if registration is not None:
        doc["registration"] = _registration_fields(registration)
    if participation is not None:
        doc["participation"] = _participation_fields(participation)
    return doc


def registration_view(doc: Document) -> RegistrationView | None:
    """The registration in a person's document (``None``: only their attendance is
    known)."""
    fields = doc.get("registration")
    if fields is None:
        return None
    return RegistrationView(
        registration_id=fields["registration_id"],
        seminar_id=doc["seminar_id"],
        participant_id=doc["person"],
        status=RegistrationStatus(fields["status"]),
        version=int(fields["version"]),
        country=fields.get("country"),
        school_id=fields.get("school_id"),
        **{stage: bool(fields.get(stage, False)) for stage in _STAGES},
        steps=tuple((int(version), str(step)) for version, step in fields.get("steps", ())),
    )


def participation_view(doc: Document) -> ParticipationView | None:
    """The participation in a person's document (``None``: none known yet)."""
    fields = doc.get("participation")
    if fields is None:
        return None
    return ParticipationView(
        seminar_id=doc["seminar_id"],
        participant_id=doc["person"],
        attended=bool(fields.get("attended", False)),
        kind=_opt(Kind, fields.get("kind")),
        programme=_opt(Programme, fields.get("programme")),
        year=fields.get("year"),
        country=fields.get("country"),
        school_id=fields.get("school_id"),
    )


def attendance_doc(view: ParticipationView) -> Document:
    """An attendee, as the reports count them (``participations``: attendees only).
    ``attended`` stays in the document so that the report queries read sets of every
    format alike."""
    return {
        "_id": person_key(view.seminar_id, view.participant_id),
        "seminar_id": view.seminar_id,
        "person": view.participant_id,
        **_participation_fields(view),
    }


def evaluation_doc(view: EvaluationView) -> Document:
    return {
        "_id": view.evaluation_id,
        "seminar_id": view.seminar_id,
        "kind": view.kind.value,
        "programme": view.programme.value,
        "year": view.year,
        "overall": view.overall.value,
        "participant_id": view.participant_id,
    }


def evaluation_view(doc: Document) -> EvaluationView:
    return EvaluationView(
        evaluation_id=doc["_id"],
        seminar_id=doc["seminar_id"],
        kind=Kind(doc["kind"]),
        programme=Programme(doc["programme"]),
        year=int(doc["year"]),
        overall=Rating(doc["overall"]),
        participant_id=doc.get("participant_id"),
    )


def certificate_doc(view: CertificateView) -> Document:
    return {
        "_id": view.certificate_id,
        "seminar_id": view.seminar_id,
        "kind": view.kind.value,
        "programme": view.programme.value,
        "year": view.year,
        "revoked": view.revoked,
    }


def certificate_view(doc: Document) -> CertificateView:
    return CertificateView(
        certificate_id=doc["_id"],
        seminar_id=doc["seminar_id"],
        kind=Kind(doc["kind"]),
        programme=Programme(doc["programme"]),
        year=int(doc["year"]),
        revoked=bool(doc.get("revoked", False)),
    )


# ---- projections ---------------------------------------------------------------------


V = TypeVar("V")


class _Projection:
    """One projection collection of a set; ``indexes`` back every query made on it."""

    base: ClassVar[str]
    indexes: ClassVar[Sequence[IndexModel]] = ()
    # Index names an earlier version created and no query uses any more (dropped).
    retired_indexes: ClassVar[Sequence[str]] = ()

    def __init__(self, db: AsyncDatabase[Document], projection_set: ProjectionSet) -> None:
        self.collection: AsyncCollection[Document] = db[projection_set.name(self.base)]

    async def ensure_indexes(self) -> None:
        if self.retired_indexes:
            await drop_indexes_named(self.collection, self.retired_indexes)
        if self.indexes:
            await self.collection.create_indexes(list(self.indexes))


class _KeyedProjection(_Projection, Generic[V]):
    """A projection whose documents are keyed by ``_id`` (the view's natural key): read
    whole, one by one or in bulk, and written whole in bulk; subclasses give the two
    codecs."""

    def _doc(self, view: V) -> Document:
        raise NotImplementedError

    def _view(self, doc: Document) -> V:
        raise NotImplementedError

    async def get(self, key: str, *, session: AsyncClientSession | None) -> V | None:
        doc = await self.collection.find_one({"_id": key}, session=session)
        return self._view(doc) if doc else None

    async def get_many(
        self, keys: Collection[str], *, session: AsyncClientSession | None
    ) -> dict[str, V]:
        docs = await find_by_ids(self.collection, keys, session=session)
        return {doc["_id"]: self._view(doc) for doc in docs}

    async def save_many(
        self,
        views: Sequence[V],
        *,
        session: AsyncClientSession | None,
        new: Collection[str] = frozenset(),
    ) -> None:
        """Write ``views``: inserted where their id is in ``new`` (known not to exist),
        replaced (upsert) otherwise; one bulk write each."""
        await _write_by_id(self.collection, [self._doc(v) for v in views], new=new, session=session)


class Seminars(_KeyedProjection[SeminarView]):
    base = "seminars"
    # `_id` for lookups; (year, kind) for the funnel, schools and years.
    indexes = (IndexModel([("year", ASCENDING), ("kind", ASCENDING)]),)

    def _doc(self, view: SeminarView) -> Document:
        return seminar_doc(view)

    def _view(self, doc: Document) -> SeminarView:
        return seminar_view(doc)


PersonAtSeminar = tuple[RegistrationView | None, ParticipationView | None]


class Registrations(_Projection):
    """One document per person and seminar (``person_doc``): the registration and the
    participation folded together. No secondary index: the fold reads it by ``_id``
    (``person_key``; a completion or a rescheduling finds the attendees' keys in
    ``Participations``), and an erasure never touches it (people are stored by
    pseudonym only). On the embedded
    database every secondary index costs about as much per insert as the document
    itself, and this collection takes one insert per registration."""

    base = "registrations"
    # participant_id_1: the erasure's rewrite (the document held the participant id);
    # seminar_id_1: the per-seminar counts before the tallies.
    retired_indexes = ("participant_id_1", "seminar_id_1")

    async def get_many(
        self, keys: Collection[str], *, session: AsyncClientSession | None
    ) -> dict[str, PersonAtSeminar]:
        """``person_key`` -> (registration, participation) of the documents that exist."""
        docs = await find_by_ids(self.collection, keys, session=session)
        return {doc["_id"]: (registration_view(doc), participation_view(doc)) for doc in docs}

    async def save_many(
        self,
        docs: Sequence[Document],
        *,
        session: AsyncClientSession | None,
        new: Collection[str] = frozenset(),
    ) -> None:
        """Write ``person_doc`` documents: inserted where their ``_id`` is in ``new``
        (known not to exist), replaced otherwise."""
        await _write_by_id(self.collection, docs, new=new, session=session)


class Participations(_Projection):
    """Attendees only (``attendance_doc``, keyed like ``Registrations``): what the
    participation, countries and schools reports aggregate. Written with the person's
    document whenever an attendee's participation changes; a registrant who did not
    attend has none."""

    base = "participations"
    indexes = (
        # The reports' `$match` on year (and `attended`), grouped by kind and programme.
        IndexModel([("year", ASCENDING), ("kind", ASCENDING), ("programme", ASCENDING)]),
        # `attendees_of`: a completion or a rescheduling regroups a seminar's attendees
        # (the embedded database scans the whole collection for a range of `_id`).
        IndexModel([("seminar_id", ASCENDING)]),
    )
    # The fold reads participations from the person's document by `_id` now, and an
    # erasure does not touch them: the (seminar, participant) and participant indexes
    # of format 2 serve no query.
    retired_indexes = ("seminar_id_1_participant_id_1", "participant_id_1")

    async def attendees_of(
        self, seminar_id: str, *, session: AsyncClientSession | None
    ) -> list[str]:
        """The people (pseudonyms) who attended ``seminar_id``."""
        found = self.collection.find({"seminar_id": seminar_id}, {"person": 1}, session=session)
        # A set of format 2 holds participations without a person: not found here until
        # it is rebuilt (PROJECTION_FORMAT).
        return [doc["person"] async for doc in found if "person" in doc]

    async def save_many(
        self, views: Sequence[ParticipationView], *, session: AsyncClientSession | None
    ) -> None:
        """Write the attendees among ``views`` (upserts: attendance is rare next to
        registrations, and an attendee's document may or may not exist yet)."""
        operations = [
            ReplaceOne({"_id": doc["_id"]}, doc, upsert=True)
            for doc in (attendance_doc(v) for v in views if v.attended)
        ]
        if operations:
            await self.collection.bulk_write(operations, ordered=True, session=session)


class Evaluations(_KeyedProjection[EvaluationView]):
    base = "evaluations"
    # Ratings by year; erasure by participant. Counted per seminar through the tallies.
    indexes = (
        IndexModel([("year", ASCENDING), ("kind", ASCENDING), ("programme", ASCENDING)]),
        IndexModel([("participant_id", ASCENDING)]),
    )
    retired_indexes = ("seminar_id_1",)

    def _doc(self, view: EvaluationView) -> Document:
        return evaluation_doc(view)

    def _view(self, doc: Document) -> EvaluationView:
        return evaluation_view(doc)


class Certificates(_KeyedProjection[CertificateView]):
    base = "certificates"
    # `_id` for the fold; `year` for the certificates report.
    indexes = (IndexModel([("year", ASCENDING)]),)

    def _doc(self, view: CertificateView) -> Document:
        return certificate_doc(view)

    def _view(self, doc: Document) -> CertificateView:
        return certificate_view(doc)


async def _write_by_id(
    collection: AsyncCollection[Document],
    docs: Sequence[Document],
    *,
    new: Collection[str],
    session: AsyncClientSession | None,
) -> None:
    """Insert the documents whose ``_id`` is in ``new`` (cheaper than an upsert), upsert
    the others: one round trip each."""
    created = [doc for doc in docs if doc["_id"] in new]
    if created:
        await collection.insert_many(created, ordered=True, session=session)
    changed = [doc for doc in docs if doc["_id"] not in new]
    if changed:
        await collection.bulk_write(
            [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in changed],
            ordered=False,
            session=session,
        )


class Erasures(_Projection):
    """Tombstones of people who asked to be forgotten, by anonymous id only."""

    base = "erasures"

    async def among(
        self, anonymous_ids: Collection[str], *, session: AsyncClientSession | None
    ) -> set[str]:
        """The pseudonyms among ``anonymous_ids`` that stand for an erased person."""
        if not anonymous_ids:
            return set()
        found = self.collection.find(
            {"_id": {"$in": sorted(anonymous_ids)}}, {"_id": 1}, session=session
        )
        return {doc["_id"] async for doc in found}

    async def record(
        self, anonymous: str, *, erased_at: datetime, session: AsyncClientSession | None
    ) -> None:
        await self.collection.update_one(
            {"_id": anonymous},
            {"$setOnInsert": {"erased_at": erased_at}},
            upsert=True,
            session=session,
        )


class Tallies(_Projection):
    """Per-seminar counters (``domain.registration_tally`` and friends), moved by the
    projector in the same transaction as the views they count: the funnel and the
    registration gauges read one document per seminar. ``_id`` is the only key."""

    base = "tallies"

    async def add(
        self,
        changes: Mapping[str, Mapping[str, int]],
        *,
        session: AsyncClientSession | None,
    ) -> None:
        """Move the tallies of several seminars: one bulk write of ``$inc`` upserts."""
        operations = [
            UpdateOne({"_id": seminar_id}, {"$inc": dict(change)}, upsert=True)
            for seminar_id, change in sorted(changes.items())
            if change
        ]
        if operations:
            await self.collection.bulk_write(operations, ordered=True, session=session)

    async def of(self, seminar_ids: Collection[str] | None) -> dict[str, dict[str, int]]:
        """seminar -> its counters, for ``seminar_ids`` (by ``_id``) or every seminar."""
        if seminar_ids is None:
            docs = await self.collection.find({}).to_list()
        else:
            docs = await find_by_ids(self.collection, seminar_ids, session=None)
        return {doc["_id"]: {k: int(v) for k, v in doc.items() if k != "_id"} for doc in docs}


PROJECTIONS: Final = (
    Seminars,
    Registrations,
    Participations,
    Evaluations,
    Erasures,
    Tallies,
    Certificates,
)


@dataclass(frozen=True)
class Projections:
    """The projection collections of one set."""

    seminars: Seminars
    registrations: Registrations
    participations: Participations
    evaluations: Evaluations
    erasures: Erasures
    tallies: Tallies
    certificates: Certificates

    @classmethod
    def of(cls, db: AsyncDatabase[Document], projection_set: ProjectionSet) -> Projections:
        return cls(
            seminars=Seminars(db, projection_set),
            registrations=Registrations(db, projection_set),
            participations=Participations(db, projection_set),
            evaluations=Evaluations(db, projection_set),
            erasures=Erasures(db, projection_set),
            tallies=Tallies(db, projection_set),
            certificates=Certificates(db, projection_set),
        )

    async def ensure_indexes(self) -> None:
        for projection in (
            self.seminars,
            self.registrations,
            self.participations,
            self.evaluations,
            self.erasures,
            self.tallies,
            self.certificates,
        ):
            await projection.ensure_indexes()

    async def lack_tallies(self) -> bool:
        """Whether this set holds registrations but no per-seminar tallies (built by
        a version that kept none: it needs a rebuild)."""
        if await self.tallies.collection.find_one({}, {"_id": 1}) is not None:
            return False
        return await self.registrations.collection.find_one({}, {"_id": 1}) is not None

    async def is_empty(self) -> bool:
        """Whether this set holds no registration, evaluation, participation or
        certificate yet (nothing a newer format would count differently)."""
        for projection in (
            self.registrations,
            self.participations,
            self.evaluations,
            self.certificates,
        ):
            if await projection.collection.find_one({}, {"_id": 1}) is not None:
                return False
        return True

    async def erase(
        self,
        *,
        participant_id: str,
        anonymous: str,
        erased_at: datetime,
        session: AsyncClientSession | None,
    ) -> None:
        """Tombstone plus the id replaced in the evaluations (indexed by participant);
        registrations and participations hold people by pseudonym only."""
        await self.erasures.record(anonymous, erased_at=erased_at, session=session)
        await self.evaluations.collection.update_many(
            {"participant_id": participant_id},
            {"$set": {"participant_id": anonymous}},
            session=session,
        )


# ---- the pointer ---------------------------------------------------------------------


class RebuildRunning(Exception):
    """Another rebuild holds the lock."""


class ProjectionPointer:
    """``projection_state``: which projection set is active, and the rebuild lock."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.collection: AsyncCollection[Document] = db[STATE]

    async def active(self, *, session: AsyncClientSession | None = None) -> ProjectionSet:
        doc = await self.collection.find_one({"_id": ACTIVE}, session=session)
        return ProjectionSet(suffix=str(doc.get("suffix", ""))) if doc else ProjectionSet()

    async def state(self) -> Document:
        doc = await self.collection.find_one({"_id": ACTIVE})
        return doc or {"_id": ACTIVE, "suffix": ""}

    async def switch(
        self, projection_set: ProjectionSet, *, at: datetime, details: Document
    ) -> None:
        """Make ``projection_set`` the active one: one single-document write. The set
        was built by this version: it holds ``PROJECTION_FORMAT``."""
        await self.collection.replace_one(
            {"_id": ACTIVE},
            {
                "_id": ACTIVE,
                "suffix": projection_set.suffix,
                "activated_at": at,
                "format": PROJECTION_FORMAT,
                **details,
            },
            upsert=True,
        )

    async def active_format(self) -> int:
        """The format of the active set's documents (1: a set from before formats
        were recorded)."""
        return int((await self.state()).get("format", 1))

    async def mark_format(self) -> None:
        """Record that the active set holds this version's format (for a set that is
        still empty: whatever it will hold is written by this version)."""
        await self.collection.update_one(
            {"_id": ACTIVE},
            {"$set": {"format": PROJECTION_FORMAT}, "$setOnInsert": {"suffix": ""}},
            upsert=True,
        )

    async def lock_rebuild(self, *, owner: str, at: datetime, force: bool) -> None:
        if force:
            await self.collection.delete_one({"_id": REBUILD_LOCK})
        try:
            await self.collection.insert_one({"_id": REBUILD_LOCK, "owner": owner, "since": at})
        except DuplicateKeyError:
            held = await self.collection.find_one({"_id": REBUILD_LOCK}) or {}
            raise RebuildRunning(
                f"another rebuild ({held.get('owner')}, since {held.get('since')}) holds the "
                "lock; if it crashed, run again with --force"
            ) from None

    async def unlock_rebuild(self, *, owner: str) -> None:
        await self.collection.delete_one({"_id": REBUILD_LOCK, "owner": owner})

    async def projection_sets(self) -> set[ProjectionSet]:
        """Every projection set that has collections in the database."""
        names = await self.db.list_collection_names()
        sets: set[ProjectionSet] = set()
        for name in names:
            for projection in PROJECTIONS:
                if name == projection.base:
                    sets.add(ProjectionSet())
                elif name.startswith(projection.base + REBUILD_SUFFIX_PREFIX):
                    sets.add(ProjectionSet(suffix=name[len(projection.base) :]))
        return sets

    async def drop(self, projection_set: ProjectionSet) -> None:
        for projection in PROJECTIONS:
            await self.db.drop_collection(projection_set.name(projection.base))


# ---- report queries ------------------------------------------------------------------


class ReportQueries:
    """The aggregations behind the reports: each starts with ``$match`` on an indexed
    field and returns counts only (no person leaves this class)."""

    def __init__(self, projections: Projections) -> None:
        self._p = projections

    async def participants(
        self, years: Sequence[int] | None
    ) -> dict[tuple[int, Kind, Programme], int]:
        """(year, kind, programme) -> participants (attended), for ``years`` (every
        year for None)."""
        pipeline: list[Document] = [
            {"$match": {"year": _years_match(years), "attended": True}},
            {"$group": {"_id": {"y": "$year", "k": "$kind", "p": "$programme"}, "n": {"$sum": 1}}},
        ]
        return {
            (int(d["_id"]["y"]), Kind(d["_id"]["k"]), Programme(d["_id"]["p"])): int(d["n"])
            async for d in _aggregate(self._p.participations.collection, pipeline)
        }

    async def ratings(
        self, years: Sequence[int] | None
    ) -> dict[tuple[int, Kind, Programme, Rating], int]:
        """(year, kind, programme, rating) -> responses, for ``years`` (every year for
        None)."""
        pipeline: list[Document] = [
            {"$match": {"year": _years_match(years)}},
            {
                "$group": {
                    "_id": {"y": "$year", "k": "$kind", "p": "$programme", "r": "$overall"},
                    "n": {"$sum": 1},
                }
            },
        ]
        return {
            (
                int(d["_id"]["y"]),
                Kind(d["_id"]["k"]),
                Programme(d["_id"]["p"]),
                Rating(d["_id"]["r"]),
            ): int(d["n"])
            async for d in _aggregate(self._p.evaluations.collection, pipeline)
        }

    async def seminars_of(self, year: int, kind: Kind | None) -> list[SeminarView]:
        query: Document = {"year": year}
        if kind is not None:
            query["kind"] = kind.value
        return [seminar_view(d) async for d in self._p.seminars.collection.find(query)]

    async def certificates(self, year: int) -> dict[tuple[Kind, Programme], tuple[int, int]]:
        """(kind, programme) -> (certificates issued, of which revoked) for ``year``."""
        pipeline: list[Document] = [
            {"$match": {"year": year}},
            {
                "$group": {
                    "_id": {"k": "$kind", "p": "$programme"},
                    "issued": {"$sum": 1},
                    "revoked": {"$sum": {"$cond": ["$revoked", 1, 0]}},
                }
            },
        ]
        return {
            (Kind(d["_id"]["k"]), Programme(d["_id"]["p"])): (int(d["issued"]), int(d["revoked"]))
            async for d in _aggregate(self._p.certificates.collection, pipeline)
        }

    async def funnel_counts(self, seminar_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """seminar id -> its tally counters (the funnel report picks its stages from
        them and counts a stage that is missing, or a seminar without a tally, as 0)."""
        tallies = await self._p.tallies.of(seminar_ids) if seminar_ids else {}
        return {s: tallies.get(s, {}) for s in seminar_ids}

    async def _people_by(self, year: int, field: str) -> dict[str | None, tuple[int, int]]:
        """``field`` value -> (participations, distinct people) among ``year``'s
        participants; distinct counted by grouping twice (no sets of ids built)."""
        pipeline: list[Document] = [
            {"$match": {"year": year, "attended": True}},
            {"$group": {"_id": {"g": f"${field}", "p": "$person"}, "n": {"$sum": 1}}},
            {"$group": {"_id": "$_id.g", "participants": {"$sum": "$n"}, "people": {"$sum": 1}}},
        ]
        return {
            d["_id"]: (int(d["participants"]), int(d["people"]))
            async for d in _aggregate(self._p.participations.collection, pipeline)
        }

    async def countries(self, year: int) -> dict[str | None, tuple[int, int]]:
        return await self._people_by(year, "country")

    async def schools_taking_part(self, year: int) -> dict[str, tuple[int, int]]:
        return {
            k: v for k, v in (await self._people_by(year, "school_id")).items() if k is not None
        }

    async def schools_hosting(self, year: int) -> dict[str, tuple[int, int]]:
        """school -> (hosted seminars, of which open to other schools); cancelled
        seminars do not count."""
        pipeline: list[Document] = [
            {"$match": {"year": year}},
            {
                "$match": {
                    "host_school_id": {"$type": "string"},
                    "status": {"$ne": SeminarStatus.CANCELLED.value},
                }
            },
            {
                "$group": {
                    "_id": "$host_school_id",
                    "hosted": {"$sum": 1},
                    "open": {"$sum": {"$cond": [{"$eq": ["$open_to_other_schools", True]}, 1, 0]}},
                }
            },
        ]
        return {
            d["_id"]: (int(d["hosted"]), int(d["open"]))
            async for d in _aggregate(self._p.seminars.collection, pipeline)
        }

    async def years(self) -> list[int]:
        """Years with seminars or participants (distinct over the year indexes)."""
        found = set(await self.years_with_participants())
        found |= {int(y) for y in await self._p.seminars.collection.distinct("year") if y}
        return sorted(found)

    async def years_with_participants(self) -> list[int]:
        """Years in which someone attended a seminar."""
        collection = self._p.participations.collection
        return sorted({int(y) for y in await collection.distinct("year", {"attended": True}) if y})

    # ---- gauges (whole-collection summaries, refreshed in the background) -----------

    async def registrations_by_status_and_kind(self) -> dict[tuple[str, str], int]:
        """(status, kind or ``unknown`` until the seminar is known) -> registrations,
        from the per-seminar tallies (one small document per seminar)."""
        tallies = await self._p.tallies.of(None)
        kinds = {
            d["_id"]: d.get("kind") or "unknown"
            async for d in self._p.seminars.collection.find({}, {"kind": 1})
        }
        out: dict[tuple[str, str], int] = {}
        for seminar_id, tally in tallies.items():
            kind = kinds.get(seminar_id, "unknown")
            for key, n in tally.items():
                if key.startswith(STATUS_TALLY_PREFIX) and n:
                    status = key.removeprefix(STATUS_TALLY_PREFIX)
                    out[(status, kind)] = out.get((status, kind), 0) + n
        return out


def _years_match(years: Sequence[int] | None) -> Document:
    # Every year is still a range on the year index, not a scan.
    return {"$gte": 0} if years is None else {"$in": list(years)}


async def _aggregate(
    collection: AsyncCollection[Document], pipeline: list[Document]
) -> AsyncIterator[Document]:
    cursor = await collection.aggregate(pipeline)
    async for doc in cursor:
        yield doc


__all__ = [
    "ACTIVE",
    "PROJECTIONS",
    "STATE",
    "Erasures",
    "Evaluations",
    "Participations",
    "ProjectionPointer",
    "ProjectionSet",
    "Projections",
    "RebuildRunning",
    "Registrations",
    "ReportQueries",
    "Seminars",
    "Tallies",
]
