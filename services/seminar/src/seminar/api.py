"""HTTP entry points of the seminar service: translate requests to use cases and their
outcomes (or refusals) to responses. Roles: operators run the programme; platform
systems (the video platform) may also mark a seminar live and record attendance."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from seminarops_shared.auth import require_role
from seminarops_shared.events.vocabulary import Identifier, Kind, Programme, Promotion
from seminarops_shared.http_idempotency import IDEMPOTENT, IdempotentRequest, IdempotentRoute
from seminarops_shared.service import service_state
from seminarops_shared.settings import Role

from .commands import AttendanceIn, CancelIn, RescheduleIn, SeminarIn
from .domain import RosterStatus, Seminar, SeminarStatus, language_code
from .handlers import ImportStatus, PlannedReminder, SeminarService
from .ical import seminar_calendar
from .importing import csv_from_upload, parse_season
from .repository import SeminarFilter

router = APIRouter(prefix="/v1", tags=["seminars"], route_class=IdempotentRoute)

_operator = Depends(require_role(Role.OPERATOR))
_operator_or_platform = Depends(require_role(Role.OPERATOR, Role.PLATFORM))


def _service(request: Request) -> SeminarService:
    return service_state(request, SeminarService)


Service = Annotated[SeminarService, Depends(_service)]


# ---- responses ---------------------------------------------------------------------------


class SessionOut(BaseModel):
    starts_at: datetime
    ends_at: datetime


class SeminarOut(BaseModel):
    """A seminar. Session times are given in the seminar's own time zone (with their
    offset); when it was created, changed, went live, ... in UTC."""

    id: str
    title: str
    kind: Kind
    programme: Programme
    theme: str | None
    language: str
    timezone: str
    sessions: list[SessionOut]
    starts_at: datetime
    ends_at: datetime
    year: int = Field(description="the year its first session starts, in its time zone")
    capacity: int
    moderator: str | None
    host_school_id: str | None
    open_to_other_schools: bool
    status: SeminarStatus
    attendee_count: int
    created_at: datetime
    updated_at: datetime
    went_live_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    completed_at: datetime | None
    promotion: Promotion = Field(description="how a freed seat is given")
    offer_hours: int | None = Field(description="how long an offered seat stands; null: automatic")
    eligible_countries: list[str] | None = Field(
        description="ISO 3166-1 alpha-2 codes of who may register; null: everyone"
    )

    @classmethod
    def of(cls, seminar: Seminar) -> SeminarOut:
        zone = ZoneInfo(seminar.timezone)
        return cls(
            id=seminar.id,
            title=seminar.title,
            kind=seminar.kind,
            programme=seminar.programme,
            theme=seminar.theme,
            language=seminar.language,
            timezone=seminar.timezone,
            sessions=[
                SessionOut(
                    starts_at=s.starts_at.astimezone(zone), ends_at=s.ends_at.astimezone(zone)
                )
                for s in seminar.sessions
            ],
            starts_at=seminar.starts_at.astimezone(zone),
            ends_at=seminar.ends_at.astimezone(zone),
            year=seminar.year,
            capacity=seminar.capacity,
            moderator=seminar.moderator,
            host_school_id=seminar.host_school_id,
            open_to_other_schools=seminar.open_to_other_schools,
            status=seminar.status,
            attendee_count=seminar.attendee_count,
            created_at=seminar.created_at,
            updated_at=seminar.updated_at,
            went_live_at=seminar.went_live_at,
            cancelled_at=seminar.cancelled_at,
            cancel_reason=seminar.cancel_reason,
            completed_at=seminar.completed_at,
            promotion=seminar.promotion,
            offer_hours=seminar.offer_hours,
            eligible_countries=(
                None if seminar.eligible_countries is None else list(seminar.eligible_countries)
            ),
        )


class SeminarPage(BaseModel):
    items: list[SeminarOut]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last"
    )


class AttendanceOut(BaseModel):
    seminar_id: str
    recorded: list[str] = Field(description="newly recorded as attendees")
    already_recorded: list[str] = Field(description="recorded before; counted once")
    rejected: list[str] = Field(description="not confirmed registrants: not stored")
    rejected_reasons: dict[str, str] = Field(
        description="why each was rejected: not_registered, waitlisted or cancelled"
    )
    attendee_count: int


class ImportRowOut(BaseModel):
    row: int = Field(description="data row number, 1 = the first row after the header")
    line: int = Field(description="line in the file")
    status: ImportStatus
    id: str | None
    reasons: list[str] = Field(description="why rejected (or why unchanged)")


class ImportReport(BaseModel):
    dry_run: bool
    created: int
    unchanged: int
    rejected: int
    ignored_columns: list[str]
    rows: list[ImportRowOut]


class ReminderOut(BaseModel):
    job_id: str = Field(description="stable per session and offset: a re-plan moves it")
    session_index: int = Field(description="0 = the first session")
    session_starts_at: datetime = Field(description="in the seminar's time zone")
    offset_minutes: int = Field(description="minutes before the session it tells of")
    due_at: datetime = Field(description="when it is (or was) due, UTC")
    status: Literal["pending", "sent"]
    sent_at: datetime | None = Field(description="when it went out (sent only), UTC")

    @classmethod
    def of(cls, reminder: PlannedReminder, zone: ZoneInfo) -> ReminderOut:
        return cls(
            job_id=reminder.job_id,
            session_index=reminder.session_index,
            session_starts_at=reminder.session_starts_at.astimezone(zone),
            offset_minutes=reminder.offset_minutes,
            due_at=reminder.due_at,
            status=reminder.status,
            sent_at=reminder.sent_at,
        )


class RemindersOut(BaseModel):
    seminar_id: str
    reminders: list[ReminderOut] = Field(description="by due time")


class RosterEntryOut(BaseModel):
    participant_id: str
    status: RosterStatus


class RosterOut(BaseModel):
    seminar_id: str
    counts: dict[RosterStatus, int]
    entries: list[RosterEntryOut]


# ---- routes ------------------------------------------------------------------------------


@router.post(
    "/seminars",
    status_code=status.HTTP_201_CREATED,
    response_model=SeminarOut,
    dependencies=[_operator],
    summary="Schedule a seminar",
    responses={
        200: {"description": "a seminar with this id and the same definition exists"},
        409: {"description": "the id is taken by a different seminar"},
        422: {"description": "invalid seminar; nothing stored"},
    },
)
async def create_seminar(
    body: SeminarIn,
    service: Service,
    response: Response,
    idempotent: Annotated[IdempotentRequest | None, IDEMPOTENT],
) -> SeminarOut:
    # Without an id of its own, a seminar created under an Idempotency-Key gets the
    # key's: a run after a crash finds it instead of scheduling a second one.
    seminar_id = body.id or (idempotent.resource_id("sem") if idempotent else None)
    seminar, created = await service.create(body.definition(), seminar_id=seminar_id)
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/seminars/{seminar.id}"
    return SeminarOut.of(seminar)


_IMPORT_DESCRIPTION = """Import a season from CSV (`text/csv` body, or a `multipart/form-data`
upload with a `file` field). Each row is reported: `created`, `unchanged` (a seminar with
this id and the same definition exists, so importing a file twice is harmless) or
`rejected` with the reasons; valid rows are stored even when others are rejected.
`dry_run=true` stores nothing.

