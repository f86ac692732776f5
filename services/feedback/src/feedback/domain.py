"""The rules of evaluations: forms and their questions, answers checked against a form,
the evaluation window and response rates.

Pure: no database, broker, settings or clock reads. Time and ids come in as arguments.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from seminarops_shared.errors import Conflict, DomainError, FieldProblem, Invalid, Refused
from seminarops_shared.events.vocabulary import Kind, Programme, Rating

OVERALL_QUESTION_ID = "overall"
FORM_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
QUESTION_ID_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
RATING_MIN, RATING_MAX = 1, 5
MAX_QUESTIONS = 100
MAX_OPTIONS = 50
DEFAULT_FREE_TEXT_MAX_LENGTH = 2000
MAX_FREE_TEXT_LENGTH = 10_000
MAX_COMMENTS_LENGTH = 5000

_QUESTION_ID = re.compile(QUESTION_ID_PATTERN)


class QuestionType(enum.StrEnum):
    # The fixed first question of every form: the contract's five-point scale,
    # answered through the submission's top-level ``overall`` field.
    OVERALL = "overall"
    RATING = "rating"  # an integer 1..5
    SINGLE_CHOICE = "single_choice"  # one of ``options``
    MULTIPLE_CHOICE = "multiple_choice"  # distinct values among ``options``
    YES_NO = "yes_no"  # true / false
    FREE_TEXT = "free_text"  # a string of at most ``max_length`` characters


CHOICE_TYPES = frozenset({QuestionType.SINGLE_CHOICE, QuestionType.MULTIPLE_CHOICE})
RATINGS: tuple[str, ...] = tuple(r.value for r in Rating)


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    type: QuestionType
    text: str
    required: bool = False
    options: tuple[str, ...] = ()
    max_length: int | None = None


OVERALL_QUESTION = Question(
    id=OVERALL_QUESTION_ID,
    type=QuestionType.OVERALL,
    text="Overall, how would you rate this event?",
    required=True,
    options=RATINGS,
)


@dataclass(frozen=True, slots=True)
class FormVersion:
    """One immutable version of a form. ``questions`` are the questions after the fixed
    overall rating (``all_questions`` puts it first)."""

    form_id: str
    version: int
    title: str
    questions: tuple[Question, ...]
    anonymous: bool = False
    description: str | None = None
    created_at: datetime | None = None

    @property
    def all_questions(self) -> tuple[Question, ...]:
        return (OVERALL_QUESTION, *self.questions)

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)


@dataclass(frozen=True, slots=True)
class FormRef:
    """Which form a seminar or kind uses; ``version=None``: the latest when the window opens."""

    form_id: str
    version: int | None = None


# ---- forms -----------------------------------------------------------------------------


class InvalidForm(Invalid):
    """A form definition breaks a rule; ``problems`` says each one (about its
    questions)."""

    field_path: ClassVar[tuple[str, ...]] = ("questions",)
    problem_kind: ClassVar[str] = "invalid_form"

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(
            "; ".join(problems),
            fields=[FieldProblem(self.field_path, p, self.problem_kind) for p in problems],
        )
        self.problems = list(problems)


class UnknownForm(InvalidForm):
    """A form reference (``form_id``, maybe a version) names no stored form."""

    field_path = ("form_id",)
    problem_kind = "unknown_form"


def check_questions(questions: Sequence[Question]) -> tuple[Question, ...]:
    """Validate the questions a form asks after the overall rating; return them.

    A leading overall question (as a form read back lists it) is accepted and
    dropped, so a read form can be edited and written back. Invariant: question ids are
    unique, well formed and never ``overall`` after that; choice questions have 2..50
    distinct non-blank options and other types none. Raises ``InvalidForm``.
    """
    if questions and questions[0].id == OVERALL_QUESTION_ID:
        if questions[0].type is not QuestionType.OVERALL:
            raise InvalidForm(["question 'overall' is reserved for the overall rating"])
        questions = questions[1:]
    problems: list[str] = []
    if len(questions) > MAX_QUESTIONS:
        problems.append(f"a form has at most {MAX_QUESTIONS} questions, not {len(questions)}")
    seen: set[str] = set()
    for position, q in enumerate(questions, start=2):
        where = f"question {position} ({q.id!r})"
        if q.id in seen:
            problems.append(f"{where}: duplicate question id")
        seen.add(q.id)
        problems.extend(f"{where}: {p}" for p in _question_problems(q))
    if problems:
        raise InvalidForm(problems)
    return tuple(questions)


def _question_problems(q: Question) -> list[str]:
    problems: list[str] = []
    if not _QUESTION_ID.match(q.id):
        problems.append(f"id must match {QUESTION_ID_PATTERN}")
    if q.id == OVERALL_QUESTION_ID or q.type is QuestionType.OVERALL:
        problems.append("the overall rating is always the first question, once")
    if not q.text.strip():
        problems.append("text must not be blank")
    if q.type in CHOICE_TYPES:
        if not 2 <= len(q.options) <= MAX_OPTIONS:
            problems.append(f"a {q.type} question needs 2 to {MAX_OPTIONS} options")
        if len(set(q.options)) != len(q.options):
            problems.append("options must be distinct")
        if any(not o.strip() for o in q.options):
            problems.append("options must not be blank")
    elif q.options:
        problems.append("only choice questions have options")
    if q.max_length is not None and q.type is not QuestionType.FREE_TEXT:
        problems.append("only free_text questions have max_length")
    if q.max_length is not None and not 1 <= q.max_length <= MAX_FREE_TEXT_LENGTH:
        problems.append(f"max_length must be 1 to {MAX_FREE_TEXT_LENGTH}")
    return problems


def default_form_id(kind: Kind) -> str:
    return f"default-{kind.value.replace('_', '-')}"


def default_form(kind: Kind, *, now: datetime) -> FormVersion:
    """Version 1 of the built-in form of a kind: overall rating first, then questions
    every survey of that kind asks, so answers compare across all its seminars.

    Only the overall rating is required: a platform system that knows nothing but the
    contract's body (``overall``, ``comments``, ``answers: {}``) can always submit;
    operators who want more make a form of their own with required questions."""
    content = Question(
        "content",
        QuestionType.RATING,
        "How relevant was the content to your teaching? (1 = not at all, 5 = very)",
    )
    recommend = Question(
        "recommend", QuestionType.YES_NO, "Would you recommend this event to a colleague?"
    )
    most_useful = Question("most_useful", QuestionType.FREE_TEXT, "What was most useful?")
    improve = Question("improvements", QuestionType.FREE_TEXT, "What should we improve?")
    specific: dict[Kind, tuple[Question, ...]] = {
        Kind.ONLINE_SEMINAR: (
            Question("speaker", QuestionType.RATING, "How clear was the speaker?"),
            Question(
                "technical_quality",
                QuestionType.RATING,
                "How good were sound, video and the platform?",
            ),
        ),
        Kind.LEARNING_EVENT: (
            Question("organisation", QuestionType.RATING, "How well organised was the event?"),
            Question(
                "workload",
                QuestionType.SINGLE_CHOICE,
                "The workload of the event was",
                options=("too light", "about right", "too heavy"),
            ),
        ),
        Kind.PD_WORKSHOP: (
            Question(
                "practical_value",
                QuestionType.RATING,
                "How much of it can you use in your classroom?",
            ),
            Question(
                "next_topics",
                QuestionType.MULTIPLE_CHOICE,
                "Which topics would you like next?",
                options=(
                    "project-based learning",
                    "digital tools",
                    "inclusion",
                    "assessment",
                    "languages",
                ),
            ),
        ),
    }
    questions = (content, *specific[kind], recommend, most_useful, improve)
    return FormVersion(
        form_id=default_form_id(kind),
        version=1,
        title=f"Evaluation of a {kind.value.replace('_', ' ')}",
        questions=check_questions(questions),
        created_at=now,
    )


def choose_form(
    *, seminar_assignment: FormRef | None, kind_assignment: FormRef | None, kind: Kind
) -> FormRef:
    """The form a seminar is evaluated with: its own assignment, else its kind's, else
    the kind's default form (latest version)."""
    return seminar_assignment or kind_assignment or FormRef(default_form_id(kind))


