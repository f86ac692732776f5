"""In-memory fakes of the feedback service's repositories, unit of work and scheduler,
for handler tests without a database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from pymongo.errors import DuplicateKeyError

from feedback.domain import (
    EvaluationWindow,
    FormRef,
    FormVersion,
    Response,
    SeminarEvaluation,
)
from feedback.handlers import FeedbackService, WindowPolicy
from feedback.repository import FormExists, pair_id
from seminarops_shared.events import Event, ReceivedEvent, envelope_for
from seminarops_shared.events.vocabulary import Kind, Programme

T = TypeVar("T")
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PSEUDONYM_KEY = b"feedback-unit-test-pseudonym-key"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class FakeUoW:
    def __init__(self, now: datetime) -> None:
        self.session = None
        self.now = now
        self.emitted: list[Event] = []

    def emit(self, data: Event) -> None:
        self.emitted.append(data)


class FakeUoWFactory:
    """Runs work like the real one; emitted events of committed work are kept."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.emitted: list[Event] = []

    def begin(self) -> FakeUoW:
        return FakeUoW(self._clock())

    async def run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        uow = self.begin()
        result = await work(uow)
        self.emitted.extend(uow.emitted)
        return result


class FakeScheduler:
    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}

    async def schedule(
        self, uow: Any, *, job_id: str, kind: str, group: str, due_at: datetime, payload: Any = None
    ) -> None:
        self.jobs[job_id] = {"kind": kind, "group": group, "due_at": due_at, "payload": payload}

    async def cancel(self, uow: Any, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            self.jobs.pop(job_id, None)


class FakeForms:
    def __init__(self) -> None:
        self.versions: dict[tuple[str, int], FormVersion] = {}
        self.assignments: dict[str, FormRef] = {}

    async def ensure_exists(self, form: FormVersion) -> None:
        self.versions.setdefault((form.form_id, form.version), form)

    async def create(self, form: FormVersion, *, session: Any) -> None:
        if any(f == form.form_id for f, _ in self.versions):
            raise FormExists(form.form_id)
        self.versions[(form.form_id, 1)] = form

    async def add_version(self, form: FormVersion, *, session: Any) -> bool:
        latest = await self.get(form.form_id)
        if latest is None or latest.version != form.version - 1:
            return False
        self.versions[(form.form_id, form.version)] = form
        return True

    async def get(
        self, form_id: str, version: int | None = None, *, session: Any = None
    ) -> FormVersion | None:
        if version is not None:
            return self.versions.get((form_id, version))
        mine = [f for (i, _), f in self.versions.items() if i == form_id]
        return max(mine, key=lambda f: f.version) if mine else None

    async def summaries(self) -> list[dict[str, Any]]:
        latest: dict[str, FormVersion] = {}
        for (i, _), f in sorted(self.versions.items()):
            latest[i] = f
        return [
            {"_id": i, "latest_version": f.version, "title": f.title, "anonymous": f.anonymous}
            for i, f in latest.items()
        ]

    async def assign(self, target: str, ref: FormRef, *, now: datetime, session: Any) -> None:
        self.assignments[target] = ref

    async def assignment(self, target: str, *, session: Any = None) -> FormRef | None:
        return self.assignments.get(target)


@dataclass
class Attendee:
    invited: bool = False
    erased: bool = False


class FakeEvaluations:
    def __init__(self) -> None:
        self.seminars: dict[str, SeminarEvaluation] = {}
        self.attendees: dict[tuple[str, str], Attendee] = {}
        self.erasures: set[str] = set()

    async def get(self, seminar_id: str, *, session: Any = None) -> SeminarEvaluation | None:
        return self.seminars.get(seminar_id)

    async def ensure_seminar(
        self,
        *,
        seminar_id: str,
        kind: Kind,
        programme: Programme,
        year: int,
        now: datetime,
        session: Any,
    ) -> None:
        self.seminars.setdefault(seminar_id, SeminarEvaluation(seminar_id, kind, programme, year))

    async def add_attendees(
        self, seminar_id: str, people: Sequence[tuple[str, bool]], *, now: datetime, session: Any
    ) -> list[str]:
        fresh = [(p, e) for p, e in people if (seminar_id, p) not in self.attendees]
        for p, erased in fresh:
            self.attendees[(seminar_id, p)] = Attendee(erased=erased)
        s = self.seminars[seminar_id]
        self.seminars[seminar_id] = replace(s, attendee_count=s.attendee_count + len(fresh))
        return [p for p, _ in fresh]

    async def open_window(
        self,
        seminar_id: str,
        *,
        window: EvaluationWindow,
        form: FormVersion,
        completed_at: datetime,
        session: Any,
    ) -> None:
        self.seminars[seminar_id] = replace(
            self.seminars[seminar_id],
            window=window,
            form=FormRef(form.form_id, form.version),
            anonymous=form.anonymous,
        )

    async def mark_closed(
        self, seminar_id: str, *, response_count: int, now: datetime, session: Any
    ) -> bool:
        s = self.seminars[seminar_id]
        if s.closed:
            return False
        self.seminars[seminar_id] = replace(s, closed=True, closed_at=now)
        return True

    async def mark_reminded(
        self, seminar_id: str, *, count: int, now: datetime, session: Any
    ) -> None:
        self.seminars[seminar_id] = replace(
            self.seminars[seminar_id], reminded_at=now, reminded_count=count
        )

    async def uninvited(self, seminar_id: str, *, session: Any) -> list[str]:
        return sorted(
            p
            for (s, p), a in self.attendees.items()
            if s == seminar_id and not a.invited and not a.erased
        )

    async def mark_invited(
        self, seminar_id: str, participant_ids: Sequence[str], *, session: Any
    ) -> None:
        for p in participant_ids:
            self.attendees[(seminar_id, p)].invited = True

    async def attendee_ids(
        self, seminar_id: str, *, include_erased: bool = True, session: Any = None
    ) -> list[str]:
        return [
            p
            for (s, p), a in self.attendees.items()
            if s == seminar_id and (include_erased or not a.erased)
        ]

    async def is_attendee(
        self, seminar_id: str, participant_id: str, *, session: Any = None
    ) -> bool:
        entry = self.attendees.get((seminar_id, participant_id))
        return entry is not None and not entry.erased

    async def completed(self, **filters: Any) -> list[SeminarEvaluation]:
        return [
            s
            for s in self.seminars.values()
            if s.window is not None
            and all(v is None or getattr(s, k) == v for k, v in filters.items())
        ]

    async def erased_among(self, pseudonyms: Iterable[str], *, session: Any) -> set[str]:
        return set(pseudonyms) & self.erasures

    async def record_erasure(self, pseudonym: str, *, now: datetime, session: Any) -> None:
        self.erasures.add(pseudonym)

    async def pseudonymise_attendees(
        self, participant_id: str, pseudonym: str, *, session: Any
    ) -> int:
        mine = [(s, p) for (s, p) in self.attendees if p == participant_id]
        for s, p in mine:
            entry = self.attendees.pop((s, p))
            self.attendees[(s, pseudonym)] = Attendee(invited=entry.invited, erased=True)
        return len(mine)


class FakeResponses:
    def __init__(self) -> None:
        self.responses: dict[str, Response] = {}
        self.markers: dict[str, tuple[str, str]] = {}

    async def has_responded(
        self, seminar_id: str, participant_id: str, *, session: Any = None
    ) -> bool:
        return pair_id(seminar_id, participant_id) in self.markers

    async def record(self, response: Response, *, participant_id: str, session: Any) -> None:
        key = pair_id(response.seminar_id, participant_id)
        if key in self.markers:
            raise DuplicateKeyError("E11000 duplicate key")
        self.markers[key] = (response.seminar_id, participant_id)
        self.responses[response.evaluation_id] = response

    async def count(self, seminar_id: str, *, session: Any = None) -> int:
        return sum(1 for s, _ in self.markers.values() if s == seminar_id)

    async def counts(self, seminar_ids: Sequence[str]) -> dict[str, int]:
        return {s: await self.count(s) for s in seminar_ids}

    async def respondent_ids(self, seminar_id: str, *, session: Any = None) -> list[str]:
        return [p for s, p in self.markers.values() if s == seminar_id]

    async def form_versions_in(self, **filters: Any) -> list[tuple[str, int]]:
        return sorted({(r.form_id, r.form_version) async for r in self.find(**filters)})

    async def find(
        self,
        *,
        seminar_id: str | None = None,
        kind: Kind | None = None,
        year: int | None = None,
        programme: Programme | None = None,
    ) -> AsyncIterator[Response]:
        for r in sorted(self.responses.values(), key=lambda r: (r.seminar_id, r.evaluation_id)):
            if seminar_id not in (None, r.seminar_id) or kind not in (None, r.kind):
                continue
            if year not in (None, r.year) or programme not in (None, r.programme):
                continue
            yield r

    async def pseudonymise(self, participant_id: str, pseudonym: str, *, session: Any) -> int:
        changed = 0
        for key, r in list(self.responses.items()):
            if r.participant_id == participant_id:
                self.responses[key] = replace(r, participant_id=pseudonym)
                changed += 1
        for key, (s, p) in list(self.markers.items()):
            if p == participant_id:
                del self.markers[key]
                self.markers[pair_id(s, pseudonym)] = (s, pseudonym)
                changed += 1
        return changed


@dataclass
class World:
    clock: Clock
    forms: FakeForms
    evaluations: FakeEvaluations
    responses: FakeResponses
    uow: FakeUoWFactory
    scheduler: FakeScheduler
    service: FeedbackService
    ids: list[str] = field(default_factory=list)
    pseudonym_key: bytes = PSEUDONYM_KEY

    async def deliver(self, data: Event, *, time: datetime | None = None) -> list[Event]:
        """Hand an event to the matching consumer handler; returns what it emitted."""
        envelope = envelope_for(data, source="/services/seminar", time=time or self.clock())
        handlers = {
            "seminar.completed.v1": self.service.on_seminar_completed,
            "attendance.recorded.v1": self.service.on_attendance_recorded,
            "participant.erased.v1": self.service.on_participant_erased,
        }
        uow = self.uow.begin()
        await handlers[data.event_type](ReceivedEvent(envelope=envelope, data=data), uow)  # type: ignore[arg-type]
        self.uow.emitted.extend(uow.emitted)
        return uow.emitted

    async def run_job(self, job_id: str) -> list[Event]:
        from seminarops_shared.scheduler import Job

        spec = self.scheduler.jobs.pop(job_id)
        job = Job(
            id=job_id,
            kind=spec["kind"],
            group=spec["group"],
            due_at=spec["due_at"],
            payload=spec["payload"],
        )
        handler = (
            self.service.on_reminder_due
            if spec["kind"] == "feedback.remind"
            else self.service.on_close_due
        )
        uow = self.uow.begin()
        await handler(job, uow)  # type: ignore[arg-type]
        self.uow.emitted.extend(uow.emitted)
        return uow.emitted

    def advance(self, delta: timedelta) -> None:
        self.clock.now += delta


@pytest.fixture
async def world() -> World:
    clock = Clock()
    forms, evaluations, responses = FakeForms(), FakeEvaluations(), FakeResponses()
    uow, scheduler = FakeUoWFactory(clock), FakeScheduler()
    counter = iter(range(1, 1_000_000))
    service = FeedbackService(
        forms=forms,  # type: ignore[arg-type]
        evaluations=evaluations,  # type: ignore[arg-type]
        responses=responses,  # type: ignore[arg-type]
        uow=uow,  # type: ignore[arg-type]
        scheduler=scheduler,  # type: ignore[arg-type]
        clock=clock,
        policy=WindowPolicy(
            days=14, reminder_before_close=timedelta(hours=48), close_grace=timedelta(seconds=60)
        ),
        pseudonym_key=PSEUDONYM_KEY,
        new_id=lambda: f"eval-{next(counter)}",
    )
    await service.ensure_default_forms()
    return World(clock, forms, evaluations, responses, uow, scheduler, service)
