"""The use cases with in-memory fakes of the repositories, unit of work and scheduler."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from seminar import domain
from seminar.domain import IllegalTransition, RosterStatus, Seminar, SeminarStatus
from seminar.handlers import IdConflict, ImportRow, SeminarNotFound, SeminarService
from seminar.repository import ConcurrentUpdate, RosterEntry, SentReminder
from seminarops_shared import privacy
from seminarops_shared.events import Event
from seminarops_shared.events.seminar import (
    AttendanceRecorded,
    SeminarCompleted,
    SeminarReminderDue,
    SeminarRescheduled,
    SeminarScheduled,
)
from seminarops_shared.events.vocabulary import Kind, Programme
from seminarops_shared.scheduler import Job

T = TypeVar("T")
NOW = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
PSEUDONYM_KEY = b"seminar-unit-test-pseudonym-key"


# ---- fakes -------------------------------------------------------------------------------


class FakeUow:
    def __init__(self, now: datetime) -> None:
        self.session = None
        self.now = now
        self.outgoing: list[Event] = []

    def emit(self, data: Event) -> None:
        self.outgoing.append(data)


@dataclass
class FakeUowFactory:
    clock: Callable[[], datetime]
    emitted: list[Event] = field(default_factory=list)
    transactions: int = 0

    async def run(self, work: Callable[[FakeUow], Awaitable[T]]) -> T:
        uow = FakeUow(self.clock())
        result = await work(uow)
        self.transactions += 1
        self.emitted.extend(uow.outgoing)  # only what a committed unit of work emitted
        return result


class FakeSeminars:
    def __init__(self) -> None:
        self.rows: dict[str, Seminar] = {}

    async def get(self, seminar_id: str, *, session: Any = None) -> Seminar | None:
        return self.rows.get(seminar_id)

    async def get_many(self, ids: Iterable[str], *, session: Any = None) -> dict[str, Seminar]:
        return {i: self.rows[i] for i in ids if i in self.rows}

    async def add_many(self, seminars: Sequence[Seminar], *, session: Any) -> None:
        for seminar in seminars:
            assert seminar.id not in self.rows
            self.rows[seminar.id] = seminar

    async def save(self, seminar: Seminar, *, expected_version: int, session: Any) -> None:
        if self.rows[seminar.id].version != expected_version:
            raise ConcurrentUpdate(seminar.id)
        self.rows[seminar.id] = seminar

    async def add_attendees(
        self, seminar_id: str, count: int, *, expected_version: int, session: Any
    ) -> None:
        current = self.rows[seminar_id]
        if current.version != expected_version:
            raise ConcurrentUpdate(seminar_id)
        self.rows[seminar_id] = replace(
            current, attendee_count=current.attendee_count + count, version=current.version + 1
        )


class FakeRoster:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], RosterEntry] = {}
        self.erased: set[str] = set()

    async def get_many(
        self, keys: Iterable[tuple[str, str]], *, session: Any
    ) -> dict[tuple[str, str], RosterEntry]:
        return {key: self.entries[key] for key in keys if key in self.entries}

    async def put_many(
        self, entries: Sequence[RosterEntry], *, now: datetime, session: Any
    ) -> None:
        for entry in entries:
            self.entries[(entry.seminar_id, entry.participant_id)] = entry

    async def erased_among(self, pseudonyms: Iterable[str], *, session: Any) -> set[str]:
        return set(pseudonyms) & self.erased

    async def statuses(
        self, seminar_id: str, participant_ids: Sequence[str], *, session: Any
    ) -> dict[str, RosterStatus]:
        return {
            p: self.entries[(seminar_id, p)].status
            for p in participant_ids
            if (seminar_id, p) in self.entries
        }

    async def is_erased(self, pseudonym: str, *, session: Any) -> bool:
        return pseudonym in self.erased

    async def erase(
        self, participant_id: str, pseudonym: str, *, now: datetime, session: Any
    ) -> int:
        self.erased.add(pseudonym)
        moved = [key for key in self.entries if key[1] == participant_id]
        for seminar_id, _ in moved:
            entry = self.entries.pop((seminar_id, participant_id))
            self.entries[(seminar_id, pseudonym)] = replace(entry, participant_id=pseudonym)
        return len(moved)


class FakeAttendance:
    def __init__(self) -> None:
        self.records: set[tuple[str, str]] = set()
        self.inserts = 0

    async def recorded_among(
        self, seminar_id: str, participant_ids: Sequence[str], *, session: Any
    ) -> set[str]:
        return {p for p in participant_ids if (seminar_id, p) in self.records}

    async def add(
        self, seminar_id: str, participant_ids: Sequence[str], *, now: datetime, session: Any
    ) -> None:
        self.inserts += 1
        for participant_id in participant_ids:
            assert (seminar_id, participant_id) not in self.records
            self.records.add((seminar_id, participant_id))

    async def attendees(self, seminar_id: str, *, session: Any = None) -> list[str]:
        return sorted(p for s, p in self.records if s == seminar_id)

    async def erase(self, participant_id: str, pseudonym: str, *, session: Any) -> int:
        moved = [key for key in self.records if key[1] == participant_id]
        for seminar_id, _ in moved:
            self.records.discard((seminar_id, participant_id))
            self.records.add((seminar_id, pseudonym))
        return len(moved)


class FakeReminderLog:
    def __init__(self) -> None:
        self.sent: dict[str, tuple[str, SentReminder]] = {}

    async def record(self, seminar_id: str, sent: SentReminder, *, session: Any) -> None:
        key = f"{sent.job_id}@{sent.session_starts_at.isoformat()}"
        self.sent.setdefault(key, (seminar_id, sent))

    async def of_seminar(self, seminar_id: str, *, session: Any = None) -> list[SentReminder]:
        return sorted((r for s, r in self.sent.values() if s == seminar_id), key=lambda r: r.due_at)


class FakeScheduler:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}

    async def schedule(
        self,
        uow: Any,
        *,
        job_id: str,
        kind: str,
        group: str,
        due_at: datetime,
        payload: dict[str, Any] | None = None,
    ) -> None:
        self.jobs[job_id] = Job(job_id, kind, group, due_at, dict(payload or {}))

    async def schedule_many(self, uow: Any, jobs: Iterable[Job]) -> None:
        for job in jobs:
            self.jobs[job.id] = Job(job.id, job.kind, job.group, job.due_at, dict(job.payload))

    async def cancel_group(self, uow: Any, group: str, *, kind: str | None = None) -> None:
        for job_id, job in list(self.jobs.items()):
            if job.group == group and (kind is None or job.kind == kind):
                del self.jobs[job_id]

    def due(self, group: str) -> list[tuple[str, datetime]]:
        return sorted(
            ((j.id, j.due_at) for j in self.jobs.values() if j.group == group), key=lambda x: x[1]
        )


@dataclass
class World:
    service: SeminarService
    uow: FakeUowFactory
    seminars: FakeSeminars
    roster: FakeRoster
    attendance: FakeAttendance
    scheduler: FakeScheduler
    clock: list[datetime]

    def emitted(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.uow.emitted if isinstance(e, kind)]


@pytest.fixture
def world() -> World:
    clock = [NOW]
    uow = FakeUowFactory(clock=lambda: clock[0])
    seminars, roster, attendance, scheduler = (
        FakeSeminars(),
        FakeRoster(),
        FakeAttendance(),
        FakeScheduler(),
    )
    counter = itertools.count(1)
    service = SeminarService(
        seminars=seminars,  # type: ignore[arg-type]
        roster=roster,  # type: ignore[arg-type]
        attendance=attendance,  # type: ignore[arg-type]
        reminder_log=FakeReminderLog(),  # type: ignore[arg-type]
        uow=uow,  # type: ignore[arg-type]
        scheduler=scheduler,  # type: ignore[arg-type]
        reminder_offsets_minutes=[1440, 60],
        pseudonym_key=PSEUDONYM_KEY,
        new_id=lambda: f"sem-{next(counter)}",
    )
    return World(service, uow, seminars, roster, attendance, scheduler, clock)


def definition(start: datetime, **overrides: Any) -> domain.SeminarDefinition:
    values: dict[str, Any] = {
        "title": "Seminar",
        "kind": Kind.ONLINE_SEMINAR,
        "programme": Programme.ETWINNING,
        "theme": None,
        "language": "en",
        "timezone": "Europe/Brussels",
        "sessions": [(start, start + timedelta(hours=1))],
        "capacity": 30,
    }
    values.update(overrides)
    return domain.define_seminar(**values)


FUTURE = NOW + timedelta(days=3)
PAST = NOW - timedelta(days=30)


# ---- scheduling --------------------------------------------------------------------------


async def test_create_stores_emits_and_plans_reminders(world: World) -> None:
    seminar, created = await world.service.create(definition(FUTURE))
    assert created
    assert seminar.id == "sem-1"
    [event] = world.emitted(SeminarScheduled)
    assert event.seminar_id == "sem-1"
    assert event.year == 2026
    assert world.scheduler.due("sem-1") == [
        ("reminder:sem-1:0:1440", FUTURE - timedelta(days=1)),
        ("reminder:sem-1:0:60", FUTURE - timedelta(hours=1)),
    ]


async def test_create_with_an_id_is_idempotent_and_refuses_a_different_seminar(
    world: World,
) -> None:
    first, created = await world.service.create(definition(PAST), seminar_id="sem-x")
    again, created_again = await world.service.create(definition(PAST), seminar_id="sem-x")
    assert created
    assert not created_again
    assert again == first
    with pytest.raises(IdConflict):
        await world.service.create(definition(PAST, capacity=31), seminar_id="sem-x")
    assert len(world.emitted(SeminarScheduled)) == 1
    assert world.scheduler.jobs == {}  # past: no reminders


async def test_import_reports_each_row_and_stores_each_seminar_once(world: World) -> None:
    rows = [
        ImportRow(
            row=i + 1, line=i + 2, seminar_id=None, definition=definition(PAST + timedelta(hours=i))
        )
        for i in range(250)
    ]
    rows.append(ImportRow(row=251, line=252, seminar_id=None, definition=definition(PAST)))
    rows.append(ImportRow(row=252, line=253, seminar_id="x", definition=None, errors=["bad"]))
    trial = await world.service.import_season(rows, dry_run=True)
    assert [o.status for o in trial].count("created") == 250
    assert world.seminars.rows == {}
    assert world.uow.emitted == []

    outcomes = await world.service.import_season(rows, dry_run=False)
    assert [o.status for o in outcomes] == ["created"] * 250 + ["unchanged", "rejected"]
    assert outcomes[250].seminar_id == outcomes[0].seminar_id
    assert outcomes[250].errors == ["same seminar as row 1"]
    assert outcomes[251].errors == ["bad"]
    assert len(world.seminars.rows) == 250
    assert len(world.emitted(SeminarScheduled)) == 250
    assert world.uow.transactions == 3  # chunks of 100

    again = await world.service.import_season(rows, dry_run=False)
    assert [o.status for o in again][:251] == ["unchanged"] * 251
    assert len(world.emitted(SeminarScheduled)) == 250


# ---- lifecycle ---------------------------------------------------------------------------


async def test_reschedule_moves_reminders_and_emits_old_and_new(world: World) -> None:
    seminar, _ = await world.service.create(definition(FUTURE))
    later = FUTURE + timedelta(days=2)
    await world.service.reschedule(
        seminar.id, sessions=[(later, later + timedelta(hours=1))], capacity=None
    )
    [event] = world.emitted(SeminarRescheduled)
    assert event.old_sessions[0].starts_at == FUTURE
    assert event.new_sessions[0].starts_at == later
    assert (event.old_capacity, event.new_capacity) == (30, 30)
    assert [due for _, due in world.scheduler.due(seminar.id)] == [
        later - timedelta(days=1),
        later - timedelta(hours=1),
    ]
    # Within a day of the start now: the 24 h reminder is gone, the 1 h one moves.
    soon = NOW + timedelta(hours=5)
    await world.service.reschedule(
        seminar.id, sessions=[(soon, soon + timedelta(hours=1))], capacity=None
    )
    assert world.scheduler.due(seminar.id) == [
        (f"reminder:{seminar.id}:0:60", soon - timedelta(hours=1))
    ]
    await world.service.reschedule(
        seminar.id, sessions=[(soon, soon + timedelta(hours=1))], capacity=None
    )
    assert len(world.emitted(SeminarRescheduled)) == 2  # the same again changes nothing


async def test_cancel_and_complete_withdraw_reminders(world: World) -> None:
    kept, _ = await world.service.create(definition(FUTURE))
    cancelled, _ = await world.service.create(definition(FUTURE, title="B"))
    await world.service.cancel(cancelled.id, reason="no moderator")
    assert world.scheduler.due(cancelled.id) == []
    assert len(world.scheduler.due(kept.id)) == 2
    world.clock[0] = FUTURE + timedelta(minutes=5)
    await world.service.start(kept.id)
    completed = await world.service.complete(kept.id)
    assert completed.status is SeminarStatus.COMPLETED
    assert world.scheduler.jobs == {}
    with pytest.raises(IllegalTransition):
        await world.service.cancel(kept.id, reason=None)
    with pytest.raises(SeminarNotFound):
        await world.service.complete("sem-nope")


# ---- attendance --------------------------------------------------------------------------


async def test_attendance_in_one_insert_chunked_events_and_completion_list(world: World) -> None:
    seminar, _ = await world.service.create(definition(PAST))
    people = [f"p{i:04d}" for i in range(2500)]
    await world.roster.put_many(
        [RosterEntry(seminar.id, person, RosterStatus.CONFIRMED, 1, None) for person in people],
        now=NOW,
        session=None,
    )
    result = await world.service.record_attendance(seminar.id, [*people, "stranger", people[0]])
    assert result.decision.recorded == people
    assert result.decision.rejected == {"stranger": "not_registered"}
    assert result.attendee_count == 2500
    assert world.attendance.inserts == 1
    events = world.emitted(AttendanceRecorded)
    assert [len(e.participant_ids) for e in events] == [1000, 1000, 500]
    again = await world.service.record_attendance(seminar.id, people[:10])
    assert again.decision.already_recorded == people[:10]
    assert len(world.emitted(AttendanceRecorded)) == 3
    await world.service.complete(seminar.id)
    [completion] = world.emitted(SeminarCompleted)
    assert completion.attendee_ids == people
    assert world.seminars.rows[seminar.id].attendee_count == 2500


# ---- consumed events ---------------------------------------------------------------------


async def test_roster_keeps_the_newest_version_and_erased_people_stay_erased(world: World) -> None:
    uow = FakeUow(NOW)

    async def apply(participant: str, status: RosterStatus, version: int) -> None:
        entry = RosterEntry(
            seminar_id="sem-1",
            participant_id=participant,
            registration_id=f"reg-{participant}",
            status=status,
            version=version,
        )
        await world.service.apply_registrations(uow, [entry])  # type: ignore[arg-type]

    await apply("a", RosterStatus.CANCELLED, 3)
    await apply("a", RosterStatus.CONFIRMED, 2)  # older: ignored
    await apply("a", RosterStatus.CANCELLED, 3)  # same: ignored
    assert world.roster.entries[("sem-1", "a")].status is RosterStatus.CANCELLED
    await apply("b", RosterStatus.CONFIRMED, 1)
    await world.service.erase_participant(uow, "b")  # type: ignore[arg-type]
    await world.service.erase_participant(uow, "b")  # type: ignore[arg-type]
    pseudonym = privacy.pseudonym("b", key=PSEUDONYM_KEY)
    assert ("sem-1", "b") not in world.roster.entries
    await apply("b", RosterStatus.CANCELLED, 2)  # late: lands on the pseudonym
    assert ("sem-1", "b") not in world.roster.entries
    assert world.roster.entries[("sem-1", pseudonym)].status is RosterStatus.CANCELLED


async def test_a_due_reminder_is_emitted_unless_the_seminar_is_off(world: World) -> None:
    seminar, _ = await world.service.create(definition(FUTURE))
    [day_before, _hour_before] = [
        world.scheduler.jobs[j] for j, _ in world.scheduler.due(seminar.id)
    ]
    uow = FakeUow(day_before.due_at)
    await world.service.send_reminder(day_before, uow)  # type: ignore[arg-type]
    [reminder] = uow.outgoing
    assert isinstance(reminder, SeminarReminderDue)
    assert reminder.offset_minutes == 1440
    assert reminder.session_starts_at == FUTURE
    await world.service.cancel(seminar.id, reason=None)
    late = FakeUow(day_before.due_at)
    await world.service.send_reminder(day_before, late)  # type: ignore[arg-type]
    assert late.outgoing == []