Columns: `title`, `kind`, `programme`, `timezone`, `capacity`, `language`, and
`starts_at` + `ends_at` or `sessions` (`start/end;start/end`); optional `id`, `theme`,
`moderator`, `host_school_id`, `open_to_other_schools`, `promotion`, `offer_hours`,
`eligible_countries` (codes separated by `;`, e.g. `AM;GE;UA`). Times are ISO 8601; without a UTC
offset they are wall-clock times in the row's time zone. A row without `id` gets one
derived from its content. Reminders are planned only for sessions still to come.
Rows are stored in transactions of 100: should a call fail midway, sending the file
again is safe (what was stored comes back `unchanged`)."""


@router.post(
    "/seminars/import",
    response_model=ImportReport,
    dependencies=[_operator, IDEMPOTENT],
    summary="Import a season of seminars from CSV",
    description=_IMPORT_DESCRIPTION,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            },
        }
    },
    responses={
        413: {"description": "the file is too large"},
        422: {"description": "the file cannot be read as a season; nothing stored"},
    },
)
async def import_season(
    request: Request,
    service: Service,
    dry_run: Annotated[bool, Query(description="validate and report, store nothing")] = False,
) -> ImportReport:
    max_rows: int = request.app.state.import_max_rows
    max_bytes: int = request.app.state.import_max_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"at most {max_bytes} bytes")
    body = await request.body()
    if len(body) > max_bytes:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"at most {max_bytes} bytes")
    season = parse_season(
        csv_from_upload(body, request.headers.get("content-type", "text/csv")),
        max_rows=max_rows,
    )
    outcomes = await service.import_season(season.rows, dry_run=dry_run)
    return ImportReport(
        dry_run=dry_run,
        created=sum(o.status == "created" for o in outcomes),
        unchanged=sum(o.status == "unchanged" for o in outcomes),
        rejected=sum(o.status == "rejected" for o in outcomes),
        ignored_columns=season.ignored_columns,
        rows=[
            ImportRowOut(row=o.row, line=o.line, status=o.status, id=o.seminar_id, reasons=o.errors)
            for o in outcomes
        ],
    )


class SeminarQuery(BaseModel):
    """Filters (all optional, combined with AND) and the page wanted."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind | None = None
    programme: Programme | None = None
    status: SeminarStatus | None = None
    language: str | None = None
    year: int | None = Field(default=None, ge=1990, le=2200)
    starts_from: AwareDatetime | None = Field(
        default=None, description="first session starts at or after (with a UTC offset)"
    )
    starts_before: AwareDatetime | None = Field(
        default=None, description="first session starts before (with a UTC offset)"
    )
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = Field(default=None, description="`next_cursor` of the previous page")

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return None if value is None else language_code(value)


