"""The registration use cases, one module each: deciding requests (``deciding``, with
``parking`` for seminars not known yet), cancelling (``cancelling``, with
``kept_cancellations`` for those that come first), the seminar lifecycle
(``seminar_changes``), seat offers (``offers``), erasure, reads; ``seat_moves`` holds the seat changes several of
them share, ``documents`` the documents and events they write. ``service`` wires them
together; ``over_http`` runs them for the HTTP API. Kafka subscribers and HTTP routes
call these; neither decides anything itself.

Every use case runs inside one transaction (``uow``): the state change, the events it
emits (outbox) and, for consumed events, the processed-event markers commit together.
"""

from .kept_cancellations import PENDING_CANCELLATION_JOB
from .offers import NoOpenOffer
from .outcomes import (
    CancellationRequest,
    Outcome,
    OutcomeStatus,
    RegistrationClosed,
    RegistrationRequest,
)
from .over_http import RegistrationsOverHttp
from .parking import PARK_TIMEOUT_JOB
from .seat_moves import OFFER_EXPIRY_JOB
from .service import RegistrationService

__all__ = [
    "OFFER_EXPIRY_JOB",
    "PARK_TIMEOUT_JOB",
    "PENDING_CANCELLATION_JOB",
    "CancellationRequest",
    "NoOpenOffer",
    "Outcome",
    "OutcomeStatus",
    "RegistrationClosed",
    "RegistrationRequest",
    "RegistrationService",
    "RegistrationsOverHttp",
]
