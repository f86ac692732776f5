"""The seminar service's use cases: load, decide (``domain``), persist and emit, each in
one unit of work (one MongoDB transaction holding the state change, the outgoing events
and the scheduled reminders)."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeVar

import structlog
from pymongo.errors import DuplicateKeyError, OperationFailure

from seminarops_shared import retry
from seminarops_shared.errors import Conflict, NotFound
from seminarops_shared.events.seminar import (
    AttendanceRecorded,
    SeminarCancelled,
    SeminarCompleted,
    SeminarReminderDue,
    SeminarRescheduled,
    SeminarScheduled,
    SeminarWentLive,
    SessionTimes,
)
from seminarops_shared.privacy import pseudonym
from seminarops_shared.scheduler import Job, Scheduler
from seminarops_shared.unit_of_work import UnitOfWork, UnitOfWorkFactory

from . import domain
from .domain import (
    AttendanceDecision,
    Seminar,
    SeminarDefinition,
    Session,
)
from .repository import (
    AttendanceRepository,
    ConcurrentUpdate,
    ReminderLog,
    RosterEntry,
    RosterRepository,
    SeminarFilter,
    SeminarRepository,
    SentReminder,
    StillContended,
    decode_cursor,
    encode_cursor,
)

T = TypeVar("T")
_log = structlog.get_logger(__name__)

REMINDER_JOB = "seminar.reminder"
IMPORT_CHUNK = 100


class SeminarNotFound(NotFound):
    """No seminar with this id."""

    def __init__(self, seminar_id: str) -> None:
        super().__init__(f"no seminar {seminar_id}")
        self.seminar_id = seminar_id


class IdConflict(Conflict):
    """The id is taken by a seminar with a different definition."""


def new_seminar_id() -> str:
    return f"sem-{uuid.uuid4().hex}"


def derived_seminar_id(definition: SeminarDefinition) -> str:
    """The id of an imported row that names none: derived from its content, so the same
    file imported twice creates its seminars once."""
    return f"sem-{definition.fingerprint()[:32]}"


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One data row of a season file: a valid definition, or why it is not one."""

    row: int
    line: int
    seminar_id: str | None
    definition: SeminarDefinition | None
    errors: Sequence[str] = ()


ImportStatus = Literal["created", "unchanged", "rejected"]


@dataclass(slots=True)
class ImportOutcome:
    row: int
    line: int
    status: ImportStatus
    seminar_id: str | None
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PlannedReminder:
    """A reminder as operators see it: ``pending`` (a job due at ``due_at``) or
    ``sent`` (at ``sent_at``)."""

    job_id: str
    session_index: int
    session_starts_at: datetime
    offset_minutes: int
    due_at: datetime
    status: Literal["pending", "sent"]
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AttendanceResult:
    decision: AttendanceDecision
    attendee_count: int


def _times(sessions: Sequence[Session]) -> list[SessionTimes]:
    return [SessionTimes(starts_at=s.starts_at, ends_at=s.ends_at) for s in sessions]


def _scheduled(seminar: Seminar) -> SeminarScheduled:
    return SeminarScheduled(
        seminar_id=seminar.id,
        title=seminar.title,
        kind=seminar.kind,
        programme=seminar.programme,
        language=seminar.language,
        theme=seminar.theme,
        timezone=seminar.timezone,
        sessions=_times(seminar.sessions),
        capacity=seminar.capacity,
        year=seminar.year,
        host_school_id=seminar.host_school_id,
        open_to_other_schools=seminar.open_to_other_schools,
        moderator=seminar.moderator,
        promotion=seminar.promotion,
        offer_hours=seminar.offer_hours,
        eligible_countries=(
            None if seminar.eligible_countries is None else list(seminar.eligible_countries)
        ),
    )


