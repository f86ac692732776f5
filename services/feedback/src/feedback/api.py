"""HTTP entry points of the feedback service: translate, call a handler, translate back.

Roles: operators manage forms, assignments, non-respondent lists and exports; a
participant, the platform (submitting for the person) or an operator may submit an
evaluation. Forms and response rates carry no personal data and are open to read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from seminarops_shared.auth import require_role
from seminarops_shared.errors import FieldProblem, Invalid
from seminarops_shared.events.vocabulary import Identifier, Kind, Programme, Rating, Year
from seminarops_shared.http_idempotency import IDEMPOTENT, IdempotentRequest, IdempotentRoute
from seminarops_shared.problems import never_answers
from seminarops_shared.service import service_state
from seminarops_shared.settings import Role

from .domain import (
    FORM_ID_PATTERN,
    MAX_COMMENTS_LENGTH,
    MAX_FREE_TEXT_LENGTH,
    MAX_OPTIONS,
    MAX_QUESTIONS,
    QUESTION_ID_PATTERN,
    FormRef,
    FormVersion,
    PlannedStep,
    Question,
    QuestionType,
    RateRow,
    Step,
    StepStatus,
    WindowState,
    response_rate_pct,
)
from .handlers import FeedbackService, FormSummary
from .repository import kind_target, seminar_target

router = APIRouter(prefix="/v1", route_class=IdempotentRoute)

FormId = Annotated[str, StringConstraints(pattern=FORM_ID_PATTERN)]
SeminarIdPath = Annotated[Identifier, Path()]
# A form's version number: bounded so that no number a client sends reaches the database
# beyond the 64-bit integers it holds (a 422, not a driver error).
MAX_FORM_VERSION = 1_000_000
VersionNumber = Annotated[int, Field(ge=1, le=MAX_FORM_VERSION)]


async def get_service(request: Request) -> FeedbackService:
    # async: FastAPI would run a plain ``def`` dependency in its thread pool (a thread
    # hand-off on every request).
    return service_state(request, FeedbackService)


Service = Annotated[FeedbackService, Depends(get_service)]
operator_only = Depends(require_role(Role.OPERATOR))
may_submit = Depends(require_role(Role.PARTICIPANT, Role.PLATFORM, Role.OPERATOR))


# ---- models ----------------------------------------------------------------------------


class QuestionModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=QUESTION_ID_PATTERN)]
    type: QuestionType
    text: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    required: bool = False
    options: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=200)]],
        Field(max_length=MAX_OPTIONS),
    ] = Field(default_factory=list)
    max_length: Annotated[int, Field(ge=1, le=MAX_FREE_TEXT_LENGTH)] | None = None

    def to_domain(self) -> Question:
        return Question(
            id=self.id,
            type=self.type,
            text=self.text,
            required=self.required,
            options=tuple(self.options),
            max_length=self.max_length,
        )

    @classmethod
    def of(cls, q: Question) -> QuestionModel:
        return cls(
            id=q.id,
            type=q.type,
            text=q.text,
            required=q.required,
            options=list(q.options),
            max_length=q.max_length,
        )


class FormEdit(BaseModel):
    """A form's content. ``questions`` are asked after the overall rating, which every
    form has as its first question (it may be included as read, and is then ignored)."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    anonymous: bool = False
    questions: Annotated[list[QuestionModel], Field(max_length=MAX_QUESTIONS + 1)] = Field(
        default_factory=list
    )

    # Read-only fields of a form as GET shows it: accepted so that a read form can be
    # edited and written back, and ignored.
    version: VersionNumber | None = Field(default=None, description="read-only; ignored")
    created_at: datetime | None = Field(default=None, description="read-only; ignored")


class FormCreate(FormEdit):
    id: FormId | None = Field(default=None, description="optional; generated when absent")


class FormUpdate(FormEdit):
    id: str | None = Field(default=None, description="if given, the id in the path")


class FormOut(BaseModel):
    id: str
    version: int
    title: str
    description: str | None
    anonymous: bool
    questions: list[QuestionModel]
    created_at: datetime | None

    @classmethod
    def of(cls, form: FormVersion) -> FormOut:
        return cls(
            id=form.form_id,
            version=form.version,
            title=form.title,
            description=form.description,
            anonymous=form.anonymous,
            questions=[QuestionModel.of(q) for q in form.all_questions],
            created_at=form.created_at,
        )


