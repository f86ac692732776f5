"""The single wiring point of the registration service."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from seminarops_shared.clock import Clock, utc_now
from seminarops_shared.keyed import KeyedWrites
from seminarops_shared.service import Runtime, create_service_app

from . import api, journey_api
from .handlers import (
    OFFER_EXPIRY_JOB,
    PARK_TIMEOUT_JOB,
    PENDING_CANCELLATION_JOB,
    RegistrationService,
    RegistrationsOverHttp,
)
from .journey import CERTIFICATE_ISSUE_JOB, ParticipantJourney
from .journey_repository import CertificateRepository, SeminarFactsRepository
from .repository import (
    ParkedRequestRepository,
    PendingCancellationRepository,
    RegistrationRepository,
    SeminarRepository,
)
from .settings import RegistrationSettings
from .subscribers import seminars_of, subscription

DESCRIPTION = """\
Registrations for seminars: requests from other platform systems (`registration.requests`)
and over HTTP, decided against capacity (confirmed, or waitlisted in arrival order),
cancellations with promotion from the waiting list, seminar changes from `seminar.events`.
Decisions go out on `registration.events`. Names and e-mail addresses stay here.
Certificates of attendance, issued when a seminar completes and publicly verifiable by
their code, and each participant's calendar of their seminars.
"""


def create_app(settings: RegistrationSettings, *, clock: Clock = utc_now) -> FastAPI:
    async def setup(runtime: Runtime) -> RegistrationsOverHttp:
        db = runtime.mongo.db
        seminars = SeminarRepository(db)
        registrations = RegistrationRepository(db)
        parked = ParkedRequestRepository(db)
        cancellations = PendingCancellationRepository(db)
        facts = SeminarFactsRepository(db)
        certificates = CertificateRepository(db)
        for repository in (seminars, registrations, parked, cancellations, facts, certificates):
            await repository.ensure_indexes()
        service = RegistrationService(
            seminars=seminars,
            registrations=registrations,
            parked=parked,
            cancellations=cancellations,
            scheduler=runtime.scheduler,
            park_timeout=timedelta(seconds=settings.park_timeout_s),
            cancellation_lifetime=timedelta(seconds=settings.pending_cancellation_lifetime_s),
            pseudonym=settings.privacy.pseudonym,
        )
        # Every write of a seminar's registrations goes through its seat book: claimed
        # first in each transaction, one writer per seminar at a time in this process
        # (the consumer's batches and the HTTP groups alike).
        journey = ParticipantJourney(
            facts=facts,
            certificates=certificates,
            registrations=registrations,
            pseudonym=settings.privacy.pseudonym,
            certificate_font=settings.certificate_font,
            verify_base_url=(
                None
                if settings.certificate_verify_base_url is None
                else str(settings.certificate_verify_base_url)
            ),
            clock=runtime.clock,
            scheduler=runtime.scheduler,
        )
        seat_books = KeyedWrites(keys_of=seminars_of, claim=seminars.claim)
        runtime.consume(subscription(service, journey=journey, seat_books=seat_books))
        # The journey's routes find their use cases here; ``app`` is bound by the time
        # setup runs (in the lifespan, after create_app returned).
        app.state.journey = journey
        runtime.scheduler.on(CERTIFICATE_ISSUE_JOB, journey.on_issue_due)
        runtime.scheduler.on(PARK_TIMEOUT_JOB, service.parking.on_park_timeout)
        runtime.scheduler.on(PENDING_CANCELLATION_JOB, service.kept.on_cancellation_expired)
        runtime.scheduler.on(OFFER_EXPIRY_JOB, service.offers.on_offer_expired)
        return RegistrationsOverHttp(
            service=service,
            uow=runtime.uow,
            clock=runtime.clock,
            group_max=settings.http_group_max,
            patience_s=settings.http_patience_s,
            seat_books=seat_books,
        )

    app = create_service_app(
        settings,
        title="seminar-ops registration service",
        description=DESCRIPTION,
        routers=[api.router, journey_api.router],
        setup=setup,
        clock=clock,
    )
    return app
