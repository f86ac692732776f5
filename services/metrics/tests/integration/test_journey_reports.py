"""The participant journey through the real broker and database: offers and their
answers, registering again and ineligible requests in the funnel (per seminar and in
the year's total), certificates issued and revoked in the certificates report (JSON
and CSV); repeats change nothing, a bad certificate event is dead-lettered with its
reason while the rest goes on, and a rebuild from the topics gives the same reports."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from metrics.app import create_app
from metrics.rebuild import rebuild
from metrics.repository import PROJECTION_FORMAT, ProjectionPointer
from metrics.settings import MetricsSettings
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.events import Event
from seminarops_shared.events.envelope import Envelope
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
from seminarops_shared.events.seminar import (
    AttendanceRecorded,
    SeminarCompleted,
    SeminarScheduled,
    SessionTimes,
)
from seminarops_shared.events.topics import REGISTRATION_EVENTS
from seminarops_shared.events.vocabulary import Kind, Programme

pytestmark = pytest.mark.integration

AT = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
REGISTRATION = "/services/registration"
SEMINAR = "/services/seminar"
JOURNEY = (
    "registered_again",
    "offers_made",
    "offers_accepted",
    "offers_declined",
    "offers_expired",
    "not_eligible",
)


def _settings(namespace: Namespace) -> MetricsSettings:
    return namespace.settings(MetricsSettings, gauges_refresh_interval_s=0.1, gauges_max_age_s=1.0)


def _scheduled(seminar_id: str, kind: Kind) -> SeminarScheduled:
    return SeminarScheduled(
        seminar_id=seminar_id,
        title=f"Seminar {seminar_id}",
        kind=kind,
        programme=Programme.ETWINNING,
        language="en",
        timezone="Europe/Brussels",
        sessions=[SessionTimes(starts_at=AT, ends_at=AT + timedelta(hours=2))],
        capacity=2,
        year=2025,
    )


def _reg(seminar: str, person: str) -> dict[str, Any]:
    return {
        "registration_id": f"{seminar}-{person}",
        "seminar_id": seminar,
        "participant_id": person,
        "country": "PT",
    }


def _cancelled(seminar: str, person: str, version: int, reason: str) -> RegistrationCancelled:
    return RegistrationCancelled(
        **_reg(seminar, person),
        version=version,
        previous_status=RegistrationStatus.OFFERED,
        reason=reason,
    )


def _certificate(kind: type[Any], seminar: str, person: str, seminar_kind: Kind) -> Any:
    fields = {
        "certificate_id": f"cert-{seminar}-{person}",
        "seminar_id": seminar,
        "participant_id": person,
        "kind": seminar_kind,
        "programme": Programme.ETWINNING,
        "year": 2025,
    }
    if kind is CertificateIssued:
        return CertificateIssued(**fields, issued_at=AT)
    return CertificateRevoked(**fields, revoked_at=AT, reason="participant_erased")


def _history() -> list[tuple[Event, str]]:
    """Seminar j1 (online, offers): p1 confirmed, cancelled and registered again
    (confirmed); p2 waitlisted, offered, accepted; p3 offered and declined; p4 offered,
    let it lapse and registered again (waitlisted); p5 not eligible. p1 and p2 attended
    (listed twice) and got certificates; p1's was revoked later. Seminar j2 (pd
    workshop): one certificate."""
    j1, j2 = "j1", "j2"
    events: list[Event] = [
        _scheduled(j1, Kind.ONLINE_SEMINAR),
        _scheduled(j2, Kind.PD_WORKSHOP),
    ]
    sent: list[tuple[Event, str]] = [(e, SEMINAR) for e in events]
    registrations: list[Event] = [
        RegistrationConfirmed(**_reg(j1, "p1"), version=1, requested_at=AT),
        RegistrationCancelled(
            **_reg(j1, "p1"),
            version=2,
            previous_status=RegistrationStatus.CONFIRMED,
            reason="participant_request",
        ),
        RegistrationConfirmed(**_reg(j1, "p1"), version=3, requested_at=AT),
        RegistrationWaitlisted(**_reg(j1, "p2"), version=1, requested_at=AT, position=1),
        RegistrationOffered(**_reg(j1, "p2"), version=2, offer_expires_at=AT),
        RegistrationConfirmed(**_reg(j1, "p2"), version=3, requested_at=AT),
        RegistrationWaitlisted(**_reg(j1, "p3"), version=1, requested_at=AT, position=1),
        RegistrationOffered(**_reg(j1, "p3"), version=2, offer_expires_at=AT),
        _cancelled(j1, "p3", 3, "offer_declined"),
        RegistrationWaitlisted(**_reg(j1, "p4"), version=1, requested_at=AT, position=2),
        RegistrationOffered(**_reg(j1, "p4"), version=2, offer_expires_at=AT),
        _cancelled(j1, "p4", 3, "offer_expired"),
        RegistrationWaitlisted(**_reg(j1, "p4"), version=4, requested_at=AT, position=1),
        RegistrationRejected(**_reg(j1, "p5"), version=1, reason="not_eligible"),
    ]
    sent += [(e, REGISTRATION) for e in registrations]
    for _ in range(2):
        sent.append(
            (
                AttendanceRecorded(
                    seminar_id=j1,
                    kind=Kind.ONLINE_SEMINAR,
                    programme=Programme.ETWINNING,
                    year=2025,
                    participant_ids=["p1", "p2"],
                ),
                SEMINAR,
            )
        )
    sent.append(
        (
            SeminarCompleted(
                seminar_id=j1,
                kind=Kind.ONLINE_SEMINAR,
                programme=Programme.ETWINNING,
                year=2025,
                attendee_ids=["p1", "p2"],
            ),
            SEMINAR,
        )
    )
    certificates = [
        _certificate(CertificateIssued, j1, "p1", Kind.ONLINE_SEMINAR),
        _certificate(CertificateIssued, j1, "p2", Kind.ONLINE_SEMINAR),
        _certificate(CertificateIssued, j2, "q1", Kind.PD_WORKSHOP),
        _certificate(CertificateRevoked, j1, "p1", Kind.ONLINE_SEMINAR),
    ]
    sent += [(e, REGISTRATION) for e in certificates]
    return sent


async def _json(client: Any, path: str) -> Any:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


async def _reports(client: Any) -> dict[str, Any]:
    return {
        path: await _json(client, path)
        for path in (
            "/v1/reports/funnel?year=2025",
            "/v1/reports/certificates?year=2025",
            "/v1/reports/participation?year=2025",
        )
    }


async def test_the_journey_is_counted_once_each_and_certificates_are_reported(
    namespace: Namespace, kafka: KafkaProbe, helpers: Any
) -> None:
    settings = _settings(namespace)
    app = create_app(settings)
    async with running(app) as client:
        pointer = ProjectionPointer(app.state.runtime.mongo.db)
        fresh_format = await pointer.active_format()
        sent: list[Envelope] = []
        for data, source in _history():
            sent.append(await kafka.send_event(data, source=source))
        # A certificate event without its year: dead-lettered, the rest goes on.
        bad = sent[-1].model_copy(update={"id": "bad-cert", "data": {"certificate_id": "c"}})
        await kafka.send_envelope(bad, topic=REGISTRATION_EVENTS, key="j1")
        await helpers.wait_processed(app, len(sent) + 1)
        first = await _reports(client)
        as_csv = await client.get("/v1/reports/certificates.csv?year=2025")
        # Every event delivered again (at least once): nothing moves.
        for envelope in sent:
            await kafka.send_envelope(envelope, topic=_topic(envelope), key=str(envelope.subject))
        await helpers.wait_processed(app, 2 * len(sent) + 1)
        again = await _reports(client)
        dead = await eventually(
            lambda: kafka.read_all(REGISTRATION_EVENTS + ".dlq"),
            until=lambda r: len(r) == 1,
            what="the bad certificate event dead-lettered",
        )

        result = await rebuild(settings)
        rebuilt = await _reports(client)
        rebuilt_format = await pointer.active_format()

    assert fresh_format == PROJECTION_FORMAT  # an empty set is marked at start-up
    assert again == first
    assert rebuilt == first
    assert result.events_applied == len(sent)
    assert rebuilt_format == PROJECTION_FORMAT
    assert dict(dead[0].headers)["x-dlq-reason-kind"] == b"invalid_data"

    funnel = first["/v1/reports/funnel?year=2025"]
    j1 = next(s for s in funnel["seminars"] if s["seminar_id"] == "j1")
    assert {k: j1[k] for k in JOURNEY} == {
        "registered_again": 2,
        "offers_made": 3,
        "offers_accepted": 1,
        "offers_declined": 1,
        "offers_expired": 1,
        "not_eligible": 1,
    }
    # p1 registered twice: one request, one confirmed seat, one participant.
    assert (j1["requested"], j1["confirmed"], j1["attended"]) == (5, 2, 2)
    assert (j1["cancelled"], j1["rejected"], j1["waitlisted"]) == (1, 1, 3)
    assert {k: funnel["total"][k] for k in JOURNEY} == {k: j1[k] for k in JOURNEY}
    participation = first["/v1/reports/participation?year=2025"]
    assert participation["total_participants"] == 2

    assert first["/v1/reports/certificates?year=2025"] == {
        "year": 2025,
        "rows": [
            {"kind": "online_seminar", "programme": "etwinning", "issued": 2, "revoked": 1,
             "valid": 1},
            {"kind": "pd_workshop", "programme": "etwinning", "issued": 1, "revoked": 0,
             "valid": 1},
        ],
        "total": {"issued": 3, "revoked": 1, "valid": 2},
    }  # fmt: skip
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(as_csv.text))) == [
        ["year", "kind", "programme", "issued", "revoked", "valid"],
        ["2025", "online_seminar", "etwinning", "2", "1", "1"],
        ["2025", "pd_workshop", "etwinning", "1", "0", "1"],
        ["2025", "total", "", "3", "1", "2"],
    ]


def _topic(envelope: Envelope) -> str:
    return REGISTRATION_EVENTS if envelope.source == REGISTRATION else "seminar.events"


async def test_an_older_format_with_projections_is_not_marked_current(
    namespace: Namespace,
) -> None:
    """Projections written by a version without the journey counts: the service keeps
    serving them and asks for a rebuild (the format stays older until one runs)."""
    settings = _settings(namespace)
    app = create_app(settings)
    async with running(app):
        db = app.state.runtime.mongo.db
        await db["projection_state"].update_one({"_id": "active"}, {"$unset": {"format": ""}})
        await db["registrations"].insert_one(
            {"_id": "old", "seminar_id": "s", "participant_id": "p", "status": "confirmed",
             "version": 1}
        )  # fmt: skip
    restarted = create_app(settings)
    async with running(restarted) as client:
        pointer = ProjectionPointer(restarted.state.runtime.mongo.db)
        older = await pointer.active_format()
        funnel = await _json(client, "/v1/reports/funnel?year=2025")
    assert older == 1
    assert funnel["total"]["requested"] == 0
