"""The projection documents one transaction holds: the metrics repositories'
per-transaction cache (an identity map), owned by the unit of work.

``HeldProjections`` is the ``ProjectionStore`` a transaction folds events through: it
reads every document the transaction needs at most once (in bulk for the keys known up
front, ``preload``), keeps the folded documents in memory, and writes what changed with
one bulk write per collection when the unit of work commits (``HELD_PROJECTIONS``'s
flush), inside the transaction. The folds are the same ``Projector`` code as for a
single event, so the documents are the same. ``uow.cache(HELD_PROJECTIONS)`` is the
transaction's own: made on first use, dropped with the unit of work, so a retried
attempt reads afresh.

A person's registration and participation at a seminar are one document
(``repository.person_doc``): read together, and written together when either changed
(an attendee's participation also to ``participations``, the reports' index).

An erasure rewrites the evaluations' ids: the store flushes, lets the database do it,
and forgets what it held (later events of the transaction read again).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession

from seminarops_shared.unit_of_work import TransactionCache, UnitOfWork

from .domain import (
    CertificateView,
    EvaluationView,
    ParticipationView,
    RegistrationView,
    SeminarView,
)
from .repository import PersonAtSeminar, Projections, person_doc, person_key


class HeldProjections:
    """``ProjectionStore`` over one projection set in one transaction, reading each
    document once and writing changes at ``flush()`` (one bulk write per collection).
    Bound to its projection set and the transaction's session on first use (``bind``)."""

    def __init__(self) -> None:
        self.projections: Projections | None = None
        self._session: AsyncClientSession | None = None
        # How many changes were handed to this store: an event whose fold leaves it
        # unchanged changed nothing (a repeat).
        self.changes = 0
        self._forget()

    @property
    def _p(self) -> Projections:
        assert self.projections is not None, "bound first"
        return self.projections

    def bind(self, projections: Projections, uow: UnitOfWork) -> HeldProjections:
        """Hold documents of ``projections`` in ``uow`` (one set per transaction)."""
        if self.projections is not None and self.projections is not projections:
            raise ValueError("a transaction folds into one projection set")
        self.projections = projections
        self._session = uow.session
        return self

    def _forget(self) -> None:
        # What the database holds (None: no such document), as changed by this batch.
        self._seminars: dict[str, SeminarView | None] = {}
        self._evaluations: dict[str, EvaluationView | None] = {}
        self._certificates: dict[str, CertificateView | None] = {}
        # seminar -> person -> registration / participation (both read with the
        # person's document: a person here has both entries, either may be None)
        self._registrations: dict[str, dict[str, RegistrationView | None]] = {}
        self._participations: dict[str, dict[str, ParticipationView | None]] = {}
        # Seminars whose attendees are all held here.
        self._attendees_held: set[str] = set()
        # anonymous id -> whether that person asked to be forgotten
        self._erased: dict[str, bool] = {}
        self._dirty_seminars: set[str] = set()
        self._dirty_evaluations: set[str] = set()
        self._dirty_certificates: set[str] = set()
        # (seminar, person) whose document changed
        self._dirty_people: set[tuple[str, str]] = set()
        # seminar -> counter -> change not written yet
        self._tallies: dict[str, dict[str, int]] = {}
        # Keys read as absent and not written yet: written with an insert, not an upsert.
        self._absent: set[str] = set()
        self._absent_people: set[tuple[str, str]] = set()

    # ---- bulk reads ----------------------------------------------------------------

    async def preload(
        self,
        *,
        seminar_ids: Iterable[str] = (),
        evaluation_ids: Iterable[str] = (),
        certificate_ids: Iterable[str] = (),
        people: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        """Read what the batch will touch: one query per collection (people at
        seminars: one for all)."""
        wanted = set(seminar_ids) - self._seminars.keys()
        if wanted:
            found_seminars = await self._p.seminars.get_many(wanted, session=self._session)
            self._seminars.update({s: found_seminars.get(s) for s in wanted})
            self._absent.update(f"s:{s}" for s in wanted if s not in found_seminars)
        wanted = set(evaluation_ids) - self._evaluations.keys()
        if wanted:
            found_evals = await self._p.evaluations.get_many(wanted, session=self._session)
            self._evaluations.update({e: found_evals.get(e) for e in wanted})
            self._absent.update(f"e:{e}" for e in wanted if e not in found_evals)
        wanted = set(certificate_ids) - self._certificates.keys()
        if wanted:
            found_certs = await self._p.certificates.get_many(wanted, session=self._session)
            self._certificates.update({c: found_certs.get(c) for c in wanted})
            self._absent.update(f"c:{c}" for c in wanted if c not in found_certs)
        await self._people_at(people or {})

    async def _people_at(self, people: Mapping[str, Collection[str]]) -> None:
        """Hold the documents of these people (seminar -> persons) that are not held
        yet: one read by ``_id`` for all."""
        missing = [
            (seminar_id, person)
            for seminar_id, persons in people.items()
            for person in persons
            if person not in self._registrations.get(seminar_id, {})
        ]
        if not missing:
            return
        found = await self._p.registrations.get_many(
            [person_key(s, p) for s, p in missing], session=self._session
        )
        for seminar_id, person in missing:
            views = found.get(person_key(seminar_id, person))
            self._hold(seminar_id, person, views or (None, None))
            if views is None:
                self._absent_people.add((seminar_id, person))

    async def _attendees_of(self, seminar_id: str) -> None:
        """Hold the documents of everyone who attended ``seminar_id``: who they are
        from ``participations`` (attendees only, indexed by seminar), their documents
        by ``_id``."""
        if seminar_id in self._attendees_held:
            return
        persons = await self._p.participations.attendees_of(seminar_id, session=self._session)
        await self._people_at({seminar_id: persons})
        self._attendees_held.add(seminar_id)

    def _hold(self, seminar_id: str, person: str, views: PersonAtSeminar) -> None:
        registration, participation = views
        self._registrations.setdefault(seminar_id, {})[person] = registration
        self._participations.setdefault(seminar_id, {})[person] = participation

    # ---- ProjectionStore -----------------------------------------------------------

    async def erased_among(self, anonymous_ids: Collection[str]) -> set[str]:
        unknown = {a for a in anonymous_ids if a not in self._erased}
        if unknown:
            erased = await self._p.erasures.among(unknown, session=self._session)
            self._erased.update({a: a in erased for a in unknown})
        return {a for a in anonymous_ids if self._erased[a]}

    async def erase(self, *, participant_id: str, anonymous: str, erased_at: datetime) -> None:
        self.changes += 1
        await self.flush()
        await self._p.erase(
            participant_id=participant_id,
            anonymous=anonymous,
            erased_at=erased_at,
            session=self._session,
        )
        self._forget()
        self._erased[anonymous] = True

    async def seminar(self, seminar_id: str) -> SeminarView | None:
        if seminar_id not in self._seminars:
            found = await self._p.seminars.get(seminar_id, session=self._session)
            self._seminars[seminar_id] = found
            if found is None:
                self._absent.add(f"s:{seminar_id}")
        return self._seminars[seminar_id]

    async def save_seminar(self, view: SeminarView) -> None:
        self.changes += 1
        self._seminars[view.seminar_id] = view
        self._dirty_seminars.add(view.seminar_id)

    async def registration(self, seminar_id: str, person: str) -> RegistrationView | None:
        await self._people_at({seminar_id: [person]})
        return self._registrations[seminar_id][person]

    async def save_registration(self, view: RegistrationView) -> None:
        self.changes += 1
        await self._people_at({view.seminar_id: [view.participant_id]})
        self._registrations[view.seminar_id][view.participant_id] = view
        self._dirty_people.add((view.seminar_id, view.participant_id))

    async def participations(
        self, seminar_id: str, participant_ids: Collection[str]
    ) -> dict[str, ParticipationView]:
        await self._people_at({seminar_id: participant_ids})
        held = self._participations[seminar_id] if participant_ids else {}
        return {p: view for p in participant_ids if (view := held.get(p)) is not None}

    async def attendees(self, seminar_id: str) -> dict[str, ParticipationView]:
        await self._attendees_of(seminar_id)
        held = self._participations.get(seminar_id, {})
        return {p: view for p, view in held.items() if view is not None and view.attended}

    async def save_participations(self, views: Sequence[ParticipationView]) -> None:
        self.changes += len(views)
        for view in views:
            await self._people_at({view.seminar_id: [view.participant_id]})
            self._participations[view.seminar_id][view.participant_id] = view
            self._dirty_people.add((view.seminar_id, view.participant_id))

    async def evaluation(self, evaluation_id: str) -> EvaluationView | None:
        if evaluation_id not in self._evaluations:
            found = await self._p.evaluations.get(evaluation_id, session=self._session)
            self._evaluations[evaluation_id] = found
            if found is None:
                self._absent.add(f"e:{evaluation_id}")
        return self._evaluations[evaluation_id]

    async def save_evaluation(self, view: EvaluationView) -> None:
        self.changes += 1
        self._evaluations[view.evaluation_id] = view
        self._dirty_evaluations.add(view.evaluation_id)

    async def certificate(self, certificate_id: str) -> CertificateView | None:
        if certificate_id not in self._certificates:
            found = await self._p.certificates.get(certificate_id, session=self._session)
            self._certificates[certificate_id] = found
            if found is None:
                self._absent.add(f"c:{certificate_id}")
        return self._certificates[certificate_id]

    async def save_certificate(self, view: CertificateView) -> None:
        self.changes += 1
        self._certificates[view.certificate_id] = view
        self._dirty_certificates.add(view.certificate_id)

    async def tally(self, seminar_id: str, change: Mapping[str, int]) -> None:
        counters = self._tallies.setdefault(seminar_id, {})
        for key, n in change.items():
            counters[key] = counters.get(key, 0) + n

    # ---- writing -------------------------------------------------------------------

    async def flush(self) -> None:
        """Write what changed since the last flush: one bulk write per collection."""
        session = self._session
        seminars = [seminar for s in sorted(self._dirty_seminars) if (seminar := self._seminars[s])]
        evaluations = [ev for e in sorted(self._dirty_evaluations) if (ev := self._evaluations[e])]
        certificates = [
            cert for c in sorted(self._dirty_certificates) if (cert := self._certificates[c])
        ]
        people = sorted(self._dirty_people)
        person_docs = [
            person_doc(s, p, self._registrations[s][p], self._participations[s][p])
            for s, p in people
        ]
        attendees = [
            part for s, p in people if (part := self._participations[s][p]) and part.attended
        ]
        self._dirty_seminars.clear()
        self._dirty_evaluations.clear()
        self._dirty_certificates.clear()
        self._dirty_people.clear()
        absent, absent_people = self._absent, self._absent_people
        # Once written, they exist.
        self._absent, self._absent_people = set(), set()
        if seminars:
            await self._p.seminars.save_many(
                seminars,
                session=session,
                new={v.seminar_id for v in seminars if f"s:{v.seminar_id}" in absent},
            )
        if person_docs:
            await self._p.registrations.save_many(
                person_docs,
                session=session,
                new={person_key(s, p) for s, p in people if (s, p) in absent_people},
            )
        if attendees:
            await self._p.participations.save_many(attendees, session=session)
        if evaluations:
            await self._p.evaluations.save_many(
                evaluations,
                session=session,
                new={v.evaluation_id for v in evaluations if f"e:{v.evaluation_id}" in absent},
            )
        if certificates:
            await self._p.certificates.save_many(
                certificates,
                session=session,
                new={v.certificate_id for v in certificates if f"c:{v.certificate_id}" in absent},
            )
        tallies = {
            seminar_id: moved
            for seminar_id, counters in self._tallies.items()
            if (moved := {key: n for key, n in counters.items() if n})
        }
        self._tallies = {}
        await self._p.tallies.add(tallies, session=session)


async def _flush_at_commit(held: HeldProjections, uow: UnitOfWork) -> None:
    if held.projections is not None:
        await held.flush()


# The unit of work's cache of projection documents, written when it commits.
HELD_PROJECTIONS: TransactionCache[HeldProjections] = TransactionCache(
    HeldProjections, flush=_flush_at_commit
)
