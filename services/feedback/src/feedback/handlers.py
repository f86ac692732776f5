"""Use cases of the feedback service: load, decide (``domain``), persist and emit
through the unit of work (one transaction with the outbox and, for consumed events, the
processed-event marker, which makes every consumer handler idempotent per event id).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from pymongo.errors import DuplicateKeyError

from seminarops_shared.clock import Clock
from seminarops_shared.errors import Conflict, NotFound
from seminarops_shared.events import ReceivedEvent
from seminarops_shared.events.feedback import (
    EvaluationInvited,
    EvaluationReminderDue,
    EvaluationSubmitted,
    EvaluationWindowClosed,
    EvaluationWindowOpened,
)
from seminarops_shared.events.registration import ParticipantErased
from seminarops_shared.events.seminar import AttendanceRecorded, SeminarCompleted
from seminarops_shared.events.vocabulary import Kind, Programme, Rating
from seminarops_shared.privacy import pseudonym
from seminarops_shared.scheduler import Job, Scheduler
from seminarops_shared.unit_of_work import UnitOfWork, UnitOfWorkFactory

from . import export
from .domain import (
    AlreadyEvaluated,
    FormRef,
    FormVersion,
    InvalidAnswers,
    PlannedStep,
    Question,
    RateRow,
    Response,
    SeminarEvaluation,
    UnknownForm,
    WindowState,
    check_can_submit,
    check_questions,
    choose_form,
    close_job_at,
    default_form,
    default_form_id,
    evaluation_plan,
    make_response,
    non_respondents,
    open_window,
    reminder_at,
    validate_answers,
)
from .repository import (
    EvaluationRepository,
    FormExists,
    FormRepository,
    ResponseRepository,
    kind_target,
    seminar_target,
)

REMIND_JOB = "feedback.remind"
CLOSE_JOB = "feedback.close"

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class FormSummary:
    form_id: str
    latest_version: int
    title: str
    anonymous: bool
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class SeminarRate:
    seminar: SeminarEvaluation
    state: WindowState
    responses: int


@dataclass(frozen=True, slots=True)
class EvaluationPlan:
    seminar: SeminarEvaluation
    state: WindowState
    steps: list[PlannedStep]


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    days: float = 14
    reminder_before_close: timedelta = timedelta(hours=48)
    close_grace: timedelta = timedelta(seconds=60)


def _new_id() -> str:
    return str(uuid.uuid4())


class FeedbackService:
    def __init__(
        self,
        *,
        forms: FormRepository,
        evaluations: EvaluationRepository,
        responses: ResponseRepository,
        uow: UnitOfWorkFactory,
        scheduler: Scheduler,
        clock: Clock,
        policy: WindowPolicy,
        pseudonym_key: bytes,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self._forms = forms
        self._evaluations = evaluations
        self._responses = responses
        self._uow = uow
        self._scheduler = scheduler
        self._clock = clock
        self._policy = policy
        self._new_id = new_id
        self._pseudonym_key = pseudonym_key
        # Form versions never change once written: cache them by (id, version).
        self._form_cache: dict[tuple[str, int], FormVersion] = {}

    async def ensure_default_forms(self) -> None:
        """Create the built-in form of every kind if missing (idempotent; an operator's
        later versions of a default form are left alone)."""
        now = self._clock()
        for kind in Kind:
            await self._forms.ensure_exists(default_form(kind, now=now))

    # ---- consumed events ---------------------------------------------------------------

    async def on_seminar_completed(self, event: ReceivedEvent, uow: UnitOfWork) -> None:
        """The seminar is over: record its attendees and open its evaluation window.

        The window starts at the completion event's ``time`` (clamped to now) and pins
        the form version in force then; one invitation per attendee, a reminder job and
        a closing job are scheduled. A window already expired on arrival (an old
        seminar imported late) opens and closes at once, without invitations.
        Idempotent: a second completion of the same seminar only adds attendees it did
        not know (and invites them while the window is open); the window never moves.
        """
        data = event.data
        assert isinstance(data, SeminarCompleted)
        sid = data.seminar_id
        await self._evaluations.ensure_seminar(
            seminar_id=sid,
            kind=data.kind,
            programme=data.programme,
            year=data.year,
            now=uow.now,
            session=uow.session,
        )
        await self._add_attendees(sid, data.attendee_ids, uow)
        seminar = await self._seminar(sid, uow)
        if seminar.window is not None:
            if seminar.state(uow.now) is WindowState.OPEN:
                await self._invite_pending(seminar, uow)
            return
        form = await self._form_for(seminar, uow)
        window = open_window(completed_at=event.envelope.time, now=uow.now, days=self._policy.days)
        await self._evaluations.open_window(
            sid, window=window, form=form, completed_at=event.envelope.time, session=uow.session
        )
        seminar = await self._seminar(sid, uow)
        uow.emit(
            EvaluationWindowOpened(
                seminar_id=sid,
                form_id=form.form_id,
                form_version=form.version,
                attendee_count=seminar.attendee_count,
                opens_at=window.opens_at,
                closes_at=window.closes_at,
                kind=seminar.kind,
                programme=seminar.programme,
                year=seminar.year,
                anonymous=form.anonymous,
            )
        )
        if window.state(uow.now) is WindowState.OPEN:
            await self._invite_pending(seminar, uow)
            await self._schedule_jobs(seminar, uow)
        else:
            await self._close(seminar, uow)

    async def on_attendance_recorded(self, event: ReceivedEvent, uow: UnitOfWork) -> None:
        """More attendees. Before completion they are only recorded (the completion
        invites them); while the window is open, new ones are invited at once; after it
        closed they are recorded (they count for the rate) but not invited.
        Idempotent: attendees already known are neither counted nor invited again."""
        data = event.data
        assert isinstance(data, AttendanceRecorded)
        await self._evaluations.ensure_seminar(
            seminar_id=data.seminar_id,
            kind=data.kind,
            programme=data.programme,
            year=data.year,
            now=uow.now,
            session=uow.session,
        )
        added = await self._add_attendees(data.seminar_id, data.participant_ids, uow)
        if not added:
            return
        seminar = await self._seminar(data.seminar_id, uow)
        if seminar.state(uow.now) is WindowState.OPEN:
            await self._invite_pending(seminar, uow)

    async def on_participant_erased(self, event: ReceivedEvent, uow: UnitOfWork) -> None:
        """Forget a person: their attendee entries, has-responded markers and named
        responses keep existing under the pseudonym (``seminarops_shared.privacy``), so
        every count and the one-response rule stay right; later attendance of the same
        id is recorded under the pseudonym too. Idempotent (a second erasure finds
        nothing left under the id)."""
        data = event.data
        assert isinstance(data, ParticipantErased)
        alias = pseudonym(data.participant_id, key=self._pseudonym_key)
        attendee_entries = await self._evaluations.pseudonymise_attendees(
            data.participant_id, alias, session=uow.session
        )
        responses = await self._responses.pseudonymise(
            data.participant_id, alias, session=uow.session
        )
        await self._evaluations.record_erasure(alias, now=uow.now, session=uow.session)
        _log.info("participant erased", attendee_entries=attendee_entries, responses=responses)

    # ---- durable timers ----------------------------------------------------------------

    async def on_reminder_due(self, job: Job, uow: UnitOfWork) -> None:
        """Remind every attendee who has not answered (erased people excepted), once
        per window (the scheduler runs a job once). Nothing if the window is no longer
        open."""
        seminar = await self._evaluations.get(job.payload["seminar_id"], session=uow.session)
        if seminar is None or seminar.window is None or seminar.closed:
            return
        if seminar.state(uow.now) is not WindowState.OPEN:
            return
        attendees = await self._evaluations.attendee_ids(
            seminar.seminar_id, include_erased=False, session=uow.session
        )
        answered = await self._responses.respondent_ids(seminar.seminar_id, session=uow.session)
        reminded = non_respondents(attendees, answered)
        for participant_id in reminded:
            uow.emit(
                EvaluationReminderDue(
                    seminar_id=seminar.seminar_id,
                    participant_id=participant_id,
                    closes_at=seminar.window.closes_at,
                )
            )
        await self._evaluations.mark_reminded(
            seminar.seminar_id, count=len(reminded), now=uow.now, session=uow.session
        )

    async def on_close_due(self, job: Job, uow: UnitOfWork) -> None:
        """Emit the window-closed event with the final counts, once."""
        seminar = await self._evaluations.get(job.payload["seminar_id"], session=uow.session)
        if seminar is None or seminar.window is None or seminar.closed:
            return
        await self._close(seminar, uow)

    # ---- forms -------------------------------------------------------------------------

    async def create_form(
        self,
        *,
        form_id: str | None,
        title: str,
        description: str | None,
        anonymous: bool,
        questions: Sequence[Question],
    ) -> FormVersion:
        """Version 1 of a new form. Raises ``InvalidForm`` or ``Conflict`` (id taken)."""
        form = FormVersion(
            form_id=form_id or f"form-{uuid.uuid4().hex[:12]}",
            version=1,
            title=title,
            description=description,
            anonymous=anonymous,
            questions=check_questions(questions),
            created_at=self._clock(),
        )

        async def work(uow: UnitOfWork) -> FormVersion:
            try:
                await self._forms.create(form, session=uow.session)
            except FormExists:
                raise Conflict(f"form {form.form_id} exists; edit it to add a version") from None
            return form

        return await self._uow.run(work)

    async def update_form(
        self,
        form_id: str,
        *,
        title: str,
        description: str | None,
        anonymous: bool,
        questions: Sequence[Question],
    ) -> FormVersion:
        """Edit a form: the result is a new version (n+1); earlier versions stay as they
        were, and so do the windows and responses that use them."""
        checked = check_questions(questions)

        async def work(uow: UnitOfWork) -> FormVersion:
            latest = await self._forms.get(form_id, session=uow.session)
            if latest is None:
                raise NotFound(f"form {form_id} does not exist")
            form = FormVersion(
                form_id=form_id,
                version=latest.version + 1,
                title=title,
                description=description,
                anonymous=anonymous,
                questions=checked,
                created_at=uow.now,
            )
            if not await self._forms.add_version(form, session=uow.session):
                raise Conflict(f"form {form_id} was edited at the same time; try again")
            return form

        return await self._uow.run(work)

    async def form(self, form_id: str, version: int | None = None) -> FormVersion:
        found = await self._form_version(form_id, version)
        if found is None:
            suffix = f" version {version}" if version is not None else ""
            raise NotFound(f"form {form_id}{suffix} does not exist")
        return found

    async def forms(self) -> list[FormSummary]:
        return [
            FormSummary(
                form_id=doc["_id"],
                latest_version=doc["latest_version"],
                title=doc["title"],
                anonymous=bool(doc.get("anonymous", False)),
                updated_at=doc.get("updated_at"),
            )
            for doc in await self._forms.summaries()
        ]

    async def assign_to_seminar(self, seminar_id: str, ref: FormRef) -> FormRef:
        """Use ``ref`` for this seminar's evaluation. Only before its window opens (the
        open window's form is pinned, so its answers stay comparable)."""
        await self._check_ref(ref)

        async def work(uow: UnitOfWork) -> FormRef:
            seminar = await self._evaluations.get(seminar_id, session=uow.session)
            if seminar is not None and seminar.window is not None:
                raise Conflict(
                    f"the evaluation window of seminar {seminar_id} is already open with form "
                    f"{seminar.form.form_id if seminar.form else '?'}; its form cannot change"
                )
            await self._forms.assign(
                seminar_target(seminar_id), ref, now=uow.now, session=uow.session
            )
            return ref

        return await self._uow.run(work)

    async def assign_to_kind(self, kind: Kind, ref: FormRef) -> FormRef:
        """Use ``ref`` for every seminar of ``kind`` whose window opens from now on and
        that has no form of its own."""
        await self._check_ref(ref)

        async def work(uow: UnitOfWork) -> FormRef:
            await self._forms.assign(kind_target(kind), ref, now=uow.now, session=uow.session)
            return ref

        return await self._uow.run(work)

    async def kind_form(self, kind: Kind) -> FormVersion:
        """The form a seminar of ``kind`` without a form of its own is evaluated with,
        should its window open now: the kind's assignment, else its default form."""
        ref = choose_form(
            seminar_assignment=None,
            kind_assignment=await self._forms.assignment(kind_target(kind)),
            kind=kind,
        )
        return await self.form(ref.form_id, ref.version)

    async def evaluation_plan(self, seminar_id: str) -> EvaluationPlan:
        """The seminar's evaluation window and its steps (opens, reminder, closes), each
        pending, done or skipped. ``NotFound`` for a seminar this service has not heard
        of (no completion or attendance yet)."""
        seminar = await self._evaluations.get(seminar_id)
        if seminar is None:
            raise NotFound(f"seminar {seminar_id} is not known here yet")
        pending = {job.kind for job in await self._scheduler.pending(seminar_id)}
        steps = evaluation_plan(
            seminar,
            reminder_before_close=self._policy.reminder_before_close,
            close_grace=self._policy.close_grace,
            reminder_pending=REMIND_JOB in pending,
        )
        return EvaluationPlan(seminar=seminar, state=seminar.state(self._clock()), steps=steps)

    async def seminar_form(self, seminar_id: str) -> FormVersion:
        """The form a seminar is (or will be) evaluated with."""
        seminar = await self._evaluations.get(seminar_id)
        if seminar is not None and seminar.form is not None:
            return await self.form(seminar.form.form_id, seminar.form.version)
        own = await self._forms.assignment(seminar_target(seminar_id))
        if seminar is None and own is None:
            raise NotFound(f"seminar {seminar_id} is not known here yet and has no form assigned")
        ref = own
        if ref is None and seminar is not None:
            ref = choose_form(
                seminar_assignment=None,
                kind_assignment=await self._forms.assignment(kind_target(seminar.kind)),
                kind=seminar.kind,
            )
        assert ref is not None
        return await self.form(ref.form_id, ref.version)

    # ---- responses ---------------------------------------------------------------------

    async def submit(
        self,
        *,
        seminar_id: str,
        participant_id: str,
        overall: Rating,
        comments: str | None,
        answers: Mapping[str, Any],
    ) -> Response:
        """Store one attendee's evaluation and emit ``evaluation.submitted.v1``.

        Invariant: at most one response per (seminar, attendee) — the has-responded
        marker's unique id is written in the same transaction as the response, so of
        two concurrent submissions exactly one commits; only inside the window; only
        answers valid for the seminar's pinned form version. On any refusal nothing is
        stored. Not idempotent by design: a repeat is refused (``AlreadyEvaluated``).
        """

        async def work(uow: UnitOfWork) -> Response:
            seminar = await self._evaluations.get(seminar_id, session=uow.session)
            attended = seminar is not None and await self._evaluations.is_attendee(
                seminar_id, participant_id, session=uow.session
            )
            # A repeat is caught by the marker's unique id below; reading the marker
            # first would cost every first submission a query.
            seminar = check_can_submit(
                seminar_id=seminar_id,
                participant_id=participant_id,
                seminar=seminar,
                is_attendee=attended,
                has_responded=False,
                now=uow.now,
            )
            assert seminar.form is not None
            assert seminar.form.version is not None
            form = await self._form_version(
                seminar.form.form_id, seminar.form.version, session=uow.session
            )
            if form is None:
                raise RuntimeError(f"pinned form {seminar.form} of {seminar_id} is missing")
            try:
                response = make_response(
                    evaluation_id=self._new_id(),
                    seminar=seminar,
                    form=form,
                    participant_id=participant_id,
                    overall=overall,
                    comments=comments,
                    answers=validate_answers(form, answers),
                    now=uow.now,
                )
            except InvalidAnswers:
                # A second submission is a 409 whatever its answers.
                if await self._responses.has_responded(
                    seminar_id, participant_id, session=uow.session
                ):
                    raise AlreadyEvaluated(
                        f"participant {participant_id} has already evaluated seminar {seminar_id}"
                    ) from None
                raise
            try:
                await self._responses.record(
                    response, participant_id=participant_id, session=uow.session
                )
            except DuplicateKeyError:
                raise AlreadyEvaluated(
                    f"participant {participant_id} has already evaluated seminar {seminar_id}"
                ) from None
            uow.emit(
                EvaluationSubmitted(
                    seminar_id=seminar_id,
                    evaluation_id=response.evaluation_id,
                    kind=response.kind,
                    programme=response.programme,
                    year=response.year,
                    overall=response.overall,
                    form_id=response.form_id,
                    form_version=response.form_version,
                    participant_id=response.participant_id,
                    anonymous=response.anonymous,
                )
            )
            return response

        return await self._uow.run(work)

    async def seminar_rate(self, seminar_id: str) -> SeminarRate:
        seminar = await self._evaluations.get(seminar_id)
        if seminar is None:
            raise NotFound(f"seminar {seminar_id} is not known to the feedback service")
        return SeminarRate(
            seminar=seminar,
            state=seminar.state(self._clock()),
            responses=await self._responses.count(seminar_id),
        )

    async def rates(
        self,
        *,
        year: int | None = None,
        kind: Kind | None = None,
        programme: Programme | None = None,
    ) -> list[RateRow]:
        """Responses / attendees per (kind, programme, year), over seminars whose
        evaluation window opened."""
        seminars = await self._evaluations.completed(year=year, kind=kind, programme=programme)
        counts = await self._responses.counts([s.seminar_id for s in seminars])
        rows: dict[tuple[str, str, int], RateRow] = {}
        for s in seminars:
            key = (s.kind.value, s.programme.value, s.year)
            row = rows.get(key) or RateRow(kind=key[0], programme=key[1], year=key[2])
            rows[key] = RateRow(
                kind=row.kind,
                programme=row.programme,
                year=row.year,
                seminars=row.seminars + 1,
                attendees=row.attendees + s.attendee_count,
                responses=row.responses + counts.get(s.seminar_id, 0),
            )
        return [rows[k] for k in sorted(rows, key=lambda k: (k[2], k[0], k[1]))]

    async def non_respondents(self, seminar_id: str) -> tuple[SeminarEvaluation, list[str]]:
        """Attendees who have not answered (for reminders). Named forms only: for an
        anonymous form the list (with the response count) would narrow down who gave
        which answer, so it is refused (``Conflict``) although the markers could compute it."""
        seminar = await self._evaluations.get(seminar_id)
        if seminar is None or seminar.window is None:
            raise NotFound(f"seminar {seminar_id} has no evaluation window")
        if seminar.anonymous:
            raise Conflict(
                f"seminar {seminar_id} is evaluated with an anonymous form: who has not "
                "answered is not disclosed (reminders still reach them)"
            )
        attendees = await self._evaluations.attendee_ids(seminar_id, include_erased=False)
        answered = await self._responses.respondent_ids(seminar_id)
        return seminar, non_respondents(attendees, answered)

    async def export_csv(
        self,
        *,
        seminar_id: str | None = None,
        kind: Kind | None = None,
        year: int | None = None,
        programme: Programme | None = None,
    ) -> AsyncIterator[str]:
        """CSV text of the matching responses, header first, one chunk per row. An
        anonymous response has no participant id and only its day."""
        versions = await self._responses.form_versions_in(
            seminar_id=seminar_id, kind=kind, year=year, programme=programme
        )
        forms = [f for f in [await self._form_version(i, v) for i, v in versions] if f]
        columns = export.answer_columns(forms)
        yield export.header(columns)
        async for response in self._responses.find(
            seminar_id=seminar_id, kind=kind, year=year, programme=programme
        ):
            yield export.row(response, columns)

    # ---- helpers -----------------------------------------------------------------------

    async def _seminar(self, seminar_id: str, uow: UnitOfWork) -> SeminarEvaluation:
        seminar = await self._evaluations.get(seminar_id, session=uow.session)
        assert seminar is not None, "ensure_seminar ran first"
        return seminar

    async def _add_attendees(
        self, seminar_id: str, participant_ids: Sequence[str], uow: UnitOfWork
    ) -> list[str]:
        unique = list(dict.fromkeys(participant_ids))
        aliases = {p: pseudonym(p, key=self._pseudonym_key) for p in unique}
        erased = await self._evaluations.erased_among(aliases.values(), session=uow.session)
        people = [(aliases[p], True) if aliases[p] in erased else (p, False) for p in unique]
        return await self._evaluations.add_attendees(
            seminar_id, people, now=uow.now, session=uow.session
        )

    async def _invite_pending(self, seminar: SeminarEvaluation, uow: UnitOfWork) -> None:
        assert seminar.window is not None
        pending = await self._evaluations.uninvited(seminar.seminar_id, session=uow.session)
        for participant_id in pending:
            uow.emit(
                EvaluationInvited(
                    seminar_id=seminar.seminar_id,
                    participant_id=participant_id,
                    closes_at=seminar.window.closes_at,
                )
            )
        await self._evaluations.mark_invited(seminar.seminar_id, pending, session=uow.session)

    async def _schedule_jobs(self, seminar: SeminarEvaluation, uow: UnitOfWork) -> None:
        assert seminar.window is not None
        sid = seminar.seminar_id
        remind = reminder_at(seminar.window, before_close=self._policy.reminder_before_close)
        if remind is not None:
            await self._scheduler.schedule(
                uow,
                job_id=f"{REMIND_JOB}:{sid}",
                kind=REMIND_JOB,
                group=sid,
                due_at=remind,
                payload={"seminar_id": sid},
            )
        await self._scheduler.schedule(
            uow,
            job_id=f"{CLOSE_JOB}:{sid}",
            kind=CLOSE_JOB,
            group=sid,
            due_at=close_job_at(seminar.window, grace=self._policy.close_grace),
            payload={"seminar_id": sid},
        )

    async def _close(self, seminar: SeminarEvaluation, uow: UnitOfWork) -> None:
        assert seminar.window is not None
        count = await self._responses.count(seminar.seminar_id, session=uow.session)
        if not await self._evaluations.mark_closed(
            seminar.seminar_id, response_count=count, now=uow.now, session=uow.session
        ):
            return
        await self._scheduler.cancel(uow, [f"{REMIND_JOB}:{seminar.seminar_id}"])
        uow.emit(
            EvaluationWindowClosed(
                seminar_id=seminar.seminar_id,
                attendee_count=seminar.attendee_count,
                response_count=count,
                closes_at=seminar.window.closes_at,
                kind=seminar.kind,
                programme=seminar.programme,
                year=seminar.year,
            )
        )

    async def _form_for(self, seminar: SeminarEvaluation, uow: UnitOfWork) -> FormVersion:
        ref = choose_form(
            seminar_assignment=await self._forms.assignment(
                seminar_target(seminar.seminar_id), session=uow.session
            ),
            kind_assignment=await self._forms.assignment(
                kind_target(seminar.kind), session=uow.session
            ),
            kind=seminar.kind,
        )
        form = await self._form_version(ref.form_id, ref.version, session=uow.session)
        if form is None:
            _log.warning("assigned form missing; using the kind's default", form=ref.form_id)
            form = await self._form_version(default_form_id(seminar.kind), session=uow.session)
        if form is None:
            raise RuntimeError(f"default form of {seminar.kind} missing")
        return form

    async def _form_version(
        self, form_id: str, version: int | None = None, *, session: Any = None
    ) -> FormVersion | None:
        if version is not None and (form_id, version) in self._form_cache:
            return self._form_cache[(form_id, version)]
        form = await self._forms.get(form_id, version, session=session)
        if form is not None:
            self._form_cache[(form.form_id, form.version)] = form
        return form

    async def _check_ref(self, ref: FormRef) -> None:
        if await self._form_version(ref.form_id, ref.version) is None:
            suffix = f" version {ref.version}" if ref.version is not None else ""
            raise UnknownForm([f"form {ref.form_id}{suffix} does not exist"])
