"""The participant journey's registration events as the metrics service sees them:
``registration.offered.v1`` is skipped (counted as ignored, never dead-lettered), and
the counts stay right around it: an accepted offer counts as confirmed, a lapsed one
never did."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from metrics.domain import RegistrationView, registration_after
from metrics.subscribers import subscription
from seminarops_shared.events.registration import (
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationOffered,
    RegistrationStatus,
    RegistrationWaitlisted,
)

AT = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
IDS: dict[str, Any] = {"registration_id": "reg-1", "seminar_id": "sem-1", "participant_id": "p1"}


def _fold(*events: Any) -> RegistrationView:
    view: RegistrationView | None = None
    for event in events:
        view = registration_after(view, event, participant_id="p1")
    assert view is not None
    return view


def test_offers_are_not_projected_so_the_consumer_skips_them() -> None:
    handlers = subscription(SimpleNamespace(project_batch=None)).handlers  # type: ignore[arg-type]
    assert RegistrationOffered not in handlers
    assert RegistrationConfirmed in handlers
    assert RegistrationCancelled in handlers


def test_an_accepted_offer_counts_as_confirmed_and_a_lapsed_one_never_did() -> None:
    waitlisted = RegistrationWaitlisted(**IDS, version=1, requested_at=AT, position=1)
    # version 2 was registration.offered.v1, which metrics does not project.
    accepted = RegistrationConfirmed(**IDS, version=3, requested_at=AT)
    lapsed = RegistrationCancelled(
        **IDS, version=3, previous_status=RegistrationStatus.OFFERED, reason="offer_expired"
    )
    took_it = _fold(waitlisted, accepted)
    let_go = _fold(lapsed, waitlisted)  # in any order: the highest version wins
    assert (took_it.status, took_it.ever_confirmed) == (RegistrationStatus.CONFIRMED, True)
    assert (let_go.status, let_go.ever_confirmed) == (RegistrationStatus.CANCELLED, False)
    # Registering again after cancelling: the newest version's status counts.
    again = RegistrationWaitlisted(**IDS, version=4, requested_at=AT, position=3)
    assert _fold(waitlisted, lapsed, again).status is RegistrationStatus.WAITLISTED