class FormSummaryOut(BaseModel):
    id: str
    latest_version: int
    title: str
    anonymous: bool
    updated_at: datetime | None

    @classmethod
    def of(cls, s: FormSummary) -> FormSummaryOut:
        return cls(
            id=s.form_id,
            latest_version=s.latest_version,
            title=s.title,
            anonymous=s.anonymous,
            updated_at=s.updated_at,
        )


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    form_id: FormId
    version: VersionNumber | None = Field(
        default=None, description="pin a version; absent: the latest when the window opens"
    )


class AssignmentOut(BaseModel):
    target: str
    form_id: str
    version: int | None


class PlannedStepOut(BaseModel):
    step: Step = Field(
        description="window_opens, evaluation_reminder (non-respondents), window_closes"
    )
    due_at: datetime = Field(description="when its job is (or was) due, UTC")
    status: StepStatus = Field(
        description="pending (waiting in the scheduler), done, or skipped (the window "
        "closed before it was due)"
    )
    done_at: datetime | None
    count: int | None = Field(description="the reminder: how many it reached")

    @classmethod
    def of(cls, step: PlannedStep) -> PlannedStepOut:
        return cls(
            step=step.step,
            due_at=step.due_at,
            status=step.status,
            done_at=step.done_at,
            count=step.count,
        )


class EvaluationPlanOut(BaseModel):
    seminar_id: str
    state: WindowState
    opens_at: datetime | None
    closes_at: datetime | None
    form_id: str | None = Field(description="the form pinned when the window opened")
    form_version: int | None
    steps: list[PlannedStepOut] = Field(description="in time order; empty before it opens")


class EvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seminar_id: Identifier
    participant_id: Identifier
    overall: Rating
    comments: Annotated[str, StringConstraints(max_length=MAX_COMMENTS_LENGTH)] | None = None
    answers: Annotated[dict[str, Any], Field(max_length=MAX_QUESTIONS)] = Field(
        default_factory=dict
    )


class EvaluationOut(BaseModel):
    id: str
    seminar_id: str
    form_id: str
    form_version: int
    anonymous: bool
    submitted_at: AwareDatetime


class SeminarRateOut(BaseModel):
    seminar_id: str
    kind: Kind
    programme: Programme
    year: int
    window_state: WindowState
    opens_at: datetime | None
    closes_at: datetime | None
    form_id: str | None
    form_version: int | None
    anonymous: bool
    attendees: int
    responses: int
    response_rate_pct: float | None


class RateRowOut(BaseModel):
    kind: str
    programme: str
    year: int
    seminars: int
    attendees: int
    responses: int
    response_rate_pct: float | None

    @classmethod
    def of(cls, row: RateRow) -> RateRowOut:
        return cls(
            kind=row.kind,
            programme=row.programme,
            year=row.year,
            seminars=row.seminars,
            attendees=row.attendees,
            responses=row.responses,
            response_rate_pct=row.response_rate_pct,
        )


class RateTotalOut(BaseModel):
    seminars: int
    attendees: int
    responses: int
    response_rate_pct: float | None


class RatesOut(BaseModel):
    year: int | None
    kind: Kind | None
    programme: Programme | None
    rows: list[RateRowOut]
    total: RateTotalOut


class NonRespondentsOut(BaseModel):
    seminar_id: str
    closes_at: datetime | None
    count: int
    participant_ids: list[str]


# ---- forms -----------------------------------------------------------------------------


@router.post(
    "/forms",
    status_code=status.HTTP_201_CREATED,
    dependencies=[operator_only],
    summary="Create a form (version 1)",
    tags=["forms"],
)
async def create_form(
    body: FormCreate,
    service: Service,
    idempotent: Annotated[IdempotentRequest | None, IDEMPOTENT],
) -> FormOut:
    # Without an id of its own, a form created under an Idempotency-Key gets the key's:
    # a run after a crash finds it instead of creating a second one.
    form_id = body.id or (idempotent.resource_id("form", length=24) if idempotent else None)
    form = await service.create_form(
        form_id=form_id,
        title=body.title,
        description=body.description,
        anonymous=body.anonymous,
        questions=[q.to_domain() for q in body.questions],
    )
    return FormOut.of(form)


@router.get("/forms", summary="Every form, with its latest version", tags=["forms"])
async def list_forms(service: Service) -> list[FormSummaryOut]:
    return [FormSummaryOut.of(s) for s in await service.forms()]


