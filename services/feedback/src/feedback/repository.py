"""The feedback service's collections, one repository per aggregate.

- ``FormRepository``: ``forms`` (one document per form: its latest version),
  ``form_versions`` (immutable, ``_id = "<form>@<version>"``) and ``form_assignments``
  (``_id = "seminar:<id>"`` or ``"kind:<kind>"``).
- ``EvaluationRepository``: ``seminars`` (a seminar's facts, window and pinned form),
  ``attendees`` (``_id = "<seminar>|<participant>"``) and ``erasures`` (pseudonyms of
  erased people, so later attendance for them stays anonymous).
- ``ResponseRepository``: ``responses`` (``_id`` = evaluation id, random) and
  ``respondents``, the has-responded marker (``_id = "<seminar>|<participant>"``): its
  unique ``_id`` is what makes a second response per attendee impossible, for named and
  anonymous forms alike, while an anonymous response itself names nobody.

``|`` cannot occur in an identifier (see ``Identifier``), so the composite ids are
unambiguous. Every query below has an index in ``indexes``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar

from pymongo import ASCENDING, IndexModel, InsertOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from seminarops_shared.events.vocabulary import Kind, Programme, Rating
from seminarops_shared.mongo import Document, Repository

from .domain import (
    EvaluationWindow,
    FormRef,
    FormVersion,
    Question,
    QuestionType,
    Response,
    SeminarEvaluation,
)

FORMS = "forms"
FORM_VERSIONS = "form_versions"
FORM_ASSIGNMENTS = "form_assignments"
SEMINARS = "seminars"
ATTENDEES = "attendees"
ERASURES = "erasures"
RESPONSES = "responses"
RESPONDENTS = "respondents"

Session = AsyncClientSession | None


def pair_id(seminar_id: str, participant_id: str) -> str:
    return f"{seminar_id}|{participant_id}"


class FormExists(Exception):
    pass


# ---- forms -----------------------------------------------------------------------------


def _question_doc(q: Question) -> Document:
    doc: Document = {"id": q.id, "type": q.type.value, "text": q.text, "required": q.required}
    if q.options:
        doc["options"] = list(q.options)
    if q.max_length is not None:
        doc["max_length"] = q.max_length
    return doc


def _question(doc: Document) -> Question:
    return Question(
        id=doc["id"],
        type=QuestionType(doc["type"]),
        text=doc["text"],
        required=bool(doc.get("required", False)),
        options=tuple(doc.get("options", ())),
        max_length=doc.get("max_length"),
    )


def _version_doc(form: FormVersion) -> Document:
    return {
        "_id": f"{form.form_id}@{form.version}",
        "form_id": form.form_id,
        "version": form.version,
        "title": form.title,
        "description": form.description,
        "anonymous": form.anonymous,
        "questions": [_question_doc(q) for q in form.questions],
        "created_at": form.created_at,
    }


def _form_version(doc: Document) -> FormVersion:
    return FormVersion(
        form_id=doc["form_id"],
        version=doc["version"],
        title=doc["title"],
        description=doc.get("description"),
        anonymous=bool(doc.get("anonymous", False)),
        questions=tuple(_question(q) for q in doc.get("questions", ())),
        created_at=doc.get("created_at"),
    )


def _form_summary(form: FormVersion, *, created_at: datetime | None) -> Document:
    return {
        "_id": form.form_id,
        "latest_version": form.version,
        "title": form.title,
        "anonymous": form.anonymous,
        "created_at": created_at,
        "updated_at": form.created_at,
    }


class FormRepository(Repository):
    indexes: ClassVar[dict[str, Sequence[IndexModel]]] = {
        # get(form, version) uses `_id`; the latest version of a form uses this index.
        FORM_VERSIONS: [IndexModel([("form_id", ASCENDING), ("version", ASCENDING)], unique=True)],
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.forms = self.collection(FORMS)
        self.versions = self.collection(FORM_VERSIONS)
        self.assignments = self.collection(FORM_ASSIGNMENTS)

    async def ensure_exists(self, form: FormVersion) -> None:
        """Create version 1 of a built-in form if there is none (idempotent, race-safe:
        two replicas starting together both succeed)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.versions.update_one(
                {"_id": f"{form.form_id}@{form.version}"},
                {"$setOnInsert": _version_doc(form)},
                upsert=True,
            )
        with contextlib.suppress(DuplicateKeyError):
            await self.forms.update_one(
                {"_id": form.form_id},
                {"$setOnInsert": _form_summary(form, created_at=form.created_at)},
                upsert=True,
            )

    async def create(self, form: FormVersion, *, session: Session) -> None:
        """Insert version 1; ``FormExists`` if the id is taken."""
        try:
            await self.forms.insert_one(
                _form_summary(form, created_at=form.created_at), session=session
            )
        except DuplicateKeyError:
            raise FormExists(form.form_id) from None
        await self.versions.insert_one(_version_doc(form), session=session)

    async def add_version(self, form: FormVersion, *, session: Session) -> bool:
        """Insert ``form`` as the version after the latest; False if the latest moved."""
        moved = await self.forms.update_one(
            {"_id": form.form_id, "latest_version": form.version - 1},
            {
                "$set": {
                    "latest_version": form.version,
                    "title": form.title,
                    "anonymous": form.anonymous,
                    "updated_at": form.created_at,
                }
            },
            session=session,
        )
        if moved.matched_count != 1:
            return False
        await self.versions.insert_one(_version_doc(form), session=session)
        return True

    async def get(
        self, form_id: str, version: int | None = None, *, session: Session = None
    ) -> FormVersion | None:
        if version is None:
            doc = await self.versions.find_one(
                {"form_id": form_id}, sort=[("version", -1)], session=session
            )
        else:
            doc = await self.versions.find_one({"_id": f"{form_id}@{version}"}, session=session)
        return _form_version(doc) if doc else None

    async def summaries(self) -> list[Document]:
        return await self.forms.find({}).sort("_id", ASCENDING).to_list()

    async def assign(self, target: str, ref: FormRef, *, now: datetime, session: Session) -> None:
        await self.assignments.update_one(
            {"_id": target},
            {"$set": {"form_id": ref.form_id, "version": ref.version, "assigned_at": now}},
            upsert=True,
            session=session,
        )

    async def assignment(self, target: str, *, session: Session = None) -> FormRef | None:
        doc = await self.assignments.find_one({"_id": target}, session=session)
        return FormRef(doc["form_id"], doc.get("version")) if doc else None