@router.get(
    "/seminars",
    response_model=SeminarPage,
    summary="List seminars by start time (filters, cursor pagination)",
)
async def list_seminars(query: Annotated[SeminarQuery, Query()], service: Service) -> SeminarPage:
    seminar_filter = SeminarFilter(
        kind=query.kind,
        programme=query.programme,
        status=query.status,
        language=query.language,
        year=query.year,
        starts_from=query.starts_from,
        starts_before=query.starts_before,
    )
    page, next_cursor = await service.search(seminar_filter, limit=query.limit, cursor=query.cursor)
    return SeminarPage(items=[SeminarOut.of(s) for s in page], next_cursor=next_cursor)


@router.get("/seminars/{seminar_id}", response_model=SeminarOut, summary="A seminar")
async def get_seminar(seminar_id: Identifier, service: Service) -> SeminarOut:
    return SeminarOut.of(await service.get(seminar_id))


@router.get(
    "/seminars/{seminar_id}/calendar.ics",
    response_class=Response,
    summary="The seminar's sessions as an iCalendar file (RFC 5545)",
    description=(
        "One VEVENT per session: `UID` `<seminar_id>-<session_index>@seminar-ops` (stable "
        "across reschedules; the registration service's participant calendars use the "
        "same), `DTSTART`/`DTEND` in the seminar's time zone (`TZID` and a `VTIMEZONE`), "
        "`SUMMARY` the title, `SEQUENCE` growing with each reschedule "
        "and once more on cancellation, `STATUS:CANCELLED` once cancelled. No personal "
        "data: readable without a token, like the seminar."
    ),
    responses={200: {"content": {"text/calendar": {"schema": {"type": "string"}}}}},
)
async def seminar_calendar_file(seminar_id: Identifier, service: Service) -> Response:
    return Response(
        seminar_calendar(await service.get(seminar_id)),
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'inline; filename="{seminar_id}.ics"'},
    )


@router.post(
    "/seminars/{seminar_id}/reschedule",
    response_model=SeminarOut,
    dependencies=[_operator],
    summary="New times and/or capacity (seminar.rescheduled.v1; reminders move)",
)
async def reschedule_seminar(
    seminar_id: Identifier, body: RescheduleIn, service: Service
) -> SeminarOut:
    seminar = await service.reschedule(
        seminar_id, sessions=body.raw_sessions(), capacity=body.capacity, reason=body.reason
    )
    return SeminarOut.of(seminar)


