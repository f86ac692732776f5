"""The single wiring point of the feedback service."""

from __future__ import annotations

from fastapi import FastAPI

from seminarops_shared.clock import Clock, utc_now
from seminarops_shared.service import Runtime, create_service_app

from . import api, subscribers
from .handlers import FeedbackService, WindowPolicy
from .repository import EvaluationRepository, FormRepository, ResponseRepository
from .settings import FeedbackSettings

DESCRIPTION = """\
Evaluation forms, one response per attendee per seminar, response rates and exports.

A seminar's evaluation window opens when the seminar service reports it completed
(`seminar.completed.v1`) and closes `FEEDBACK_WINDOW_DAYS` later. Events on
`feedback.events`: `evaluation.window_opened.v1`, `evaluation.invited.v1`,
`evaluation.reminder_due.v1`, `evaluation.submitted.v1`, `evaluation.window_closed.v1`.
"""


def create_app(settings: FeedbackSettings, *, clock: Clock = utc_now) -> FastAPI:
    async def setup(runtime: Runtime) -> FeedbackService:
        db = runtime.mongo.db
        forms, evaluations, responses = (
            FormRepository(db),
            EvaluationRepository(db),
            ResponseRepository(db),
        )
        for repository in (forms, evaluations, responses):
            await repository.ensure_indexes()
        service = FeedbackService(
            forms=forms,
            evaluations=evaluations,
            responses=responses,
            uow=runtime.uow,
            scheduler=runtime.scheduler,
            clock=runtime.clock,
            policy=WindowPolicy(
                days=settings.window_days,
                reminder_before_close=settings.reminder_before_close,
                close_grace=settings.close_grace,
            ),
            pseudonym_key=settings.privacy.key,
        )
        await service.ensure_default_forms()
        subscribers.register(runtime, service)
        return service

    return create_service_app(
        settings,
        title="seminar-ops feedback service",
        description=DESCRIPTION,
        routers=[api.router],
        setup=setup,
        clock=clock,
    )