def seminar_target(seminar_id: str) -> str:
    return f"seminar:{seminar_id}"


def kind_target(kind: Kind) -> str:
    return f"kind:{kind.value}"


# ---- seminars and attendees ------------------------------------------------------------


def _seminar(doc: Document) -> SeminarEvaluation:
    window = (
        EvaluationWindow(opens_at=doc["opens_at"], closes_at=doc["closes_at"])
        if doc.get("opens_at") is not None
        else None
    )
    form = FormRef(doc["form_id"], doc["form_version"]) if doc.get("form_id") else None
    return SeminarEvaluation(
        seminar_id=doc["_id"],
        kind=Kind(doc["kind"]),
        programme=Programme(doc["programme"]),
        year=doc["year"],
        attendee_count=doc.get("attendee_count", 0),
        window=window,
        form=form,
        anonymous=bool(doc.get("anonymous", False)),
        closed=bool(doc.get("closed", False)),
        closed_at=doc.get("closed_at"),
        reminded_at=doc.get("reminded_at"),
        reminded_count=doc.get("reminded_count", 0),
    )


class EvaluationRepository(Repository):
    indexes: ClassVar[dict[str, Sequence[IndexModel]]] = {
        SEMINARS: [
            IndexModel([("year", ASCENDING), ("kind", ASCENDING), ("programme", ASCENDING)])
        ],
        ATTENDEES: [
            IndexModel([("seminar_id", ASCENDING), ("invited", ASCENDING)]),
            IndexModel("participant_id"),
        ],
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seminars = self.collection(SEMINARS)
        self.attendees = self.collection(ATTENDEES)
        self.erasures = self.collection(ERASURES)

    async def get(self, seminar_id: str, *, session: Session = None) -> SeminarEvaluation | None:
        doc = await self.seminars.find_one({"_id": seminar_id}, session=session)
        return _seminar(doc) if doc else None

    async def ensure_seminar(
        self,
        *,
        seminar_id: str,
        kind: Kind,
        programme: Programme,
        year: int,
        now: datetime,
        session: Session,
    ) -> None:
        await self.seminars.update_one(
            {"_id": seminar_id},
            {
                "$setOnInsert": {
                    "kind": kind.value,
                    "programme": programme.value,
                    "year": year,
                    "attendee_count": 0,
                    "first_seen_at": now,
                }
            },
            upsert=True,
            session=session,
        )

    async def add_attendees(
        self,
        seminar_id: str,
        people: Sequence[tuple[str, bool]],
        *,
        now: datetime,
        session: Session,
    ) -> list[str]:
        """Record ``(participant id, erased)`` as attendees; returns the ids new here.
        Idempotent: an attendee already recorded is left as it is and not counted."""
        if not people:
            return []
        existing = {
            doc["participant_id"]
            async for doc in self.attendees.find(
                {"_id": {"$in": [pair_id(seminar_id, p) for p, _ in people]}},
                {"participant_id": 1},
                session=session,
            )
        }
        fresh = {p: erased for p, erased in people if p not in existing}
        if not fresh:
            return []
        await self.attendees.bulk_write(
            [
                InsertOne(
                    {
                        "_id": pair_id(seminar_id, participant_id),
                        "seminar_id": seminar_id,
                        "participant_id": participant_id,
                        "invited": False,
                        "erased": erased,
                        "added_at": now,
                    }
                )
                for participant_id, erased in fresh.items()
            ],
            ordered=False,
            session=session,
        )
        await self.seminars.update_one(
            {"_id": seminar_id}, {"$inc": {"attendee_count": len(fresh)}}, session=session
        )
        return list(fresh)

    async def open_window(
        self,
        seminar_id: str,
        *,
        window: EvaluationWindow,
        form: FormVersion,
        completed_at: datetime,
        session: Session,
    ) -> None:
        await self.seminars.update_one(
            {"_id": seminar_id},
            {
                "$set": {
                    "completed_at": completed_at,
                    "opens_at": window.opens_at,
                    "closes_at": window.closes_at,
                    "form_id": form.form_id,
                    "form_version": form.version,
                    "anonymous": form.anonymous,
                    "closed": False,
                }
            },
            session=session,
        )

    async def mark_closed(
        self, seminar_id: str, *, response_count: int, now: datetime, session: Session
    ) -> bool:
        """Once only: True for the call that closed it."""
        result = await self.seminars.update_one(
            {"_id": seminar_id, "closed": False},
            {"$set": {"closed": True, "closed_at": now, "response_count_at_close": response_count}},
            session=session,
        )
        return result.modified_count == 1

    async def mark_reminded(
        self, seminar_id: str, *, count: int, now: datetime, session: Session
    ) -> None:
        """Note that the window's non-respondents (``count`` of them) were reminded."""
        await self.seminars.update_one(
            {"_id": seminar_id},
            {"$set": {"reminded_at": now, "reminded_count": count}},
            session=session,
        )

    async def uninvited(self, seminar_id: str, *, session: Session) -> list[str]:
        """Attendees not invited yet (erased people are never invited)."""
        return [
            doc["participant_id"]
            async for doc in self.attendees.find(
                {"seminar_id": seminar_id, "invited": False, "erased": False},
                {"participant_id": 1},
                session=session,
            ).sort("_id", ASCENDING)
        ]

    async def mark_invited(
        self, seminar_id: str, participant_ids: Sequence[str], *, session: Session
    ) -> None:
        if participant_ids:
            await self.attendees.update_many(
                {"_id": {"$in": [pair_id(seminar_id, p) for p in participant_ids]}},
                {"$set": {"invited": True}},
                session=session,
            )

    async def attendee_ids(
        self, seminar_id: str, *, include_erased: bool = True, session: Session = None
    ) -> list[str]:
        query: Document = {"seminar_id": seminar_id}
        if not include_erased:
            query["erased"] = False
        return [
            doc["participant_id"]
            async for doc in self.attendees.find(query, {"participant_id": 1}, session=session)
        ]

    async def is_attendee(
        self, seminar_id: str, participant_id: str, *, session: Session = None
    ) -> bool:
        """Recorded as an attendee and not erased (a pseudonym cannot answer)."""
        found = await self.attendees.find_one(
            {"_id": pair_id(seminar_id, participant_id), "erased": {"$ne": True}},
            {"_id": 1},
            session=session,
        )
        return found is not None

    async def completed(
        self,
        *,
        year: int | None = None,
        kind: Kind | None = None,
        programme: Programme | None = None,
    ) -> list[SeminarEvaluation]:
        """Seminars whose window opened, filtered by the report's grouping keys."""
        query: Document = {"opens_at": {"$ne": None}}
        if year is not None:
            query["year"] = year
        if kind is not None:
            query["kind"] = kind.value
        if programme is not None:
            query["programme"] = programme.value
        return [_seminar(doc) async for doc in self.seminars.find(query)]

    # ---- erasure -----------------------------------------------------------------------

    async def erased_among(self, pseudonyms: Iterable[str], *, session: Session) -> set[str]:
        wanted = list(pseudonyms)
        if not wanted:
            return set()
        return {
            doc["_id"]
            async for doc in self.erasures.find(
                {"_id": {"$in": wanted}}, {"_id": 1}, session=session
            )
        }

    async def record_erasure(self, pseudonym: str, *, now: datetime, session: Session) -> None:
        await self.erasures.update_one(
            {"_id": pseudonym}, {"$setOnInsert": {"erased_at": now}}, upsert=True, session=session
        )

    async def pseudonymise_attendees(
        self, participant_id: str, pseudonym: str, *, session: Session
    ) -> int:
        """Replace the person's attendee entries by pseudonymous ones (same seminars,
        same count); returns how many were replaced."""
        docs = await self.attendees.find(
            {"participant_id": participant_id}, session=session
        ).to_list()
        if not docs:
            return 0
        await self.attendees.delete_many(
            {"_id": {"$in": [d["_id"] for d in docs]}}, session=session
        )
        await self.attendees.bulk_write(
            [
                UpdateOne(
                    {"_id": pair_id(d["seminar_id"], pseudonym)},
                    {
                        "$setOnInsert": {
                            **{k: v for k, v in d.items() if k != "_id"},
                            "participant_id": pseudonym,
                            "erased": True,
                        }
                    },
                    upsert=True,
                )
                for d in docs
            ],
            session=session,
        )
        return len(docs)


# ---- responses -------------------------------------------------------------------------


def _response_doc(response: Response) -> Document:
    doc: Document = {
        "_id": response.evaluation_id,
        "seminar_id": response.seminar_id,
        "kind": response.kind.value,
        "programme": response.programme.value,
        "year": response.year,
        "form_id": response.form_id,
        "form_version": response.form_version,
        "anonymous": response.anonymous,
        "overall": response.overall.value,
        "comments": response.comments,
        "answers": dict(response.answers),
        "submitted_at": response.submitted_at,
    }
    if response.participant_id is not None:
        doc["participant_id"] = response.participant_id
    return doc


def _response(doc: Document) -> Response:
    return Response(
        evaluation_id=doc["_id"],
        seminar_id=doc["seminar_id"],
        kind=Kind(doc["kind"]),
        programme=Programme(doc["programme"]),
        year=doc["year"],
        form_id=doc["form_id"],
        form_version=doc["form_version"],
        anonymous=bool(doc.get("anonymous", False)),
        overall=Rating(doc["overall"]),
        comments=doc.get("comments"),
        answers=doc.get("answers", {}),
        submitted_at=doc["submitted_at"],
        participant_id=doc.get("participant_id"),
    )


class ResponseRepository(Repository):
    indexes: ClassVar[dict[str, Sequence[IndexModel]]] = {
        RESPONSES: [
            IndexModel([("seminar_id", ASCENDING), ("_id", ASCENDING)]),
            IndexModel([("year", ASCENDING), ("kind", ASCENDING), ("programme", ASCENDING)]),
            IndexModel([("kind", ASCENDING), ("year", ASCENDING)]),
            # Named responses: a second line of defence behind the respondents marker.
            IndexModel(
                [("seminar_id", ASCENDING), ("participant_id", ASCENDING)],
                unique=True,
                partialFilterExpression={"participant_id": {"$exists": True}},
                name="one_named_response_per_attendee",
            ),
            IndexModel("participant_id", sparse=True),
        ],
        RESPONDENTS: [IndexModel("seminar_id"), IndexModel("participant_id")],
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.responses = self.collection(RESPONSES)
        self.respondents = self.collection(RESPONDENTS)

    async def has_responded(
        self, seminar_id: str, participant_id: str, *, session: Session = None
    ) -> bool:
        found = await self.respondents.find_one(
            {"_id": pair_id(seminar_id, participant_id)}, {"_id": 1}, session=session
        )
        return found is not None

    async def record(self, response: Response, *, participant_id: str, session: Session) -> None:
        """Store the has-responded marker and the response together (one transaction).
        Raises ``DuplicateKeyError`` when this attendee has already responded."""
        marker: Document = {
            "_id": pair_id(response.seminar_id, participant_id),
            "seminar_id": response.seminar_id,
            "participant_id": participant_id,
        }
        if not response.anonymous:
            # Only for named forms: a time on the marker would let one match it to the
            # anonymous response stored in the same moment.
            marker["responded_at"] = response.submitted_at
            marker["evaluation_id"] = response.evaluation_id
        await self.respondents.insert_one(marker, session=session)
        await self.responses.insert_one(_response_doc(response), session=session)

    async def count(self, seminar_id: str, *, session: Session = None) -> int:
        return await self.respondents.count_documents({"seminar_id": seminar_id}, session=session)

    async def counts(self, seminar_ids: Sequence[str]) -> dict[str, int]:
        if not seminar_ids:
            return {}
        rows = await (
            await self.respondents.aggregate(
                [
                    {"$match": {"seminar_id": {"$in": list(seminar_ids)}}},
                    {"$group": {"_id": "$seminar_id", "n": {"$sum": 1}}},
                ]
            )
        ).to_list()
        return {row["_id"]: row["n"] for row in rows}

    async def respondent_ids(self, seminar_id: str, *, session: Session = None) -> list[str]:
        return [
            doc["participant_id"]
            async for doc in self.respondents.find(
                {"seminar_id": seminar_id}, {"participant_id": 1}, session=session
            )
        ]

    def _query(
        self,
        *,
        seminar_id: str | None,
        kind: Kind | None,
        year: int | None,
        programme: Programme | None,
    ) -> Document:
        query: Document = {}
        if seminar_id is not None:
            query["seminar_id"] = seminar_id
        if year is not None:
            query["year"] = year
        if kind is not None:
            query["kind"] = kind.value
        if programme is not None:
            query["programme"] = programme.value
        return query

    async def form_versions_in(
        self,
        *,
        seminar_id: str | None = None,
        kind: Kind | None = None,
        year: int | None = None,
        programme: Programme | None = None,
    ) -> list[tuple[str, int]]:
        query = self._query(seminar_id=seminar_id, kind=kind, year=year, programme=programme)
        rows = await (
            await self.responses.aggregate(
                [
                    {"$match": query},
                    {"$group": {"_id": {"f": "$form_id", "v": "$form_version"}}},
                ]
            )
        ).to_list()
        return sorted((row["_id"]["f"], row["_id"]["v"]) for row in rows)

    async def find(
        self,
        *,
        seminar_id: str | None = None,
        kind: Kind | None = None,
        year: int | None = None,
        programme: Programme | None = None,
    ) -> AsyncIterator[Response]:
        """Responses matching the filters, by seminar, then by (random) evaluation id:
        never in submission order, which would help link anonymous answers to people."""
        query = self._query(seminar_id=seminar_id, kind=kind, year=year, programme=programme)
        async for doc in self.responses.find(query).sort(
            [("seminar_id", ASCENDING), ("_id", ASCENDING)]
        ):
            yield _response(doc)

    async def pseudonymise(self, participant_id: str, pseudonym: str, *, session: Session) -> int:
        """Replace the person's id on named responses and on the has-responded markers."""
        changed = await self.responses.update_many(
            {"participant_id": participant_id},
            {"$set": {"participant_id": pseudonym}},
            session=session,
        )
        markers = await self.respondents.find(
            {"participant_id": participant_id}, session=session
        ).to_list()
        if markers:
            await self.respondents.delete_many(
                {"_id": {"$in": [m["_id"] for m in markers]}}, session=session
            )
            await self.respondents.insert_many(
                [
                    {**m, "_id": pair_id(m["seminar_id"], pseudonym), "participant_id": pseudonym}
                    for m in markers
                ],
                session=session,
            )
        return changed.modified_count + len(markers)
