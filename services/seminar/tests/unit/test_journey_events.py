"""The participant journey's registration events as the seminar service sees them:
``registration.offered.v1`` leaves the roster alone (skipped, never dead-lettered), and
a lapsed or declined offer's cancellation (``previous_status`` ``offered``) is read."""

from __future__ import annotations

from types import SimpleNamespace

from seminar.subscribers import subscription
from seminarops_shared.events.registration import (
    CertificateIssued,
    CertificateRevoked,
    RegistrationCancelled,
    RegistrationOffered,
    RegistrationStatus,
)


def test_offers_are_skipped_and_their_cancellations_read() -> None:
    handlers = subscription(SimpleNamespace()).handlers  # type: ignore[arg-type]
    assert RegistrationOffered not in handlers
    assert RegistrationCancelled in handlers
    lapsed = RegistrationCancelled.model_validate(
        {
            "registration_id": "reg-1",
            "seminar_id": "sem-1",
            "participant_id": "p1",
            "version": 3,
            "previous_status": "offered",
            "reason": "offer_expired",
        }
    )
    assert lapsed.previous_status is RegistrationStatus.OFFERED


def test_certificate_events_are_skipped() -> None:
    """Certificates are the registration service's and the metrics' concern: the
    rosters neither change nor dead-letter them."""
    handlers = subscription(SimpleNamespace()).handlers  # type: ignore[arg-type]
    assert CertificateIssued not in handlers
    assert CertificateRevoked not in handlers