@router.get("/forms/{form_id}", summary="A form (latest or given version)", tags=["forms"])
async def get_form(
    form_id: str,
    service: Service,
    version: Annotated[VersionNumber | None, Query()] = None,
) -> FormOut:
    return FormOut.of(await service.form(form_id, version))


@router.put(
    "/forms/{form_id}",
    dependencies=[operator_only],
    summary="Edit a form: creates the next version",
    tags=["forms"],
)
async def update_form(form_id: str, body: FormUpdate, service: Service) -> FormOut:
    if body.id is not None and body.id != form_id:
        raise Invalid(
            fields=[
                FieldProblem(
                    ("id",),
                    f"the body is form {body.id!r}, the path form {form_id!r}",
                    "id_mismatch",
                )
            ]
        )
    form = await service.update_form(
        form_id,
        title=body.title,
        description=body.description,
        anonymous=body.anonymous,
        questions=[q.to_domain() for q in body.questions],
    )
    return FormOut.of(form)


@router.post(
    "/seminars/{seminar_id}/form",
    dependencies=[operator_only, IDEMPOTENT],
    # A seminar not known yet gets its form all the same; an unknown form is a 422.
    openapi_extra=never_answers(404),
    summary="Evaluate this seminar with a given form (before its window opens)",
    tags=["forms"],
)
async def assign_seminar_form(
    seminar_id: SeminarIdPath, body: AssignmentIn, service: Service
) -> AssignmentOut:
    ref = await service.assign_to_seminar(seminar_id, FormRef(body.form_id, body.version))
    return AssignmentOut(
        target=seminar_target(seminar_id), form_id=ref.form_id, version=ref.version
    )


@router.post(
    "/kinds/{kind}/form",
    dependencies=[operator_only, IDEMPOTENT],
    openapi_extra=never_answers(404),
    summary="Evaluate seminars of this kind with a given form (windows opening from now on)",
    tags=["forms"],
)
async def assign_kind_form(kind: Kind, body: AssignmentIn, service: Service) -> AssignmentOut:
    ref = await service.assign_to_kind(kind, FormRef(body.form_id, body.version))
    return AssignmentOut(target=kind_target(kind), form_id=ref.form_id, version=ref.version)


@router.get(
    "/kinds/{kind}/form",
    dependencies=[operator_only],
    summary="The form seminars of this kind are evaluated with (windows opening now)",
    description=(
        "The form `POST /v1/kinds/{kind}/form` assigned (the pinned version, or the latest), "
        "else the kind's built-in default form. A seminar with a form of its own uses that "
        "instead (`GET /v1/seminars/{seminar_id}/form`)."
    ),
    tags=["forms"],
)
async def kind_form(kind: Kind, service: Service) -> FormOut:
    return FormOut.of(await service.kind_form(kind))


@router.get(
    "/seminars/{seminar_id}/evaluation-plan",
    dependencies=[operator_only],
    summary="The seminar's evaluation window and its timed steps (opens, reminder, closes)",
    description=(
        "What the scheduler holds or did for this seminar's evaluation window: it opens "
        "on completion, reminds non-respondents `FEEDBACK_REMINDER_BEFORE_CLOSE` before "
        "closing (when the window leaves room), and closes `FEEDBACK_WINDOW_DAYS` after "
        "opening (the closing count runs a short grace later). 404 until the seminar is "
        "known here (its completion or attendance arrived)."
    ),
    tags=["evaluations"],
)
async def evaluation_plan(seminar_id: SeminarIdPath, service: Service) -> EvaluationPlanOut:
    plan = await service.evaluation_plan(seminar_id)
    seminar = plan.seminar
    return EvaluationPlanOut(
        seminar_id=seminar_id,
        state=plan.state,
        opens_at=seminar.window.opens_at if seminar.window else None,
        closes_at=seminar.window.closes_at if seminar.window else None,
        form_id=seminar.form.form_id if seminar.form else None,
        form_version=seminar.form.version if seminar.form else None,
        steps=[PlannedStepOut.of(step) for step in plan.steps],
    )


@router.get(
    "/seminars/{seminar_id}/form",
    summary="The form this seminar is (or will be) evaluated with",
    tags=["forms"],
)
async def seminar_form(seminar_id: SeminarIdPath, service: Service) -> FormOut:
    return FormOut.of(await service.seminar_form(seminar_id))