class SeminarService:
    """Everything the seminar service does; built once per app in ``setup``."""

    def __init__(
        self,
        *,
        seminars: SeminarRepository,
        roster: RosterRepository,
        attendance: AttendanceRepository,
        reminder_log: ReminderLog,
        uow: UnitOfWorkFactory,
        scheduler: Scheduler,
        reminder_offsets_minutes: Sequence[int],
        pseudonym_key: bytes,
        new_id: Callable[[], str] = new_seminar_id,
    ) -> None:
        self._seminars = seminars
        self._roster = roster
        self._attendance = attendance
        self._reminder_log = reminder_log
        self._uow = uow
        self._scheduler = scheduler
        self._offsets = tuple(reminder_offsets_minutes)
        self._new_id = new_id
        self._pseudonym_key = pseudonym_key

    async def _run(self, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        """One transaction, run again while a concurrent writer got there first (the
        unit of work's ``retry.HTTP``); still contended after that: ``StillContended``
        (the caller may try again, 409)."""

        async def guarded(uow: UnitOfWork) -> T:
            try:
                return await work(uow)
            except DuplicateKeyError as error:
                # A key taken since it was read (a seminar created concurrently, an
                # upsert race): a concurrent change like any other.
                raise ConcurrentUpdate(str(error)) from error

        try:
            return await self._uow.run(guarded)
        except OperationFailure as error:
            # ConcurrentUpdate included: it carries the server's write-conflict code.
            if retry.is_write_conflict(error):
                raise StillContended(str(error)) from error
            raise

    async def _load(self, uow: UnitOfWork, seminar_id: str) -> Seminar:
        seminar = await self._seminars.get(seminar_id, session=uow.session)
        if seminar is None:
            raise SeminarNotFound(seminar_id)
        return seminar

    def _reminder_jobs(
        self, seminar: Seminar, *, now: datetime, sent: Sequence[SentReminder] = ()
    ) -> list[Job]:
        """The seminar's reminders still to send as jobs (stable ids: scheduling one
        again moves it); ``sent``: those already sent, so none goes out twice."""
        return [
            Job(
                id=reminder.job_id,
                kind=REMINDER_JOB,
                group=seminar.id,
                due_at=reminder.due_at,
                payload={
                    "seminar_id": seminar.id,
                    "session_index": reminder.session_index,
                    "session_starts_at": reminder.session_starts_at,
                    "offset_minutes": reminder.offset_minutes,
                },
            )
            for reminder in domain.reminders_for(
                seminar,
                offsets_minutes=self._offsets,
                now=now,
                sent={(r.session_index, r.session_starts_at) for r in sent},
            )
        ]

    async def _plan_reminders(self, uow: UnitOfWork, seminar: Seminar, *, replace: bool) -> None:
        """Schedule the seminar's reminders in one write; with ``replace`` (its sessions
        moved), the ones no longer wanted are withdrawn first, and those already sent
        are not sent again."""
        sent: list[SentReminder] = []
        if replace:
            await self._scheduler.cancel_group(uow, seminar.id, kind=REMINDER_JOB)
            sent = await self._reminder_log.of_seminar(seminar.id, session=uow.session)
        await self._scheduler.schedule_many(
            uow, self._reminder_jobs(seminar, now=uow.now, sent=sent)
        )

    # ---- scheduling ----------------------------------------------------------------------

    async def create(
        self, definition: SeminarDefinition, *, seminar_id: str | None = None
    ) -> tuple[Seminar, bool]:
        """Schedule a seminar: stored, ``seminar.scheduled.v1`` emitted, reminders planned.

        Idempotent per operator-given id: the same definition again returns the existing
        seminar (``created`` False) and emits nothing; a different one is ``IdConflict``.
        """
        chosen_id = seminar_id or self._new_id()

        async def work(uow: UnitOfWork) -> tuple[Seminar, bool]:
            existing = await self._seminars.get(chosen_id, session=uow.session)
            if existing is not None:
                if existing.fingerprint == definition.fingerprint():
                    return existing, False
                raise IdConflict(f"seminar {chosen_id} exists with a different definition")
            seminar = domain.schedule(seminar_id=chosen_id, definition=definition, now=uow.now)
            await self._seminars.add_many([seminar], session=uow.session)
            uow.emit(_scheduled(seminar))
            await self._plan_reminders(uow, seminar, replace=False)
            return seminar, True

        return await self._run(work)

    async def import_season(
        self, rows: Sequence[ImportRow], *, dry_run: bool
    ) -> list[ImportOutcome]:
        """Schedule every valid row of a season file, report each row's fate.

        Per row: ``created``, ``unchanged`` (a seminar with this id and the same
        definition exists: importing a file twice changes nothing) or ``rejected`` with
        the reasons. Valid rows are stored in transactions of ``IMPORT_CHUNK`` rows;
        ``dry_run`` stores nothing and reports what would happen.
        """
        outcomes: list[ImportOutcome] = []
        first_by_id: dict[str, tuple[int, str]] = {}
        candidates: list[tuple[ImportOutcome, str, SeminarDefinition]] = []
        for row in rows:
            if row.definition is None:
                outcomes.append(
                    ImportOutcome(
                        row=row.row,
                        line=row.line,
                        status="rejected",
                        seminar_id=row.seminar_id,
                        errors=list(row.errors),
                    )
                )
                continue
            seminar_id = row.seminar_id or derived_seminar_id(row.definition)
            fingerprint = row.definition.fingerprint()
            outcome = ImportOutcome(
                row=row.row, line=row.line, status="created", seminar_id=seminar_id
            )
            outcomes.append(outcome)
            earlier = first_by_id.get(seminar_id)
            if earlier is None:
                first_by_id[seminar_id] = (row.row, fingerprint)
                candidates.append((outcome, seminar_id, row.definition))
            elif earlier[1] == fingerprint:
                outcome.status = "unchanged"
                outcome.errors.append(f"same seminar as row {earlier[0]}")
            else:
                outcome.status = "rejected"
                outcome.errors.append(f"id {seminar_id} is already used by row {earlier[0]}")
        for start in range(0, len(candidates), IMPORT_CHUNK):
            chunk = candidates[start : start + IMPORT_CHUNK]
            if dry_run:
                existing = await self._seminars.get_many(seminar_id for _, seminar_id, _ in chunk)
                _sort_out(chunk, existing)
            else:
                await self._run(functools.partial(self._import_chunk, chunk=chunk))
        return outcomes

    async def _import_chunk(
        self, uow: UnitOfWork, *, chunk: Sequence[tuple[ImportOutcome, str, SeminarDefinition]]
    ) -> None:
        existing = await self._seminars.get_many(
            (seminar_id for _, seminar_id, _ in chunk), session=uow.session
        )
        new = _sort_out(chunk, existing)
        seminars = [
            domain.schedule(seminar_id=seminar_id, definition=definition, now=uow.now)
            for seminar_id, definition in new
        ]
        await self._seminars.add_many(seminars, session=uow.session)
        for seminar in seminars:
            uow.emit(_scheduled(seminar))
        # New seminars have no reminders to withdraw: the whole chunk's in one write.
        await self._scheduler.schedule_many(
            uow, [job for s in seminars for job in self._reminder_jobs(s, now=uow.now)]
        )

    # ---- reading -------------------------------------------------------------------------

    async def get(self, seminar_id: str) -> Seminar:
        seminar = await self._seminars.get(seminar_id)
        if seminar is None:
            raise SeminarNotFound(seminar_id)
        return seminar

    async def search(
        self, seminar_filter: SeminarFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[Seminar], str | None]:
        """A page of seminars (by start time, then id) and the cursor of the next page
        (``None`` on the last). Raises ``InvalidCursor``."""
        after = decode_cursor(cursor) if cursor else None
        page = await self._seminars.search(seminar_filter, limit=limit + 1, after=after)
        if len(page) > limit:
            page = page[:limit]
            return page, encode_cursor(page[-1])
        return page, None

    async def reminders(self, seminar_id: str) -> tuple[Seminar, list[PlannedReminder]]:
        """The seminar and its reminders, sent and pending, by due time."""
        seminar = await self.get(seminar_id)
        pending = [
            PlannedReminder(
                job_id=job.id,
                session_index=int(job.payload["session_index"]),
                session_starts_at=job.payload["session_starts_at"],
                offset_minutes=int(job.payload["offset_minutes"]),
                due_at=job.due_at,
                status="pending",
            )
            for job in await self._scheduler.pending(seminar_id)
            if job.kind == REMINDER_JOB
        ]
        sent = [
            PlannedReminder(
                job_id=r.job_id,
                session_index=r.session_index,
                session_starts_at=r.session_starts_at,
                offset_minutes=r.offset_minutes,
                due_at=r.due_at,
                status="sent",
                sent_at=r.sent_at,
            )
            for r in await self._reminder_log.of_seminar(seminar_id)
        ]
        return seminar, sorted(sent + pending, key=lambda r: (r.due_at, r.session_index))

    async def roster(self, seminar_id: str) -> list[RosterEntry]:
        await self.get(seminar_id)
        return await self._roster.of_seminar(seminar_id)

    # ---- lifecycle -----------------------------------------------------------------------

    async def reschedule(
        self,
        seminar_id: str,
        *,
        sessions: Sequence[tuple[datetime, datetime]] | None,
        capacity: int | None,
        reason: str | None = None,
    ) -> Seminar:
        """New times and/or capacity: ``seminar.rescheduled.v1`` with the old and new
        values, reminders moved. The same reschedule twice changes once (no event)."""

        async def work(uow: UnitOfWork) -> Seminar:
            seminar = await self._load(uow, seminar_id)
            changed = domain.reschedule(seminar, sessions=sessions, capacity=capacity, now=uow.now)
            if changed is None:
                return seminar
            await self._seminars.save(
                changed, expected_version=seminar.version, session=uow.session
            )
            uow.emit(
                SeminarRescheduled(
                    seminar_id=seminar_id,
                    old_sessions=_times(seminar.sessions),
                    new_sessions=_times(changed.sessions),
                    old_capacity=seminar.capacity,
                    new_capacity=changed.capacity,
                    year=changed.year,
                    reason=(reason or "").strip()[: domain.MAX_REASON_LENGTH] or None,
                )
            )
            if changed.sessions != seminar.sessions:
                await self._plan_reminders(uow, changed, replace=True)
            return changed

        return await self._run(work)

    async def start(self, seminar_id: str) -> Seminar:
        """The seminar went live: ``seminar.went_live.v1``, once."""

        async def work(uow: UnitOfWork) -> Seminar:
            seminar = await self._load(uow, seminar_id)
            changed = domain.go_live(seminar, now=uow.now)
            if changed is None:
                return seminar
            await self._seminars.save(
                changed, expected_version=seminar.version, session=uow.session
            )
            uow.emit(SeminarWentLive(seminar_id=seminar_id))
            return changed

        return await self._run(work)

    async def cancel(self, seminar_id: str, *, reason: str | None) -> Seminar:
        """Cancelled for good: ``seminar.cancelled.v1`` once, every reminder withdrawn."""

        async def work(uow: UnitOfWork) -> Seminar:
            seminar = await self._load(uow, seminar_id)
            changed = domain.cancel(seminar, reason=reason, now=uow.now)
            if changed is None:
                return seminar
            await self._seminars.save(
                changed, expected_version=seminar.version, session=uow.session
            )
            await self._scheduler.cancel_group(uow, seminar_id)
            uow.emit(SeminarCancelled(seminar_id=seminar_id, reason=changed.cancel_reason))
            return changed

        return await self._run(work)

    async def complete(self, seminar_id: str) -> Seminar:
        """Completed for good: ``seminar.completed.v1`` once, with every attendee (each
        once), kind, programme and year; remaining reminders withdrawn."""

        async def work(uow: UnitOfWork) -> Seminar:
            seminar = await self._load(uow, seminar_id)
            changed = domain.complete(seminar, now=uow.now)
            if changed is None:
                return seminar
            attendees = await self._attendance.attendees(seminar_id, session=uow.session)
            await self._seminars.save(
                changed, expected_version=seminar.version, session=uow.session
            )
            await self._scheduler.cancel_group(uow, seminar_id)
            uow.emit(
                SeminarCompleted(
                    seminar_id=seminar_id,
                    kind=changed.kind,
                    programme=changed.programme,
                    year=changed.year,
                    attendee_ids=attendees,
                    host_school_id=changed.host_school_id,
                    open_to_other_schools=changed.open_to_other_schools,
                )
            )
            return changed

        return await self._run(work)

    # ---- attendance ----------------------------------------------------------------------

    async def record_attendance(
        self, seminar_id: str, participant_ids: Sequence[str]
    ) -> AttendanceResult:
        """Record who attended: only confirmed registrants, each once however often they
        are sent. Two queries and one insert whatever the batch size; the new attendees
        go out in ``attendance.recorded.v1`` events of at most 1000 ids each."""
        requested = domain.unique_in_order(participant_ids)

        async def work(uow: UnitOfWork) -> AttendanceResult:
            seminar = await self._load(uow, seminar_id)
            domain.check_attendance_open(seminar, now=uow.now)
            roster = await self._roster.statuses(seminar_id, requested, session=uow.session)
            on_roster = [p for p in requested if p in roster]
            already = await self._attendance.recorded_among(
                seminar_id, on_roster, session=uow.session
            )
            decision = domain.decide_attendance(
                requested=requested,
                roster=roster,
                already_recorded=already,
                attendee_count=seminar.attendee_count,
            )
            if decision.recorded:
                await self._attendance.add(
                    seminar_id, decision.recorded, now=uow.now, session=uow.session
                )
                await self._seminars.add_attendees(
                    seminar_id,
                    len(decision.recorded),
                    expected_version=seminar.version,
                    session=uow.session,
                )
                for ids in domain.chunked(decision.recorded):
                    uow.emit(
                        AttendanceRecorded(
                            seminar_id=seminar_id,
                            kind=seminar.kind,
                            programme=seminar.programme,
                            year=seminar.year,
                            participant_ids=ids,
                        )
                    )
            return AttendanceResult(
                decision=decision, attendee_count=seminar.attendee_count + len(decision.recorded)
            )

        return await self._run(work)

    # ---- consumed events -----------------------------------------------------------------

    async def apply_registrations(
        self, uow: UnitOfWork, changes: Sequence[RosterEntry]
    ) -> list[bool]:
        """Project registration changes onto the rosters, in order: each only if it is
        newer than what the roster holds (records arrive out of order and more than
        once: same outcome); for an erased participant it lands on their pseudonym; the
        seminar need not be known (yet). Three round trips for up to
        ``mongo.IN_QUERY_LIMIT`` people (a few more beyond): which of them were
        erased, the roster entries the changes land on, and one write of the entries that
        end up newer.

        Idempotent by natural key (seminar, participant, version): a change no newer than
        what the roster holds, here or earlier in ``changes``, changes nothing, so a
        repeat is harmless. Returns, per change, whether it changed the roster."""
        pseudonyms = {
            c.participant_id: pseudonym(c.participant_id, key=self._pseudonym_key) for c in changes
        }
        erased = await self._roster.erased_among(
            {p for participant, p in pseudonyms.items() if p != participant},
            session=uow.session,
        )
        landing = [
            dataclasses.replace(c, participant_id=pseudonyms[c.participant_id])
            if pseudonyms[c.participant_id] in erased
            else c
            for c in changes
        ]
        stored = await self._roster.get_many(
            {(c.seminar_id, c.participant_id) for c in landing}, session=uow.session
        )
        newest: dict[tuple[str, str], RosterEntry] = {}
        applied: list[bool] = []
        for change in landing:
            key = (change.seminar_id, change.participant_id)
            held = newest.get(key) or stored.get(key)
            supersedes = domain.supersedes(change.version, held.version if held else None)
            if supersedes:
                newest[key] = change
            applied.append(supersedes)
        await self._roster.put_many(list(newest.values()), now=uow.now, session=uow.session)
        return applied

    async def erase_participant(self, uow: UnitOfWork, participant_id: str) -> bool:
        """Replace the participant's id by its pseudonym on every roster and attendance
        record; counts stay the same. Idempotent: once erased, the id never comes back
        (later registration events land on the pseudonym, attendance needs the roster),
        so erasing again finds nothing to move. Returns whether anything changed."""
        erased = pseudonym(participant_id, key=self._pseudonym_key)
        known = await self._roster.is_erased(erased, session=uow.session)
        rosters = await self._roster.erase(participant_id, erased, now=uow.now, session=uow.session)
        attended = await self._attendance.erase(participant_id, erased, session=uow.session)
        _log.info("participant erased", roster_entries=rosters, attendance_records=attended)
        return not known or rosters > 0 or attended > 0

    # ---- timers --------------------------------------------------------------------------

    async def send_reminder(self, job: Job, uow: UnitOfWork) -> None:
        """A reminder job is due: ``seminar.reminder_due.v1``, unless the seminar was
        cancelled or completed or the session moved (then the job is simply dropped).
        The scheduler deletes the job in this transaction: emitted once."""
        payload = job.payload
        seminar = await self._seminars.get(str(payload["seminar_id"]), session=uow.session)
        index = int(payload["session_index"])
        planned = payload["session_starts_at"]
        if seminar is None or not domain.reminder_still_due(
            seminar, session_index=index, session_starts_at=planned, now=uow.now
        ):
            _log.info("reminder no longer due; dropped", job_id=job.id)
            return
        session = seminar.sessions[index]
        await self._reminder_log.record(
            seminar.id,
            SentReminder(
                job_id=job.id,
                session_index=index,
                session_starts_at=session.starts_at,
                offset_minutes=int(payload["offset_minutes"]),
                due_at=job.due_at,
                sent_at=uow.now,
            ),
            session=uow.session,
        )
        uow.emit(
            SeminarReminderDue(
                seminar_id=seminar.id,
                session_index=index,
                session_starts_at=session.starts_at,
                session_ends_at=session.ends_at,
                offset_minutes=int(payload["offset_minutes"]),
                title=seminar.title,
                timezone=seminar.timezone,
            )
        )


def _sort_out(
    chunk: Sequence[tuple[ImportOutcome, str, SeminarDefinition]], existing: dict[str, Seminar]
) -> list[tuple[str, SeminarDefinition]]:
    """Mark rows whose id exists (same definition: unchanged; else rejected); return
    the rest, to be created."""
    new: list[tuple[str, SeminarDefinition]] = []
    for outcome, seminar_id, definition in chunk:
        found = existing.get(seminar_id)
        if found is None:
            outcome.status, outcome.errors = "created", []
            new.append((seminar_id, definition))
        elif found.fingerprint == definition.fingerprint():
            outcome.status, outcome.errors = "unchanged", []
        else:
            outcome.status = "rejected"
            outcome.errors = [f"a different seminar with id {seminar_id} exists"]
    return new