# ---- answers ---------------------------------------------------------------------------

AnswerValue = int | str | bool | list[str]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a submission: where (a question id or a field) and what."""

    where: str
    message: str


class InvalidAnswers(Invalid):
    """A submission breaks its form; ``problems`` says each one. A problem is about
    the comments or about one answer (by question id)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(
            "; ".join(f"{p.where}: {p.message}" for p in problems),
            fields=[
                FieldProblem(
                    ("comments",) if p.where == "comments" else ("answers", p.where),
                    p.message,
                    "invalid_answer",
                )
                for p in problems
            ],
        )
        self.problems = list(problems)


def validate_answers(form: FormVersion, answers: Mapping[str, Any]) -> dict[str, AnswerValue]:
    """Check ``answers`` (question id -> value) against ``form``; return them normalised.

    Invariant: what is returned has only the form's question ids, a value of the right
    type and range for each, and every required question answered. ``null`` counts as
    not answered. Deterministic (no state): the same input gives the same result.
    Raises ``InvalidAnswers`` listing every problem, not just the first.
    """
    problems: list[Problem] = []
    clean: dict[str, AnswerValue] = {}
    for question_id, value in answers.items():
        if question_id == OVERALL_QUESTION_ID:
            problems.append(
                Problem(question_id, "the overall rating goes in the top-level 'overall' field")
            )
            continue
        question = form.question(question_id)
        if question is None:
            problems.append(
                Problem(
                    question_id,
                    f"unknown question id (form {form.form_id} version {form.version} has: "
                    f"{', '.join(q.id for q in form.questions) or 'no further questions'})",
                )
            )
            continue
        if value is None:
            continue
        try:
            clean[question_id] = _check_answer(question, value)
        except _BadAnswer as error:
            problems.append(Problem(question_id, str(error)))
    reported = {p.where for p in problems}
    problems.extend(
        Problem(q.id, "a required question is not answered")
        for q in form.questions
        if q.required and q.id not in clean and q.id not in reported
    )
    if problems:
        raise InvalidAnswers(problems)
    return clean


