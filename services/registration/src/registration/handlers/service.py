"""The registration use cases wired together over the service's repositories."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from seminarops_shared.scheduler import Scheduler

from ..repository import (
    ParkedRequestRepository,
    PendingCancellationRepository,
    RegistrationRepository,
    SeminarRepository,
)
from .cancelling import RegistrationCancelling
from .deciding import RequestDecisions
from .erasure import ParticipantErasure
from .kept_cancellations import KeptCancellations
from .offers import SeatOffers
from .parking import RequestParking
from .reads import RegistrationReads
from .seat_moves import SeatMoves
from .seminar_changes import SeminarChanges


class RegistrationService:
    """Every registration use case, one object per use case: ``requests`` (deciding),
    ``cancelling``, ``offers`` (answering seat offers, and their expiry),
    ``seminar_changes`` (the seminar lifecycle), ``erasure``, ``reads``, and the other
    timers' handlers (``parking``, ``kept``)."""

    def __init__(
        self,
        *,
        seminars: SeminarRepository,
        registrations: RegistrationRepository,
        parked: ParkedRequestRepository,
        cancellations: PendingCancellationRepository,
        scheduler: Scheduler,
        park_timeout: timedelta,
        cancellation_lifetime: timedelta,
        pseudonym: Callable[[str], str],
    ) -> None:
        moves = SeatMoves(
            seminars=seminars, registrations=registrations, parked=parked, scheduler=scheduler
        )
        self.kept = KeptCancellations(
            seminars=seminars,
            cancellations=cancellations,
            scheduler=scheduler,
            lifetime=cancellation_lifetime,
        )
        self.parking = RequestParking(
            seminars=seminars,
            registrations=registrations,
            parked=parked,
            scheduler=scheduler,
            timeout=park_timeout,
        )
        self.requests = RequestDecisions(
            seminars=seminars,
            registrations=registrations,
            parked=parked,
            cancellations=cancellations,
            parking=self.parking,
            kept=self.kept,
            moves=moves,
        )
        self.cancelling = RegistrationCancelling(
            seminars=seminars,
            registrations=registrations,
            parked=parked,
            kept=self.kept,
            moves=moves,
        )
        self.seminar_changes = SeminarChanges(
            seminars=seminars,
            registrations=registrations,
            parked=parked,
            parking=self.parking,
            decisions=self.requests,
            kept=self.kept,
            moves=moves,
            scheduler=scheduler,
        )
        self.offers = SeatOffers(
            seminars=seminars, registrations=registrations, moves=moves, scheduler=scheduler
        )
        self.erasure = ParticipantErasure(
            registrations=registrations,
            parked=parked,
            cancellations=cancellations,
            scheduler=scheduler,
            pseudonym=pseudonym,
        )
        self.reads = RegistrationReads(
            seminars=seminars, registrations=registrations, parked=parked
        )
