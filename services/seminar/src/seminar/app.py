"""The single wiring point of the seminar service."""

from __future__ import annotations

from fastapi import FastAPI

from seminarops_shared.clock import Clock, utc_now
from seminarops_shared.service import Runtime, create_service_app

from . import api
from .handlers import REMINDER_JOB, SeminarService
from .repository import (
    AttendanceRepository,
    ReminderLog,
    RosterRepository,
    SeminarRepository,
)
from .settings import SeminarSettings
from .subscribers import subscription

DESCRIPTION = """Schedules the programme's seminars (online seminars, learning events,
eTwinning Plus learning events, PD workshops): sessions in their own time zone, lifecycle
(scheduled, live, completed, cancelled), season imports from CSV, rosters (projected from
`registration.events`), attendance, and reminders before each session.

Publishes `seminar.events` (seminar.scheduled/rescheduled/went_live/cancelled/completed,
attendance.recorded, seminar.reminder_due); consumes `registration.events`.

Nothing happens before it can have happened: a seminar goes live at most 60 minutes
before its first session, takes attendance from that session's start and completes
from its last session's start (409 earlier); past seasons do all of it at once.

Roles: `operator` for every change and for a seminar's reminders (`/reminders`);
`platform` may also start a seminar, record attendance and read rosters. Reading
seminars and their calendars (`/calendar.ics`) needs no token (no personal data).

Settings (besides the shared `KAFKA_*`, `MONGODB_*`, `AUTH_TOKENS`):
`SEMINAR_PORT` (8002), `SEMINAR_REMINDER_OFFSETS_MINUTES` (`[1440, 60]`: minutes before
each session), `SEMINAR_IMPORT_MAX_ROWS` (5000), `SEMINAR_IMPORT_MAX_BYTES` (5 MiB),
`SEMINAR_SCHEDULER_POLL_INTERVAL_S` (1)."""


def create_app(settings: SeminarSettings, *, clock: Clock = utc_now) -> FastAPI:
    async def setup(runtime: Runtime) -> SeminarService:
        seminars = SeminarRepository(runtime.mongo.db)
        roster = RosterRepository(runtime.mongo.db)
        attendance = AttendanceRepository(runtime.mongo.db)
        reminder_log = ReminderLog(runtime.mongo.db)
        for repository in (seminars, roster, attendance, reminder_log):
            await repository.ensure_indexes()
        service = SeminarService(
            seminars=seminars,
            roster=roster,
            attendance=attendance,
            reminder_log=reminder_log,
            uow=runtime.uow,
            scheduler=runtime.scheduler,
            reminder_offsets_minutes=settings.reminder_offsets_minutes,
            pseudonym_key=settings.privacy.key,
        )
        runtime.consume(subscription(service))
        runtime.scheduler.on(REMINDER_JOB, service.send_reminder)
        return service

    app = create_service_app(
        settings,
        title="seminar-ops seminar service",
        description=DESCRIPTION,
        routers=[api.router],
        setup=setup,
        clock=clock,
    )
    app.state.import_max_rows = settings.import_max_rows
    app.state.import_max_bytes = settings.import_max_bytes
    return app