class _BadAnswer(Exception):
    """One answer does not fit its question (message for the caller)."""


def _shown(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_rating(question: Question, value: object) -> AnswerValue:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadAnswer(
            f"a rating is a whole number from {RATING_MIN} to {RATING_MAX}, not {_shown(value)}"
        )
    if not RATING_MIN <= value <= RATING_MAX:
        raise _BadAnswer(f"rating {value} is out of range {RATING_MIN}..{RATING_MAX}")
    return value


def _check_yes_no(question: Question, value: object) -> AnswerValue:
    if not isinstance(value, bool):
        raise _BadAnswer(f"a yes/no answer is true or false, not {_shown(value)}")
    return value


def _check_single_choice(question: Question, value: object) -> AnswerValue:
    if not isinstance(value, str):
        raise _BadAnswer(f"a single choice is one option (a string), not {_shown(value)}")
    if value not in question.options:
        raise _BadAnswer(f"{_shown(value)} is not one of the options {list(question.options)}")
    return value


def _check_multiple_choice(question: Question, value: object) -> AnswerValue:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _BadAnswer(f"a multiple choice is a list of options, not {_shown(value)}")
    unknown = [v for v in value if v not in question.options]
    if unknown:
        raise _BadAnswer(f"{_shown(unknown)} not among the options {list(question.options)}")
    if len(set(value)) != len(value):
        raise _BadAnswer("an option is chosen more than once")
    if question.required and not value:
        raise _BadAnswer("a required question needs at least one option")
    return list(value)


def _check_free_text(question: Question, value: object) -> AnswerValue:
    if not isinstance(value, str):
        raise _BadAnswer(f"a free-text answer is a string, not {_shown(value)}")
    limit = question.max_length or DEFAULT_FREE_TEXT_MAX_LENGTH
    if len(value) > limit:
        raise _BadAnswer(f"the answer has {len(value)} characters; at most {limit}")
    if question.required and not value.strip():
        raise _BadAnswer("a required question is not answered (blank text)")
    return value


_CHECKS: dict[QuestionType, Callable[[Question, object], AnswerValue]] = {
    QuestionType.RATING: _check_rating,
    QuestionType.YES_NO: _check_yes_no,
    QuestionType.SINGLE_CHOICE: _check_single_choice,
    QuestionType.MULTIPLE_CHOICE: _check_multiple_choice,
    QuestionType.FREE_TEXT: _check_free_text,
}


def _check_answer(question: Question, value: object) -> AnswerValue:
    check = _CHECKS.get(question.type)
    if check is None:
        raise _BadAnswer(f"question type {question.type} takes no answer here")
    return check(question, value)


# ---- the evaluation window -------------------------------------------------------------


class WindowState(enum.StrEnum):
    NOT_OPEN = "not_open"  # the seminar is not completed (or not known) yet
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class EvaluationWindow:
    """``[opens_at, closes_at)``: a response is accepted at ``opens_at`` and refused at
    ``closes_at``."""

    opens_at: datetime
    closes_at: datetime

    def state(self, now: datetime) -> WindowState:
        _aware(now)
        if now < self.opens_at:
            return WindowState.NOT_OPEN
        return WindowState.OPEN if now < self.closes_at else WindowState.CLOSED


def open_window(*, completed_at: datetime, now: datetime, days: float) -> EvaluationWindow:
    """The window of a seminar completed at ``completed_at`` (the completion event's
    ``time``), lasting ``days``.

    It is anchored on the completion time, not on when this service processed the
    event, so a consumer lag or a replay never moves it; a completion time later than
    ``now`` (a producer's clock ahead) is clamped to ``now``. Truncated to the
    millisecond (the database's precision). Pure and deterministic.
    """
    _aware(completed_at)
    _aware(now)
    if days <= 0:
        raise ValueError("an evaluation window lasts a positive number of days")
    opens_at = min(completed_at, now).astimezone(UTC)
    # Milliseconds, as the database keeps them: every event shows the same instants.
    opens_at = opens_at.replace(microsecond=opens_at.microsecond // 1000 * 1000)
    return EvaluationWindow(opens_at=opens_at, closes_at=opens_at + timedelta(days=days))


def reminder_at(window: EvaluationWindow, *, before_close: timedelta) -> datetime | None:
    """When non-respondents are reminded: ``before_close`` ahead of closing; ``None``
    when that is not strictly inside the window (too short a window, or reminders off)."""
    if before_close <= timedelta(0):
        return None
    at = window.closes_at - before_close
    return at if at > window.opens_at else None


def close_job_at(window: EvaluationWindow, *, grace: timedelta) -> datetime:
    """When the window-closed event is computed: ``grace`` after ``closes_at``, so a
    submission accepted just before closing (whose transaction may still be committing)
    is in its count."""
    return window.closes_at + grace


# ---- a seminar's evaluation and its responses -------------------------------------------


@dataclass(frozen=True, slots=True)
class SeminarEvaluation:
    """What this service knows of a seminar: the facts reports group by, how many
    attended, and, once completed, its window and the form version pinned for it."""

    seminar_id: str
    kind: Kind
    programme: Programme
    year: int
    attendee_count: int = 0
    window: EvaluationWindow | None = None
    form: FormRef | None = None
    anonymous: bool = False
    closed: bool = False  # the window-closed event was emitted
    closed_at: datetime | None = None
    reminded_at: datetime | None = None  # when non-respondents were reminded
    reminded_count: int = 0

    def state(self, now: datetime) -> WindowState:
        return WindowState.NOT_OPEN if self.window is None else self.window.state(now)


# ---- what is planned for a seminar's window (operators' view) ---------------------------


class Step(enum.StrEnum):
    WINDOW_OPENS = "window_opens"
    EVALUATION_REMINDER = "evaluation_reminder"
    WINDOW_CLOSES = "window_closes"


class StepStatus(enum.StrEnum):
    PENDING = "pending"  # its job waits in the scheduler
    DONE = "done"  # it took effect (``done_at``)
    SKIPPED = "skipped"  # it will not happen: the window closed before it was due


@dataclass(frozen=True, slots=True)
class PlannedStep:
    step: Step
    due_at: datetime
    status: StepStatus
    done_at: datetime | None = None
    count: int | None = None  # the reminder: how many non-respondents it reached


def evaluation_plan(
    seminar: SeminarEvaluation,
    *,
    reminder_before_close: timedelta,
    close_grace: timedelta,
    reminder_pending: bool,
) -> list[PlannedStep]:
    """The steps of a seminar's evaluation window in time order: it opens, its
    non-respondents are reminded (when the window leaves room for it), it closes.
    Empty before the window opens (the seminar is not completed). A reminder neither
    waiting nor sent was skipped: the window had closed (e.g. it had expired when the
    completion arrived)."""
    window = seminar.window
    if window is None:
        return []
    steps = [PlannedStep(Step.WINDOW_OPENS, window.opens_at, StepStatus.DONE, window.opens_at)]
    remind = reminder_at(window, before_close=reminder_before_close)
    if remind is not None:
        if reminder_pending:
            status, done_at = StepStatus.PENDING, None
        elif seminar.reminded_at is not None:
            status, done_at = StepStatus.DONE, seminar.reminded_at
        else:
            status, done_at = StepStatus.SKIPPED, None
        count = seminar.reminded_count if status is StepStatus.DONE else None
        steps.append(PlannedStep(Step.EVALUATION_REMINDER, remind, status, done_at, count))
    closes = close_job_at(window, grace=close_grace)
    if seminar.closed:
        steps.append(PlannedStep(Step.WINDOW_CLOSES, closes, StepStatus.DONE, seminar.closed_at))
    else:  # its job waits in the scheduler until the window-closed event is out
        steps.append(PlannedStep(Step.WINDOW_CLOSES, closes, StepStatus.PENDING))
    return steps


class SubmissionRefused(DomainError):
    """A response that cannot be accepted; the subclass says why, and which kind of
    refusal it is: a rule (``Refused``) or a conflict with what is stored."""


class WindowNotOpen(SubmissionRefused, Refused):
    pass


class WindowClosed(SubmissionRefused, Refused):
    pass


class NotAnAttendee(SubmissionRefused, Refused):
    pass


class AlreadyEvaluated(SubmissionRefused, Conflict):
    """A second evaluation by the same attendee: it conflicts with the first."""


def check_can_submit(
    *,
    seminar_id: str,
    participant_id: str,
    seminar: SeminarEvaluation | None,
    is_attendee: bool,
    has_responded: bool,
    now: datetime,
) -> SeminarEvaluation:
    """May ``participant_id`` evaluate ``seminar_id`` at ``now``? Returns the seminar.

    Invariant: only an attendee, only inside ``[opens_at, closes_at)``, only once. The
    window is judged by time, not by whether the closing job has run yet. Raises a
    ``SubmissionRefused`` (window, attendance, then duplicate, in that order).
    """
    if seminar is None or seminar.window is None or seminar.form is None:
        raise WindowNotOpen(
            f"seminar {seminar_id} has no open evaluation window: it opens when the "
            "seminar is completed"
        )
    state = seminar.state(now)
    if state is WindowState.CLOSED:
        raise WindowClosed(
            f"the evaluation window of seminar {seminar_id} closed at "
            f"{seminar.window.closes_at.isoformat()}"
        )
    if state is WindowState.NOT_OPEN:
        raise WindowNotOpen(
            f"the evaluation window of seminar {seminar_id} opens at "
            f"{seminar.window.opens_at.isoformat()}"
        )
    if not is_attendee:
        raise NotAnAttendee(
            f"participant {participant_id} is not recorded as an attendee of seminar {seminar_id}"
        )
    if has_responded:
        raise AlreadyEvaluated(
            f"participant {participant_id} has already evaluated seminar {seminar_id}"
        )
    return seminar


@dataclass(frozen=True, slots=True)
class Response:
    """One stored evaluation. ``participant_id`` is ``None`` for an anonymous form."""

    evaluation_id: str
    seminar_id: str
    kind: Kind
    programme: Programme
    year: int
    form_id: str
    form_version: int
    anonymous: bool
    overall: Rating
    comments: str | None
    answers: Mapping[str, AnswerValue]
    submitted_at: datetime
    participant_id: str | None = None


def make_response(
    *,
    evaluation_id: str,
    seminar: SeminarEvaluation,
    form: FormVersion,
    participant_id: str,
    overall: Rating,
    comments: str | None,
    answers: Mapping[str, AnswerValue],
    now: datetime,
) -> Response:
    """The response to store. Invariant: for an anonymous form it carries neither the
    participant id nor a time finer than the day, so nothing in it (or in its order
    against the has-responded markers) leads back to the person."""
    _aware(now)
    submitted_at = now.astimezone(UTC)
    if form.anonymous:
        submitted_at = submitted_at.replace(hour=0, minute=0, second=0, microsecond=0)
    if comments is not None and len(comments) > MAX_COMMENTS_LENGTH:
        raise InvalidAnswers(
            [Problem("comments", f"at most {MAX_COMMENTS_LENGTH} characters, not {len(comments)}")]
        )
    return Response(
        evaluation_id=evaluation_id,
        seminar_id=seminar.seminar_id,
        kind=seminar.kind,
        programme=seminar.programme,
        year=seminar.year,
        form_id=form.form_id,
        form_version=form.version,
        anonymous=form.anonymous,
        overall=overall,
        comments=comments if comments and comments.strip() else None,
        answers=dict(answers),
        submitted_at=submitted_at,
        participant_id=None if form.anonymous else participant_id,
    )


# ---- counting and people ---------------------------------------------------------------


def response_rate_pct(responses: int, attendees: int) -> float | None:
    """``responses / attendees`` in percent, one decimal; ``None`` without attendees."""
    if attendees <= 0:
        return None
    return round(100 * responses / attendees, 1)


def non_respondents(attendees: Iterable[str], respondents: Iterable[str]) -> list[str]:
    """Attendees who have not answered, sorted."""
    answered = set(respondents)
    return sorted(a for a in set(attendees) if a not in answered)


@dataclass(frozen=True, slots=True)
class RateRow:
    kind: str
    programme: str
    year: int
    seminars: int = 0
    attendees: int = 0
    responses: int = 0

    @property
    def response_rate_pct(self) -> float | None:
        return response_rate_pct(self.responses, self.attendees)


def _aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: only timezone-aware times are allowed")