@router.post(
    "/seminars/{seminar_id}/start",
    response_model=SeminarOut,
    dependencies=[_operator_or_platform],
    summary="The seminar went live (seminar.went_live.v1)",
    description=(
        "At the earliest 60 minutes before the first session starts (the moderator opens "
        "the room early); earlier is 409: a seminar cannot run months ahead of its date. "
        "Starting a live seminar again changes nothing."
    ),
    responses={409: {"description": "too early, or the seminar is completed or cancelled"}},
)
async def start_seminar(seminar_id: Identifier, service: Service) -> SeminarOut:
    return SeminarOut.of(await service.start(seminar_id))


@router.post(
    "/seminars/{seminar_id}/cancel",
    response_model=SeminarOut,
    dependencies=[_operator],
    summary="Cancel (seminar.cancelled.v1; reminders stop)",
)
async def cancel_seminar(
    seminar_id: Identifier, service: Service, body: CancelIn | None = None
) -> SeminarOut:
    return SeminarOut.of(await service.cancel(seminar_id, reason=body.reason if body else None))


@router.post(
    "/seminars/{seminar_id}/complete",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SeminarOut,
    dependencies=[_operator],
    summary="The seminar is over (seminar.completed.v1 with its attendees)",
    description=(
        "Once its last session has started (409 before: a seminar is not over, and does "
        "not count for its year, before it took place); from `live` or straight from "
        "`scheduled` (an imported past season). Completing it again changes nothing."
    ),
    responses={409: {"description": "its last session has not started, or it is cancelled"}},
)
async def complete_seminar(seminar_id: Identifier, service: Service) -> SeminarOut:
    return SeminarOut.of(await service.complete(seminar_id))


@router.post(
    "/seminars/{seminar_id}/attendance",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AttendanceOut,
    dependencies=[_operator_or_platform, IDEMPOTENT],
    summary="Record who attended (confirmed registrants only; the rest come back)",
    description=(
        "Once the first session has started (409 before, even while live: nobody has "
        "attended a session that has not begun), until the seminar is completed. "
        "A past seminar takes attendance at once."
    ),
    responses={409: {"description": "the first session has not started, or it is over"}},
)
async def record_attendance(
    seminar_id: Identifier, body: AttendanceIn, service: Service
) -> AttendanceOut:
    result = await service.record_attendance(seminar_id, body.participant_ids)
    decision = result.decision
    return AttendanceOut(
        seminar_id=seminar_id,
        recorded=decision.recorded,
        already_recorded=decision.already_recorded,
        rejected=list(decision.rejected),
        rejected_reasons=decision.rejected,
        attendee_count=result.attendee_count,
    )


@router.get(
    "/seminars/{seminar_id}/reminders",
    response_model=RemindersOut,
    dependencies=[_operator],
    summary="The seminar's session reminders: pending (planned) and sent",
    description=(
        "One reminder per session and offset (`SEMINAR_REMINDER_OFFSETS_MINUTES`) whose "
        "time is still ahead; a session scheduled or moved inside its lead time, so that "
        "every offset has passed, gets one reminder at once (its `offset_minutes` the "
        "minutes actually left), none once it has started. A cancelled or completed "
        "seminar has no pending ones. Reminders dropped unsent (the session moved, "
        "or started while the service was down) do not appear."
    ),
)
async def seminar_reminders(seminar_id: Identifier, service: Service) -> RemindersOut:
    seminar, reminders = await service.reminders(seminar_id)
    return RemindersOut(
        seminar_id=seminar_id, reminders=[ReminderOut.of(r, seminar.zone) for r in reminders]
    )


@router.get(
    "/seminars/{seminar_id}/roster",
    response_model=RosterOut,
    dependencies=[_operator_or_platform],
    summary="Registrants as the registration service reported them (ids and statuses)",
)
async def roster(seminar_id: Identifier, service: Service) -> RosterOut:
    entries = await service.roster(seminar_id)
    counts = dict.fromkeys(RosterStatus, 0)
    for entry in entries:
        counts[entry.status] += 1
    return RosterOut(
        seminar_id=seminar_id,
        counts=counts,
        entries=[RosterEntryOut(participant_id=e.participant_id, status=e.status) for e in entries],
    )
