"""The participant journey's events as the metrics service sees them: offers, their
answers, registering again and ineligible requests are counted per registration from
neighbouring versions, in whatever order the events come and however often; a
registration counts once in ``requested`` and ``confirmed`` however many times the
person registered; certificates are counted issued, revoked and valid."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from metrics.domain import (
    CertificateView,
    RegistrationView,
    certificate_after,
    registration_after,
    registration_tally,
)
from metrics.handlers import Projector
from metrics.reports import SeminarFunnelInput, certificates_csv, certificates_report, funnel_report
from metrics.store import MemoryProjectionStore
from metrics.subscribers import subscription
from seminarops_shared.events.registration import (
    CertificateIssued,
    CertificateRevoked,
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationOffered,
    RegistrationRejected,
    RegistrationStatus,
    RegistrationWaitlisted,
)
from seminarops_shared.events.seminar import SeminarCompleted
from seminarops_shared.events.vocabulary import Kind, Programme

AT = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
IDS: dict[str, Any] = {"registration_id": "reg-1", "seminar_id": "sem-1", "participant_id": "p1"}
JOURNEY = (
    "registered_again",
    "offers_made",
    "offers_accepted",
    "offers_declined",
    "offers_expired",
    "not_eligible",
)


def _fold(*events: Any) -> RegistrationView:
    view: RegistrationView | None = None
    for event in events:
        view = registration_after(view, event, participant_id="p1")
    assert view is not None
    return view


def _journey(view: RegistrationView) -> dict[str, int]:
    tally = registration_tally(view)
    return {key: tally[key] for key in JOURNEY if tally[key]}


def _cancelled(version: int, reason: str, previous: RegistrationStatus) -> RegistrationCancelled:
    return RegistrationCancelled(**IDS, version=version, previous_status=previous, reason=reason)


# A person waitlisted, offered a seat that lapsed, registered again (waitlisted),
# offered again and declined, registered again (confirmed), cancelled, registered again
# (waitlisted), offered a seat and accepted it.
LIFE = [
    RegistrationWaitlisted(**IDS, version=1, requested_at=AT, position=1),
    RegistrationOffered(**IDS, version=2, offer_expires_at=AT),
    _cancelled(3, "offer_expired", RegistrationStatus.OFFERED),
    RegistrationWaitlisted(**IDS, version=4, requested_at=AT, position=2),
    RegistrationOffered(**IDS, version=5, offer_expires_at=AT),
    _cancelled(6, "offer_declined", RegistrationStatus.OFFERED),
    RegistrationConfirmed(**IDS, version=7, requested_at=AT),
    _cancelled(8, "participant_request", RegistrationStatus.CONFIRMED),
    RegistrationWaitlisted(**IDS, version=9, requested_at=AT, position=1),
    RegistrationOffered(**IDS, version=10, offer_expires_at=AT),
    RegistrationConfirmed(**IDS, version=11, requested_at=AT),
]
LIFE_COUNTS = {
    "registered_again": 3,
    "offers_made": 3,
    "offers_accepted": 1,
    "offers_declined": 1,
    "offers_expired": 1,
}


def test_offers_and_certificates_are_projected() -> None:
    handlers = subscription(SimpleNamespace(project_batch=None)).handlers  # type: ignore[arg-type]
    for kind in (RegistrationOffered, CertificateIssued, CertificateRevoked):
        assert kind in handlers
        assert handlers[kind].idempotent  # folds converge: no processed-event marker


def test_a_life_of_offers_and_registering_again_counts_each_step_once() -> None:
    view = _fold(*LIFE)
    tally = registration_tally(view)
    assert view.status is RegistrationStatus.CONFIRMED
    assert _journey(view) == LIFE_COUNTS
    # One registration, one person: requested and confirmed count it once.
    assert (tally["requested"], tally["confirmed"], tally["cancelled"]) == (1, 1, 0)
    assert tally["status:confirmed"] == 1


@pytest.mark.parametrize("seed", range(6))
def test_the_counts_do_not_depend_on_order_or_repeats(seed: int) -> None:
    shuffled = list(LIFE)
    # A deterministic shuffle per seed, with every event delivered twice.
    shuffled = [shuffled[(i * (seed + 5)) % len(shuffled)] for i in range(len(shuffled))]
    assert sorted(e.version for e in shuffled) == list(range(1, 12))
    assert _journey(_fold(*shuffled, *reversed(shuffled))) == LIFE_COUNTS


def test_an_offer_not_yet_answered_counts_as_made_only_and_shows_offered() -> None:
    view = _fold(*LIFE[:2])
    assert view.status is RegistrationStatus.OFFERED
    assert _journey(view) == {"offers_made": 1}


def test_a_promotion_after_a_plain_waitlist_is_not_a_registration_again() -> None:
    waitlisted = RegistrationWaitlisted(**IDS, version=1, requested_at=AT, position=1)
    confirmed = RegistrationConfirmed(**IDS, version=2, requested_at=AT)
    assert _journey(_fold(waitlisted, confirmed)) == {}


@pytest.mark.parametrize(
    ("reason", "counted"),
    [("not_eligible", {"not_eligible": 1}), ("seminar_closed", {})],
)
def test_only_ineligible_rejections_count_as_not_eligible(
    reason: str, counted: dict[str, int]
) -> None:
    view = _fold(RegistrationRejected(**IDS, version=1, reason=reason))
    assert view.status is RegistrationStatus.REJECTED
    assert _journey(view) == counted
    assert registration_tally(view)["rejected"] == 1


async def test_registering_again_keeps_one_participation_and_one_confirmed_seat() -> None:
    store = MemoryProjectionStore()
    projector = Projector(pseudonym_key=b"metrics-unit-test-pseudonym-key")
    confirmed = RegistrationConfirmed(**IDS, version=1, requested_at=AT, country="PT")
    cancelled = _cancelled(2, "participant_request", RegistrationStatus.CONFIRMED)
    again = RegistrationConfirmed(**IDS, version=3, requested_at=AT, country="PT")
    completed = SeminarCompleted(
        seminar_id="sem-1",
        kind=Kind.ONLINE_SEMINAR,
        programme=Programme.ETWINNING,
        year=2026,
        attendee_ids=["p1"],
    )
    for data in (confirmed, cancelled, again, again, completed, completed):
        await projector.apply(data, store)
    tally = store.tallies["sem-1"]
    assert (tally["requested"], tally["confirmed"], tally["registered_again"]) == (1, 1, 1)
    assert tally["attended"] == 1
    assert len(store.participations_by_key) == 1


def _certificate(kind: type[Any], cert: str, **fields: Any) -> Any:
    data = {
        "certificate_id": cert,
        "seminar_id": "sem-1",
        "participant_id": "p1",
        "kind": Kind.LEARNING_EVENT,
        "programme": Programme.ETWINNING_PLUS,
        "year": 2026,
        **fields,
    }
    if kind is CertificateIssued:
        return CertificateIssued(**data, issued_at=AT)
    return CertificateRevoked(**data, revoked_at=AT, reason="participant_erased")


def test_a_revoked_certificate_stays_revoked_whatever_the_order() -> None:
    issued = _certificate(CertificateIssued, "cert-1")
    revoked = _certificate(CertificateRevoked, "cert-1")
    for order in itertools.permutations([issued, revoked, issued]):
        view: CertificateView | None = None
        for event in order:
            view = certificate_after(view, event)
        assert view is not None
        assert view.revoked
        assert (view.kind, view.programme, view.year) == (
            Kind.LEARNING_EVENT,
            Programme.ETWINNING_PLUS,
            2026,
        )


def test_the_certificates_report_adds_up_per_group_and_in_total() -> None:
    report = certificates_report(
        2026,
        {
            (Kind.PD_WORKSHOP, Programme.ETWINNING): (4, 1),
            (Kind.LEARNING_EVENT, Programme.ETWINNING_PLUS): (10, 0),
        },
    )
    assert [(r.kind, r.issued, r.revoked, r.valid) for r in report.rows] == [
        (Kind.LEARNING_EVENT, 10, 0, 10),
        (Kind.PD_WORKSHOP, 4, 1, 3),
    ]
    assert (report.total.issued, report.total.revoked, report.total.valid) == (14, 1, 13)
    lines = certificates_csv(report).splitlines()
    assert lines[0] == "year,kind,programme,issued,revoked,valid"
    assert lines[-1] == "2026,total,,14,1,13"


def test_the_funnel_adds_the_journey_counts_per_seminar_and_in_the_year_total() -> None:
    counts = [
        SeminarFunnelInput(
            seminar_id=f"sem-{n}",
            title=None,
            kind=Kind.ONLINE_SEMINAR,
            programme=Programme.ETWINNING,
            counts={"requested": 2, "registered_again": n, "offers_made": 2, "not_eligible": 1},
        )
        for n in (1, 2)
    ]
    report = funnel_report(2026, None, counts)
    assert [s.registered_again for s in report.seminars] == [1, 2]
    assert (report.total.registered_again, report.total.offers_made) == (3, 4)
    assert report.total.not_eligible == 2
    assert report.by_kind[0].offers_made == 4
