"""Domain rules: answers against forms, form definitions, the window, pseudonyms."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from feedback.domain import (
    AlreadyEvaluated,
    EvaluationWindow,
    FormRef,
    FormVersion,
    InvalidAnswers,
    InvalidForm,
    NotAnAttendee,
    Question,
    QuestionType,
    SeminarEvaluation,
    Step,
    StepStatus,
    WindowClosed,
    WindowNotOpen,
    WindowState,
    check_can_submit,
    check_questions,
    choose_form,
    close_job_at,
    default_form,
    evaluation_plan,
    make_response,
    non_respondents,
    open_window,
    reminder_at,
    response_rate_pct,
    validate_answers,
)
from feedback.export import answer_columns, header, row
from seminarops_shared.csv_cells import safe_cell
from seminarops_shared.events.vocabulary import Kind, Programme, Rating

T0 = datetime(2026, 5, 4, 15, 30, tzinfo=UTC)

FORM = FormVersion(
    form_id="f",
    version=3,
    title="t",
    questions=(
        Question("score", QuestionType.RATING, "Score", required=True),
        Question("pick", QuestionType.SINGLE_CHOICE, "Pick", options=("a", "b")),
        Question("many", QuestionType.MULTIPLE_CHOICE, "Many", options=("x", "y", "z")),
        Question("yes", QuestionType.YES_NO, "Yes?"),
        Question("text", QuestionType.FREE_TEXT, "Text", max_length=5),
        Question("must_text", QuestionType.FREE_TEXT, "Say", required=True),
        Question("must_many", QuestionType.MULTIPLE_CHOICE, "M", options=("x", "y"), required=True),
    ),
)
VALID = {"score": 3, "must_text": "hi", "must_many": ["y"]}


def problems(answers: dict[str, object]) -> dict[str, str]:
    with pytest.raises(InvalidAnswers) as caught:
        validate_answers(FORM, answers)
    return {p.where: p.message for p in caught.value.problems}


# ---- answers -----------------------------------------------------------------------------


def test_valid_answers_are_returned_normalised() -> None:
    full = {**VALID, "pick": "b", "many": ["z", "x"], "yes": False, "text": "short", "score": 5}
    assert validate_answers(FORM, full) == full
    assert validate_answers(FORM, {**VALID, "pick": None}) == VALID  # null: not answered


@pytest.mark.parametrize(
    ("answers", "where", "fragment"),
    [
        ({"must_text": "hi", "must_many": ["y"]}, "score", "required"),
        ({**VALID, "score": None}, "score", "required"),
        ({**VALID, "must_text": "   "}, "must_text", "blank"),
        ({**VALID, "must_many": []}, "must_many", "at least one"),
        ({**VALID, "score": 0}, "score", "out of range"),
        ({**VALID, "score": 6}, "score", "out of range"),
        ({**VALID, "score": 2.0}, "score", "whole number"),
        ({**VALID, "score": "3"}, "score", "whole number"),
        ({**VALID, "score": True}, "score", "whole number"),
        ({**VALID, "pick": "c"}, "pick", "not one of the options"),
        ({**VALID, "pick": 1}, "pick", "single choice"),
        ({**VALID, "many": "x"}, "many", "list of options"),
        ({**VALID, "many": ["x", 1]}, "many", "list of options"),
        ({**VALID, "many": ["x", "w"]}, "many", "not among the options"),
        ({**VALID, "many": ["x", "x"]}, "many", "more than once"),
        ({**VALID, "yes": "yes"}, "yes", "true or false"),
        ({**VALID, "yes": 1}, "yes", "true or false"),
        ({**VALID, "text": "toolong"}, "text", "at most 5"),
        ({**VALID, "text": ["a"]}, "text", "string"),
        ({**VALID, "nope": 1}, "nope", "unknown question id"),
        ({**VALID, "overall": "excellent"}, "overall", "top-level"),
    ],
)
def test_each_kind_of_bad_answer_is_named(
    answers: dict[str, object], where: str, fragment: str
) -> None:
    found = problems(answers)
    assert where in found, found
    assert fragment in found[where]


def test_every_problem_is_reported_once() -> None:
    found = problems({"score": 9, "pick": "q", "ghost": 1})
    assert set(found) == {"score", "pick", "ghost", "must_text", "must_many"}
    assert "out of range" in found["score"]  # not also "not answered"


def test_unknown_question_message_lists_the_form_questions() -> None:
    assert "score, pick" in problems({**VALID, "nope": 1})["nope"]


# ---- forms -------------------------------------------------------------------------------


def test_default_forms_start_with_the_overall_rating_and_are_valid() -> None:
    for kind in Kind:
        form = default_form(kind, now=T0)
        first = form.all_questions[0]
        assert (first.id, first.type, first.required) == ("overall", QuestionType.OVERALL, True)
        assert first.options == ("excellent", "very_good", "good", "fair", "poor")
        assert check_questions(form.questions) == form.questions
        assert form.form_id == f"default-{kind.value.replace('_', '-')}"
        assert form.version == 1


def test_a_form_read_back_with_its_overall_question_can_be_written_again() -> None:
    form = default_form(Kind.PD_WORKSHOP, now=T0)
    assert check_questions(form.all_questions) == form.questions


@pytest.mark.parametrize(
    ("questions", "fragment"),
    [
        ([Question("a", QuestionType.SINGLE_CHOICE, "A", options=("x",))], "2 to 50 options"),
        ([Question("a", QuestionType.MULTIPLE_CHOICE, "A", options=("x", "x"))], "distinct"),
        ([Question("a", QuestionType.SINGLE_CHOICE, "A", options=("x", " "))], "blank"),
        ([Question("a", QuestionType.RATING, "A", options=("x", "y"))], "only choice"),
        ([Question("a", QuestionType.RATING, "A", max_length=3)], "only free_text"),
        ([Question("a", QuestionType.FREE_TEXT, "A", max_length=0)], "max_length"),
        ([Question("a", QuestionType.YES_NO, "A")] * 2, "duplicate"),
        ([Question("A-1", QuestionType.YES_NO, "A")], "id must match"),
        ([Question("a", QuestionType.YES_NO, " ")], "blank"),
        ([Question("b", QuestionType.OVERALL, "B")], "overall"),
        (
            [
                Question("a", QuestionType.YES_NO, "A"),
                Question("overall", QuestionType.RATING, "O"),
            ],
            "overall",
        ),
        ([Question("overall", QuestionType.RATING, "O")], "reserved"),
    ],
)
def test_bad_form_definitions_are_refused(questions: list[Question], fragment: str) -> None:
    with pytest.raises(InvalidForm) as caught:
        check_questions(questions)
    assert fragment in str(caught.value)


def test_form_choice_prefers_seminar_then_kind_then_default() -> None:
    own, for_kind = FormRef("own", 2), FormRef("kind")
    assert (
        choose_form(seminar_assignment=own, kind_assignment=for_kind, kind=Kind.PD_WORKSHOP) == own
    )
    assert (
        choose_form(seminar_assignment=None, kind_assignment=for_kind, kind=Kind.PD_WORKSHOP)
        == for_kind
    )
    assert choose_form(
        seminar_assignment=None, kind_assignment=None, kind=Kind.PD_WORKSHOP
    ) == FormRef("default-pd-workshop")


# ---- the window --------------------------------------------------------------------------


def test_window_opens_at_completion_and_lasts_the_configured_days() -> None:
    window = open_window(completed_at=T0, now=T0 + timedelta(hours=3), days=14)
    assert window == EvaluationWindow(T0, T0 + timedelta(days=14))
    assert window.state(T0 - timedelta(microseconds=1000)) is WindowState.NOT_OPEN
    assert window.state(T0) is WindowState.OPEN
    assert window.state(T0 + timedelta(days=14) - timedelta(milliseconds=1)) is WindowState.OPEN
    assert window.state(T0 + timedelta(days=14)) is WindowState.CLOSED


def test_window_from_a_completion_in_the_future_starts_now() -> None:
    window = open_window(completed_at=T0 + timedelta(hours=1), now=T0, days=2.5)
    assert (window.opens_at, window.closes_at) == (T0, T0 + timedelta(days=2, hours=12))


def test_window_times_are_utc_and_whole_milliseconds() -> None:
    cet = timezone(timedelta(hours=1))
    window = open_window(
        completed_at=datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=cet), now=T0, days=1
    )
    assert window.opens_at == datetime(2026, 1, 1, 9, 0, 0, 123000, tzinfo=UTC)
    assert window.opens_at.tzinfo == UTC


def test_window_refuses_naive_times_and_empty_lengths() -> None:
    with pytest.raises(ValueError, match="naive"):
        open_window(completed_at=datetime(2026, 1, 1), now=T0, days=1)  # noqa: DTZ001
    with pytest.raises(ValueError, match="positive"):
        open_window(completed_at=T0, now=T0, days=0)


def test_a_window_older_than_its_length_is_closed_on_arrival() -> None:
    window = open_window(completed_at=T0 - timedelta(days=20), now=T0, days=14)
    assert window.state(T0) is WindowState.CLOSED


def test_reminder_comes_before_close_and_only_inside_the_window() -> None:
    window = EvaluationWindow(T0, T0 + timedelta(days=14))
    assert reminder_at(window, before_close=timedelta(hours=48)) == T0 + timedelta(days=12)
    assert reminder_at(window, before_close=timedelta(days=14)) is None
    assert reminder_at(window, before_close=timedelta(0)) is None
    assert close_job_at(window, grace=timedelta(seconds=60)) == T0 + timedelta(days=14, minutes=1)


# ---- submissions -------------------------------------------------------------------------


def seminar(**changes: object) -> SeminarEvaluation:
    base = SeminarEvaluation(
        "s1",
        Kind.ONLINE_SEMINAR,
        Programme.ETWINNING,
        2026,
        attendee_count=3,
        window=EvaluationWindow(T0, T0 + timedelta(days=14)),
        form=FormRef("f", 3),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_submission_rules_in_order() -> None:
    ok = {"seminar_id": "s1", "participant_id": "p", "is_attendee": True, "has_responded": False}
    assert check_can_submit(seminar=seminar(), now=T0, **ok) == seminar()  # type: ignore[arg-type]
    with pytest.raises(WindowNotOpen, match="opens when the seminar is completed"):
        check_can_submit(seminar=None, now=T0, **ok)  # type: ignore[arg-type]
    with pytest.raises(WindowNotOpen, match="opens at"):
        check_can_submit(seminar=seminar(), now=T0 - timedelta(seconds=1), **ok)  # type: ignore[arg-type]
    with pytest.raises(WindowClosed, match="closed at"):
        check_can_submit(
            seminar=seminar(), now=T0 + timedelta(days=14), **{**ok, "is_attendee": False}
        )  # type: ignore[arg-type]
    with pytest.raises(NotAnAttendee):
        check_can_submit(seminar=seminar(), now=T0, **{**ok, "is_attendee": False})  # type: ignore[arg-type]
    with pytest.raises(AlreadyEvaluated):
        check_can_submit(seminar=seminar(), now=T0, **{**ok, "has_responded": True})  # type: ignore[arg-type]


def test_an_anonymous_response_names_nobody_and_keeps_only_the_day() -> None:
    anonymous = FormVersion("f", 3, "t", questions=FORM.questions, anonymous=True)
    response = make_response(
        evaluation_id="e1",
        seminar=seminar(),
        form=anonymous,
        participant_id="p",
        overall=Rating.GOOD,
        comments="  ",
        answers=VALID,
        now=T0 + timedelta(hours=2, minutes=7),
    )
    assert response.participant_id is None
    assert response.submitted_at == datetime(2026, 5, 4, tzinfo=UTC)
    assert response.comments is None
    named = make_response(
        evaluation_id="e2",
        seminar=seminar(),
        form=FORM,
        participant_id="p",
        overall=Rating.GOOD,
        comments="fine",
        answers=VALID,
        now=T0,
    )
    assert (named.participant_id, named.submitted_at, named.form_version) == ("p", T0, 3)


def test_rates_and_non_respondents() -> None:
    assert response_rate_pct(250, 400) == 62.5
    assert response_rate_pct(2, 3) == 66.7
    assert response_rate_pct(0, 0) is None
    assert non_respondents(["c", "a", "b", "a"], ["b"]) == ["a", "c"]


def test_csv_rows_escape_formulas_and_hide_anonymous_people() -> None:
    anonymous = FormVersion("f", 3, "t", questions=FORM.questions, anonymous=True)
    response = make_response(
        evaluation_id="e1",
        seminar=seminar(),
        form=anonymous,
        participant_id="p",
        overall=Rating.GOOD,
        comments="=cmd()",
        answers={**VALID, "many": ["x", "z"], "yes": True},
        now=T0,
    )
    columns = answer_columns([FORM, default_form(Kind.ONLINE_SEMINAR, now=T0)])
    assert columns[:3] == ["score", "pick", "many"]
    assert len(columns) == len(set(columns))
    line = row(response, columns)
    assert ",,2026-05-04,good,'=cmd()," in line
    assert "x; z" in line
    assert header(["score"]).startswith("evaluation_id,seminar_id")
    assert safe_cell("+1") == "'+1"
    assert safe_cell("fine") == "fine"


# ---- the evaluation plan ------------------------------------------------------------------


def test_the_evaluation_plan_shows_each_step_pending_done_or_skipped() -> None:
    opens = datetime(2026, 3, 1, 12, tzinfo=UTC)
    window = EvaluationWindow(opens_at=opens, closes_at=opens + timedelta(days=14))
    seminar = SeminarEvaluation(
        seminar_id="sem-1", kind=Kind.ONLINE_SEMINAR, programme=Programme.ETWINNING, year=2026
    )
    policy = {"reminder_before_close": timedelta(hours=48), "close_grace": timedelta(seconds=60)}
    assert evaluation_plan(seminar, reminder_pending=False, **policy) == []

    opened = replace(seminar, window=window)
    steps = evaluation_plan(opened, reminder_pending=True, **policy)
    assert [(s.step, s.status, s.due_at) for s in steps] == [
        (Step.WINDOW_OPENS, StepStatus.DONE, opens),
        (Step.EVALUATION_REMINDER, StepStatus.PENDING, opens + timedelta(days=12)),
        (Step.WINDOW_CLOSES, StepStatus.PENDING, opens + timedelta(days=14, seconds=60)),
    ]
    reminded_at = opens + timedelta(days=12, seconds=1)
    reminded = replace(opened, reminded_at=reminded_at, reminded_count=7)
    [_, reminder, _] = evaluation_plan(reminded, reminder_pending=False, **policy)
    assert (reminder.status, reminder.done_at, reminder.count) == (
        StepStatus.DONE,
        reminded_at,
        7,
    )
    closed_at = opens + timedelta(days=30)
    expired = replace(opened, closed=True, closed_at=closed_at)
    assert [
        (s.status, s.done_at) for s in evaluation_plan(expired, reminder_pending=False, **policy)
    ] == [
        (StepStatus.DONE, opens),
        (StepStatus.SKIPPED, None),
        (StepStatus.DONE, closed_at),
    ]
    # A window too short for a reminder before it closes plans none.
    short = replace(seminar, window=EvaluationWindow(opens, opens + timedelta(hours=24)))
    assert [s.step for s in evaluation_plan(short, reminder_pending=False, **policy)] == [
        Step.WINDOW_OPENS,
        Step.WINDOW_CLOSES,
    ]
