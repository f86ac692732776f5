"""Use cases with in-memory fakes: what each handler stores, emits and schedules."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from feedback.domain import (
    AlreadyEvaluated,
    FormRef,
    FormVersion,
    InvalidAnswers,
    NotAnAttendee,
    Question,
    QuestionType,
    WindowClosed,
    WindowNotOpen,
)
from feedback.handlers import Conflict, NotFound
from seminarops_shared.clock import utc_now
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
from seminarops_shared.scheduler import Job

if TYPE_CHECKING:
    from conftest import World


def completed(
    *attendees: str, sid: str = "s1", kind: Kind = Kind.ONLINE_SEMINAR
) -> SeminarCompleted:
    return SeminarCompleted(
        seminar_id=sid,
        kind=kind,
        programme=Programme.ETWINNING,
        year=2026,
        attendee_ids=list(attendees),
    )


def attended(*people: str, sid: str = "s1") -> AttendanceRecorded:
    return AttendanceRecorded(
        seminar_id=sid,
        kind=Kind.ONLINE_SEMINAR,
        programme=Programme.ETWINNING,
        year=2026,
        participant_ids=list(people),
    )


def form_ref(form: FormVersion) -> FormRef:
    return FormRef(form.form_id, form.version)


def of_type(events: list, cls: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, cls)]


async def submit(world: World, participant: str, sid: str = "s1", **answers: object) -> object:
    return await world.service.submit(
        seminar_id=sid,
        participant_id=participant,
        overall=Rating.VERY_GOOD,
        comments=None,
        answers=answers or {"content": 4},
    )


async def test_completion_opens_the_window_invites_and_schedules(world: World) -> None:
    completed_at = world.clock.now - timedelta(hours=2)
    out = await world.deliver(completed("a", "b", "a"), time=completed_at)
    [opened] = of_type(out, EvaluationWindowOpened)
    assert opened.attendee_count == 2
    assert opened.closes_at == completed_at + timedelta(days=14)
    assert (opened.form_id, opened.form_version, opened.anonymous) == (
        "default-online-seminar",
        1,
        False,
    )
    assert sorted(e.participant_id for e in of_type(out, EvaluationInvited)) == ["a", "b"]
    assert world.scheduler.jobs["feedback.remind:s1"]["due_at"] == completed_at + timedelta(days=12)
    assert world.scheduler.jobs["feedback.close:s1"]["due_at"] == completed_at + timedelta(
        days=14, seconds=60
    )


async def test_a_second_completion_never_moves_the_window_and_invites_only_newcomers(
    world: World,
) -> None:
    await world.deliver(completed("a", "b"))
    first = world.evaluations.seminars["s1"].window
    world.advance(timedelta(days=1))
    out = await world.deliver(completed("a", "b", "c"))
    assert world.evaluations.seminars["s1"].window == first
    assert not of_type(out, EvaluationWindowOpened)
    assert [e.participant_id for e in of_type(out, EvaluationInvited)] == ["c"]


async def test_attendance_before_completion_is_recorded_and_invited_on_completion(
    world: World,
) -> None:
    assert await world.deliver(attended("a", "b")) == []
    assert world.evaluations.seminars["s1"].attendee_count == 2
    out = await world.deliver(completed("b", "c"))
    assert sorted(e.participant_id for e in of_type(out, EvaluationInvited)) == ["a", "b", "c"]
    late = await world.deliver(attended("c", "d"))
    assert [e.participant_id for e in of_type(late, EvaluationInvited)] == ["d"]
    assert world.evaluations.seminars["s1"].attendee_count == 4


async def test_a_stale_completion_opens_and_closes_at_once(world: World) -> None:
    out = await world.deliver(completed("a"), time=world.clock.now - timedelta(days=15))
    assert [type(e) for e in out] == [EvaluationWindowOpened, EvaluationWindowClosed]
    assert world.scheduler.jobs == {}
    with pytest.raises(WindowClosed):
        await submit(world, "a")


async def test_reminder_goes_to_non_respondents_only_and_close_counts_once(world: World) -> None:
    await world.deliver(completed("a", "b", "c", "d"))
    await submit(world, "b")
    await world.deliver(ParticipantErased(participant_id="d", erased_at=utc_now()))
    world.advance(timedelta(days=12, seconds=1))
    reminders = await world.run_job("feedback.remind:s1")
    assert sorted(e.participant_id for e in of_type(reminders, EvaluationReminderDue)) == ["a", "c"]
    world.advance(timedelta(days=2))
    [closed] = await world.run_job("feedback.close:s1")
    assert isinstance(closed, EvaluationWindowClosed)
    assert (closed.attendee_count, closed.response_count) == (4, 1)
    again = world.uow.begin()
    job = Job(
        id="x",
        kind="feedback.close",
        group="s1",
        due_at=world.clock.now,
        payload={"seminar_id": "s1"},
    )
    await world.service.on_close_due(job, again)  # type: ignore[arg-type]
    assert again.emitted == []
    assert len(of_type(world.uow.emitted, EvaluationWindowClosed)) == 1


async def test_a_reminder_after_the_close_sends_nothing(world: World) -> None:
    await world.deliver(completed("a"))
    world.advance(timedelta(days=15))
    assert await world.run_job("feedback.remind:s1") == []


async def test_submission_stores_once_and_emits_without_free_text(world: World) -> None:
    await world.deliver(completed("a", "b"))
    response = await world.service.submit(
        seminar_id="s1",
        participant_id="a",
        overall=Rating.EXCELLENT,
        comments="secret words",
        answers={"content": 5, "recommend": True},
    )
    [event] = of_type(world.uow.emitted, EvaluationSubmitted)
    assert event.participant_id == "a"
    assert (event.overall, event.kind, event.year, event.evaluation_id) == (
        Rating.EXCELLENT,
        Kind.ONLINE_SEMINAR,
        2026,
        response.evaluation_id,  # type: ignore[attr-defined]
    )
    assert "secret" not in event.model_dump_json()
    with pytest.raises(AlreadyEvaluated):
        await submit(world, "a")
    with pytest.raises(AlreadyEvaluated):  # a repeat is a repeat, whatever its answers
        await submit(world, "a", content=7)
    with pytest.raises(NotAnAttendee):
        await submit(world, "stranger")
    with pytest.raises(WindowNotOpen):
        await submit(world, "a", sid="unknown")
    with pytest.raises(InvalidAnswers):
        await submit(world, "b", content=7)
    assert len(world.responses.responses) == 1
    assert len(of_type(world.uow.emitted, EvaluationSubmitted)) == 1


async def test_anonymous_submission_event_and_response_name_nobody(world: World) -> None:
    form = await world.service.create_form(
        form_id="anon",
        title="Anonymous",
        description=None,
        anonymous=True,
        questions=[Question("q", QuestionType.YES_NO, "Q?")],
    )
    await world.service.assign_to_seminar("s1", form_ref(form))
    await world.deliver(completed("a"))
    await submit(world, "a", q=True)
    [event] = of_type(world.uow.emitted, EvaluationSubmitted)
    assert event.participant_id is None
    assert event.anonymous is True
    [stored] = world.responses.responses.values()
    assert stored.participant_id is None
    with pytest.raises(AlreadyEvaluated):
        await submit(world, "a", q=False)
    with pytest.raises(Conflict, match="anonymous"):
        await world.service.non_respondents("s1")


async def test_erasure_keeps_counts_and_later_attendance_stays_pseudonymous(world: World) -> None:
    await world.deliver(completed("a", "b"))
    await submit(world, "a")
    await world.deliver(ParticipantErased(participant_id="a", erased_at=utc_now()))
    alias = pseudonym("a", key=world.pseudonym_key)
    assert {r.participant_id for r in world.responses.responses.values()} == {alias}
    assert await world.responses.count("s1") == 1
    assert sorted(await world.evaluations.attendee_ids("s1")) == sorted([alias, "b"])
    with pytest.raises(NotAnAttendee):  # neither under the id nor under the pseudonym
        await submit(world, alias)
    with pytest.raises(NotAnAttendee):
        await submit(world, "a")
    out = await world.deliver(attended("a"))
    assert out == []
    assert world.evaluations.seminars["s1"].attendee_count == 2
    rate = await world.service.seminar_rate("s1")
    assert (rate.responses, rate.seminar.attendee_count) == (1, 2)


async def test_forms_are_versioned_and_windows_pin_the_version(world: World) -> None:
    form = await world.service.create_form(
        form_id="mine", title="Mine", description=None, anonymous=False, questions=[]
    )
    with pytest.raises(Conflict):
        await world.service.create_form(
            form_id="mine", title="x", description=None, anonymous=False, questions=[]
        )
    await world.service.assign_to_kind(Kind.ONLINE_SEMINAR, form_ref(form))
    await world.deliver(completed("a"))
    v2 = await world.service.update_form(
        "mine",
        title="Mine 2",
        description=None,
        anonymous=False,
        questions=[Question("x", QuestionType.YES_NO, "X")],
    )
    assert v2.version == 2
    assert (await world.service.form("mine", 1)).questions == ()
    assert (await world.service.seminar_form("s1")).version == 1
    with pytest.raises(Conflict, match="already open"):
        await world.service.assign_to_seminar("s1", form_ref(v2))
    with pytest.raises(NotFound):
        await world.service.update_form(
            "nope", title="x", description=None, anonymous=False, questions=[]
        )
    rows = await world.service.rates(year=2026)
    assert [(r.kind, r.attendees, r.responses) for r in rows] == [("online_seminar", 1, 0)]


async def test_export_lists_responses_with_their_answers(world: World) -> None:
    await world.deliver(completed("a", "b"))
    await world.service.submit(
        seminar_id="s1",
        participant_id="a",
        overall=Rating.GOOD,
        comments="ok",
        answers={"content": 2},
    )
    chunks = [c async for c in world.service.export_csv(seminar_id="s1")]
    assert len(chunks) == 2
    assert "answer.content" in chunks[0]
    assert ",a," in chunks[1]
    assert ",good,ok,2," in chunks[1]
