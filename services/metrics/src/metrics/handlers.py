"""Use cases of the metrics service: project events (a consumed batch live, or a
rebuild's catch-up batch), and answer the reports."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from seminarops_shared.events import Event, ReceivedEvent
from seminarops_shared.events.feedback import EvaluationSubmitted
from seminarops_shared.events.registration import (
    CertificateIssued,
    CertificateRevoked,
    ParticipantErased,
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationOffered,
    RegistrationPromoted,
    RegistrationRejected,
    RegistrationWaitlisted,
)
from seminarops_shared.events.seminar import (
    AttendanceRecorded,
    SeminarCancelled,
    SeminarCompleted,
    SeminarRescheduled,
    SeminarScheduled,
    SeminarWentLive,
)
from seminarops_shared.events.vocabulary import Kind
from seminarops_shared.privacy import pseudonym
from seminarops_shared.unit_of_work import UnitOfWork

from .domain import (
    ParticipationView,
    certificate_after,
    evaluation_of,
    evaluation_tally,
    participation_attended,
    participation_registered,
    participation_regrouped,
    participation_tally,
    registration_after,
    registration_tally,
    seminar_after,
    tally_change,
)
from .held_projections import HELD_PROJECTIONS, HeldProjections
from .reports import (
    CertificatesReport,
    CountriesReport,
    FunnelReport,
    ParticipationReport,
    SatisfactionReport,
    SchoolsReport,
    SeminarFunnelInput,
    SeminarsReport,
    SeminarTableInput,
    SeriesReport,
    certificates_report,
    countries_report,
    funnel_report,
    participation_report,
    satisfaction_report,
    schools_report,
    seminars_report,
    series_report,
)
from .repository import ProjectionPointer, Projections, ReportQueries
from .store import ProjectionStore

V = TypeVar("V")

# What the projector acts on; every other event on the three topics is skipped.
SEMINAR_EVENT_TYPES: tuple[type[Event], ...] = (
    SeminarScheduled,
    SeminarRescheduled,
    SeminarWentLive,
    SeminarCancelled,
    SeminarCompleted,
    AttendanceRecorded,
)
REGISTRATION_EVENT_TYPES: tuple[type[Event], ...] = (
    RegistrationConfirmed,
    RegistrationWaitlisted,
    RegistrationPromoted,
    RegistrationOffered,
    RegistrationCancelled,
    RegistrationRejected,
    ParticipantErased,
    CertificateIssued,
    CertificateRevoked,
)
FEEDBACK_EVENT_TYPES: tuple[type[Event], ...] = (EvaluationSubmitted,)
PROJECTED_TYPES = SEMINAR_EVENT_TYPES + REGISTRATION_EVENT_TYPES + FEEDBACK_EVENT_TYPES
# Folded without a processed-event marker (see ``subscribers.subscribe``).
IDEMPOTENT_TYPES = REGISTRATION_EVENT_TYPES + FEEDBACK_EVENT_TYPES


def _evaluators(data: Event) -> list[str]:
    """The participant ids an evaluation is stored under until the person is erased
    (every other view knows people by pseudonym only: ``Projector.person``)."""
    if isinstance(data, EvaluationSubmitted) and data.participant_id:
        return [data.participant_id]
    return []


class Projector:
    """Applies one event to the projections through a ``ProjectionStore``; the live
    consumer and the rebuild share it, so both build the same documents.

    Registrations and participations know a person by their pseudonym only (``person``,
    keyed with ``pseudonym_key``, the same key in every service): deterministic, so a
    replay of the topics (which still carry the original id) and events that arrive
    after an erasure (which carry the pseudonym) land on the same document, and an
    erasure changes none of them; one-way, so they never hold the platform's id.
    Evaluations keep the participant id until the person is erased, then their
    pseudonym (``stored_ids``).
    """

    def __init__(self, *, pseudonym_key: bytes) -> None:
        self._pseudonym_key = pseudonym_key

    def anonymous_id(self, participant_id: str) -> str:
        """The stand-in for a participant who asked to be forgotten."""
        return pseudonym(participant_id, key=self._pseudonym_key)

    def person(self, participant_id: str) -> str:
        """How registrations and participations know a participant, erased or not (a
        pseudonym is its own pseudonym)."""
        return self.anonymous_id(participant_id)

    async def stored_ids(
        self, people: Iterable[str], store: ProjectionStore
    ) -> Callable[[str], str]:
        """How each of ``people`` is stored: under their anonymous id if they asked to
        be forgotten, their own id otherwise (one ``erased_among`` read for them all).
        The returned function answers for ``people`` only."""
        aliases = {p: self.anonymous_id(p) for p in people}
        erased = await store.erased_among(set(aliases.values())) if aliases else set()

        def stored(participant_id: str) -> str:
            alias = aliases[participant_id]
            return alias if alias in erased else participant_id

        return stored

    async def apply(self, data: Event, store: ProjectionStore) -> None:
        """Fold ``data`` into the projections it touches.

        Invariants: an erased person's id never lands in a projection again (events
        naming them, even late or replayed ones, are stored under the anonymous id;
        registrations and participations never hold it at all); one registration and
        one participation per person and seminar, so an attendee counts once per
        seminar. Idempotent: every write is the fold of the document with the event, so
        a repeat changes nothing.
        """
        if isinstance(data, ParticipantErased):
            await store.erase(
                participant_id=data.participant_id,
                anonymous=self.anonymous_id(data.participant_id),
                erased_at=data.erased_at,
            )
            return
        stored = await self.stored_ids(_evaluators(data), store)
        match data:
            case (
                SeminarScheduled()
                | SeminarRescheduled()
                | SeminarWentLive()
                | SeminarCancelled()
                | SeminarCompleted()
                | AttendanceRecorded()
            ):
                await self._seminar(data, store)
            case (
                RegistrationConfirmed()
                | RegistrationWaitlisted()
                | RegistrationPromoted()
                | RegistrationOffered()
                | RegistrationCancelled()
                | RegistrationRejected()
            ):
                participant = self.person(data.participant_id)
                current = await store.registration(data.seminar_id, participant)
                after = registration_after(current, data, participant_id=participant)
                if after != current:
                    await store.save_registration(after)
                    await _tally(store, after.seminar_id, registration_tally, current, after)
                if not isinstance(data, RegistrationRejected):
                    found = await store.participations(data.seminar_id, [participant])
                    before = found.get(participant)
                    view = participation_registered(
                        before,
                        seminar_id=data.seminar_id,
                        participant_id=participant,
                        country=data.country,
                        school_id=data.school_id,
                    )
                    if view != before:
                        await store.save_participations([view])
                        await _tally_participations(store, [(before, view)])
            case CertificateIssued() | CertificateRevoked():
                # No participant id is kept: the certificates report counts, never names.
                certificate = await store.certificate(data.certificate_id)
                folded = certificate_after(certificate, data)
                if folded != certificate:
                    await store.save_certificate(folded)
            case EvaluationSubmitted():
                evaluation = evaluation_of(
                    data,
                    participant_id=stored(data.participant_id) if data.participant_id else None,
                )
                previous = await store.evaluation(data.evaluation_id)
                if previous != evaluation:
                    await store.save_evaluation(evaluation)
                    await _tally(
                        store, evaluation.seminar_id, evaluation_tally, previous, evaluation
                    )

    async def _seminar(
        self,
        data: SeminarScheduled
        | SeminarRescheduled
        | SeminarWentLive
        | SeminarCancelled
        | SeminarCompleted
        | AttendanceRecorded,
        store: ProjectionStore,
    ) -> None:
        current = await store.seminar(data.seminar_id)
        after = seminar_after(current, data)
        if after != current:
            await store.save_seminar(after)
        if isinstance(data, AttendanceRecorded | SeminarCompleted):
            attendees = sorted(
                {
                    self.person(p)
                    for p in (
                        data.participant_ids
                        if isinstance(data, AttendanceRecorded)
                        else data.attendee_ids
                    )
                }
            )
            # Completion regroups every attendee of the seminar (also those recorded
            # only by attendance events); attendance touches only the listed ones.
            # Either way the listed ones are read as they are (a registrant who did not
            # attend yet keeps their country and school).
            found = await store.participations(data.seminar_id, attendees)
            if isinstance(data, SeminarCompleted):
                found = await store.attendees(data.seminar_id) | found
            changed: list[tuple[ParticipationView | None, ParticipationView]] = []
            listed = set(attendees)
            for participant in sorted(set(found) | listed):
                before = found.get(participant)
                if participant in listed:
                    view = participation_attended(
                        before,
                        seminar_id=data.seminar_id,
                        participant_id=participant,
                        kind=data.kind,
                        programme=data.programme,
                        year=data.year,
                    )
                else:
                    assert before is not None
                    view = participation_regrouped(
                        before, year=data.year, kind=data.kind, programme=data.programme
                    )
                if view != before:
                    changed.append((before, view))
            await store.save_participations([view for _, view in changed])
            await _tally_participations(store, changed)
        elif isinstance(data, SeminarRescheduled):
            # Only attendees move with their seminar (``participation_regrouped``).
            found = await store.attendees(data.seminar_id)
            moved = [(v, participation_regrouped(v, year=data.year)) for v in found.values()]
            await store.save_participations([after for before, after in moved if after != before])


async def _tally(
    store: ProjectionStore,
    seminar_id: str,
    counts: Callable[[V | None], dict[str, int]],
    before: V | None,
    after: V,
) -> None:
    """Move the seminar's tallies by what ``after`` counts for minus what ``before``
    did (``counts`` is the view's ``domain.*_tally``)."""
    change = tally_change(counts(before), counts(after))
    if change:
        await store.tally(seminar_id, change)


async def _tally_participations(
    store: ProjectionStore,
    changed: Sequence[tuple[ParticipationView | None, ParticipationView]],
) -> None:
    for before, after in changed:
        await _tally(store, after.seminar_id, participation_tally, before, after)


async def _preload(store: HeldProjections, events: Sequence[Event], projector: Projector) -> None:
    """Read in bulk what folding ``events`` will read: who among the evaluators is
    erased, then seminars, people at seminars, evaluations and certificates by key."""
    await projector.stored_ids({p for data in events for p in _evaluators(data)}, store)
    seminars: set[str] = set()
    evaluations: set[str] = set()
    certificates: set[str] = set()
    people: dict[str, set[str]] = {}
    for data in events:
        match data:
            case AttendanceRecorded():
                seminars.add(data.seminar_id)
                people.setdefault(data.seminar_id, set()).update(
                    projector.person(p) for p in data.participant_ids
                )
            case (
                SeminarScheduled()
                | SeminarRescheduled()
                | SeminarWentLive()
                | SeminarCancelled()
                | SeminarCompleted()
            ):
                seminars.add(data.seminar_id)
            case (
                RegistrationConfirmed()
                | RegistrationWaitlisted()
                | RegistrationPromoted()
                | RegistrationOffered()
                | RegistrationCancelled()
                | RegistrationRejected()
            ):
                people.setdefault(data.seminar_id, set()).add(projector.person(data.participant_id))
            case EvaluationSubmitted():
                evaluations.add(data.evaluation_id)
            case CertificateIssued() | CertificateRevoked():
                certificates.add(data.certificate_id)
    await store.preload(
        seminar_ids=seminars,
        evaluation_ids=evaluations,
        certificate_ids=certificates,
        people=people,
    )


async def fold_batch(
    events: Sequence[ReceivedEvent], *, projector: Projector, store: HeldProjections
) -> list[str]:
    """Fold ``events`` into the projection documents the transaction holds, in order,
    event by event: every document is read once (in bulk where the keys are known up
    front) and written once, when the unit of work commits (one bulk write per
    collection). The live consumer and the rebuild's catch-up both fold through here.

    Idempotent by natural key (every fold is); returns the ids of the events whose
    fold changed nothing (repeats)."""
    await _preload(store, [e.data for e in events], projector)
    unchanged: list[str] = []
    for event in events:
        before = store.changes
        await projector.apply(event.data, store)
        if store.changes == before:
            unchanged.append(event.id)
    return unchanged


class ProjectionService:
    """The metrics service: projects events live, and answers reports from the active
    projection set."""

    def __init__(
        self,
        *,
        pointer: ProjectionPointer,
        projector: Projector,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.pointer = pointer
        self.projector = projector
        self._on_change = on_change or (lambda: None)

    async def projections(self) -> Projections:
        return Projections.of(self.pointer.db, await self.pointer.active())

    async def held_in(self, uow: UnitOfWork) -> HeldProjections:
        """The documents ``uow`` holds of the active projection set (resolved once per
        unit of work, with its first fold)."""
        held = uow.cache(HELD_PROJECTIONS)
        if held.projections is None:
            active = await self.pointer.active(session=uow.session)
            held.bind(Projections.of(self.pointer.db, active), uow)
        return held

    async def project_batch(self, events: Sequence[ReceivedEvent], uow: UnitOfWork) -> list[str]:
        """Batch handler of the consumer for every projected event type: fold the
        batch into the active projection set inside the batch's transaction (the
        pipeline's processed-event markers commit with it), see ``fold_batch``.

        Idempotent by natural key (every fold is); returns the ids of the events whose
        fold changed nothing (repeats: the consumer writes no processed-event marker
        for ``IDEMPOTENT_TYPES``)."""
        unchanged = await fold_batch(
            events, projector=self.projector, store=await self.held_in(uow)
        )
        self._on_change()
        return unchanged

    # ---- reports ---------------------------------------------------------------------

    async def queries(self) -> ReportQueries:
        return ReportQueries(await self.projections())

    async def participation(self, year: int) -> ParticipationReport:
        queries = await self.queries()
        return participation_report(year, await queries.participants([year - 1, year]))

    async def satisfaction(self, year: int) -> SatisfactionReport:
        queries = await self.queries()
        return satisfaction_report(
            year, await queries.participants([year]), await queries.ratings([year])
        )

    async def series(self, from_year: int, to_year: int) -> SeriesReport:
        queries = await self.queries()
        years = list(range(from_year, to_year + 1))
        return series_report(
            from_year,
            to_year,
            await queries.participants([from_year - 1, *years]),
            await queries.ratings(years),
        )

    async def funnel(self, year: int, kind: Kind | None) -> FunnelReport:
        queries = await self.queries()
        seminars = await queries.seminars_of(year, kind)
        counts = await queries.funnel_counts([s.seminar_id for s in seminars])
        return funnel_report(
            year,
            kind,
            [
                SeminarFunnelInput(
                    seminar_id=s.seminar_id,
                    title=s.title,
                    kind=s.kind,
                    programme=s.programme,
                    counts=counts[s.seminar_id],
                )
                for s in seminars
            ],
        )

    async def certificates(self, year: int) -> CertificatesReport:
        queries = await self.queries()
        return certificates_report(year, await queries.certificates(year))

    async def countries(self, year: int) -> CountriesReport:
        queries = await self.queries()
        return countries_report(year, await queries.countries(year))

    async def schools(self, year: int) -> SchoolsReport:
        queries = await self.queries()
        return schools_report(
            year,
            taking_part=await queries.schools_taking_part(year),
            hosted=await queries.schools_hosting(year),
        )

    async def years(self) -> tuple[list[int], list[int]]:
        """(years with seminars or participants, years with participants)."""
        queries = await self.queries()
        return await queries.years(), await queries.years_with_participants()

    async def seminars(self, year: int, kind: Kind | None) -> SeminarsReport:
        queries = await self.queries()
        seminars = await queries.seminars_of(year, kind)
        counts = await queries.funnel_counts([s.seminar_id for s in seminars])
        return seminars_report(
            year,
            [
                SeminarTableInput(
                    seminar_id=s.seminar_id,
                    title=s.title,
                    kind=s.kind,
                    programme=s.programme,
                    status=s.status.value,
                    capacity=s.capacity,
                    counts=counts[s.seminar_id],
                )
                for s in seminars
            ],
        )