# ---- evaluations -----------------------------------------------------------------------


@router.post(
    "/evaluations",
    status_code=status.HTTP_201_CREATED,
    dependencies=[may_submit, IDEMPOTENT],
    summary="One attendee's evaluation of a seminar",
    tags=["evaluations"],
    responses={
        403: {"description": "not an attendee, or the window is not open"},
        409: {"description": "this attendee has already evaluated this seminar"},
        422: {"description": "invalid answers (each problem listed)"},
    },
)
async def submit_evaluation(body: EvaluationIn, service: Service) -> EvaluationOut:
    response = await service.submit(
        seminar_id=body.seminar_id,
        participant_id=body.participant_id,
        overall=body.overall,
        comments=body.comments,
        answers=body.answers,
    )
    return EvaluationOut(
        id=response.evaluation_id,
        seminar_id=response.seminar_id,
        form_id=response.form_id,
        form_version=response.form_version,
        anonymous=response.anonymous,
        submitted_at=response.submitted_at,
    )


# ---- response rates, non-respondents, export -------------------------------------------


@router.get(
    "/seminars/{seminar_id}/response-rate",
    summary="Responses / attendees of one seminar",
    tags=["response rates"],
)
async def seminar_response_rate(seminar_id: SeminarIdPath, service: Service) -> SeminarRateOut:
    rate = await service.seminar_rate(seminar_id)
    s = rate.seminar
    return SeminarRateOut(
        seminar_id=s.seminar_id,
        kind=s.kind,
        programme=s.programme,
        year=s.year,
        window_state=rate.state,
        opens_at=s.window.opens_at if s.window else None,
        closes_at=s.window.closes_at if s.window else None,
        form_id=s.form.form_id if s.form else None,
        form_version=s.form.version if s.form else None,
        anonymous=s.anonymous,
        attendees=s.attendee_count,
        responses=rate.responses,
        response_rate_pct=response_rate_pct(rate.responses, s.attendee_count),
    )


@router.get(
    "/response-rates",
    summary="Responses / attendees per kind, programme and year",
    tags=["response rates"],
)
async def response_rates(
    service: Service,
    year: Annotated[Year | None, Query()] = None,
    kind: Kind | None = None,
    programme: Programme | None = None,
) -> RatesOut:
    rows = await service.rates(year=year, kind=kind, programme=programme)
    attendees = sum(r.attendees for r in rows)
    responses = sum(r.responses for r in rows)
    return RatesOut(
        year=year,
        kind=kind,
        programme=programme,
        rows=[RateRowOut.of(r) for r in rows],
        total=RateTotalOut(
            seminars=sum(r.seminars for r in rows),
            attendees=attendees,
            responses=responses,
            response_rate_pct=response_rate_pct(responses, attendees),
        ),
    )


@router.get(
    "/seminars/{seminar_id}/non-respondents",
    dependencies=[operator_only],
    summary="Attendees who have not answered (named forms only)",
    tags=["response rates"],
    responses={409: {"description": "the seminar's form is anonymous"}},
)
async def seminar_non_respondents(seminar_id: SeminarIdPath, service: Service) -> NonRespondentsOut:
    seminar, people = await service.non_respondents(seminar_id)
    return NonRespondentsOut(
        seminar_id=seminar_id,
        closes_at=seminar.window.closes_at if seminar.window else None,
        count=len(people),
        participant_ids=people,
    )


@router.get(
    "/exports/responses.csv",
    dependencies=[operator_only],
    summary="Responses with comments and answers as CSV (per seminar, kind and/or year)",
    tags=["exports"],
    response_class=StreamingResponse,
)
async def export_responses(
    service: Service,
    seminar_id: Annotated[Identifier | None, Query()] = None,
    kind: Kind | None = None,
    year: Annotated[Year | None, Query()] = None,
    programme: Programme | None = None,
) -> StreamingResponse:
    parts = [p for p in (seminar_id, kind and kind.value, year and str(year)) if p]
    filename = "responses" + ("-" + "-".join(str(p) for p in parts) if parts else "") + ".csv"
    return StreamingResponse(
        service.export_csv(seminar_id=seminar_id, kind=kind, year=year, programme=programme),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_safe_filename(filename)}"'},
    )


def _safe_filename(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
