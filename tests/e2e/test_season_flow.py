"""All four services together, through the contract only: HTTP paths, the inbound
topic, the report shapes. One seminar goes from scheduling to the yearly report, with
duplicates, a waiting list, a cancellation, attendance, evaluations and an erasure."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace
from seminarops_shared.clock import utc_now
from seminarops_shared.events import envelope_for
from seminarops_shared.events.inbound import (
    Participant,
    ParticipantErasureRequested,
    RegistrationCancellationRequested,
    RegistrationRequested,
)
from seminarops_shared.events.topics import ALL_TOPICS, REGISTRATION_EVENTS, REGISTRATION_REQUESTS
from seminarops_shared.privacy import is_pseudonym

from .conftest import OPERATOR, PARTICIPANT, PLATFORM, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PEOPLE = {
    "t-ana": Participant(
        id="t-ana",
        display_name="Ana Quintela-Sousa",
        email="ana.qs@school-pt.example",
        country="PT",
        school_id="sch-pt-1",
    ),
    "t-bea": Participant(
        id="t-bea",
        display_name="Beatrix Vandermolen",
        email="bea.vdm@school-be.example",
        country="BE",
        school_id="sch-be-7",
    ),
    "t-cem": Participant(
        id="t-cem",
        display_name="Cem Aydinoglu",
        email="cem.a@school-tr.example",
        country="TR",
        school_id="sch-tr-3",
    ),
}


async def _send_request(
    kafka: KafkaProbe, seminar_id: str, person: str, *, event_id: str | None = None
) -> str:
    envelope = envelope_for(
        RegistrationRequested(seminar_id=seminar_id, participant=PEOPLE[person]),
        source="/platform/teacher-portal",
        time=utc_now(),
        event_id=event_id,
    )
    await kafka.send_envelope(envelope, topic=REGISTRATION_REQUESTS, key=seminar_id)
    return envelope.id


async def _statuses(stack: Stack, seminar_id: str) -> dict[str, str]:
    response = await stack.registration.get(
        f"/v1/seminars/{seminar_id}/registrations", headers=OPERATOR
    )
    if response.status_code == 404:
        return {}
    response.raise_for_status()
    return {r["participant_id"]: r["status"] for r in response.json()["registrations"]}


async def _report(stack: Stack, name: str, year: int) -> dict[str, Any]:
    response = await stack.metrics.get(f"/v1/reports/{name}", params={"year": year})
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def test_a_seminar_from_scheduling_to_the_yearly_report(
    stack: Stack, kafka: KafkaProbe, namespace: Namespace
) -> None:
    title = f"AI in the classroom {uuid.uuid4().hex[:6]}"
    # 1. An operator schedules a seminar of an earlier season (past dates are allowed).
    created = await stack.seminar.post(
        "/v1/seminars",
        headers=OPERATOR,
        json={
            "title": title,
            "kind": "online_seminar",
            "programme": "etwinning",
            "starts_at": "2025-03-10T16:00:00+01:00",
            "ends_at": "2025-03-10T17:30:00+01:00",
            "timezone": "Europe/Brussels",
            "capacity": 2,
            "language": "en",
            "theme": "Artificial intelligence",
        },
    )
    assert created.status_code == 201, created.text
    seminar_id = created.json()["id"]
    assert (await stack.seminar.post("/v1/seminars", json={"title": "x"})).status_code == 401

    # 2. Registrations: Ana over Kafka (delivered twice), Bea over HTTP, Cem over Kafka.
    ana_request = await _send_request(kafka, seminar_id, "t-ana")
    await _send_request(kafka, seminar_id, "t-ana", event_id=ana_request)
    await eventually(
        lambda: _statuses(stack, seminar_id),
        until=lambda s: s.get("t-ana") == "confirmed",
        what="Ana confirmed",
    )
    bea = await stack.registration.post(
        "/v1/registrations",
        headers=PLATFORM,
        json={"seminar_id": seminar_id, "participant": PEOPLE["t-bea"].model_dump(mode="json")},
    )
    assert bea.status_code == 201, bea.text
    assert bea.json()["status"] == "confirmed"
    again = await stack.registration.post(
        "/v1/registrations",
        headers=PLATFORM,
        json={"seminar_id": seminar_id, "participant": PEOPLE["t-bea"].model_dump(mode="json")},
    )
    assert again.status_code == 200
    assert again.json()["id"] == bea.json()["id"]
    await _send_request(kafka, seminar_id, "t-cem")
    statuses = await eventually(
        lambda: _statuses(stack, seminar_id),
        until=lambda s: len(s) == 3,
        what="three registrations",
    )
    assert statuses == {"t-ana": "confirmed", "t-bea": "confirmed", "t-cem": "waitlisted"}
    listing = await stack.registration.get(
        f"/v1/seminars/{seminar_id}/registrations", headers=PARTICIPANT
    )
    assert listing.status_code == 403
    assert (
        await stack.registration.get(f"/v1/seminars/{seminar_id}/registrations")
    ).status_code == 401

    # 3. Ana cancels from the portal: her seat goes to Cem, the head of the waiting list.
    await kafka.send_event(
        RegistrationCancellationRequested(seminar_id=seminar_id, participant_id="t-ana")
    )
    statuses = await eventually(
        lambda: _statuses(stack, seminar_id),
        until=lambda s: s.get("t-cem") == "confirmed",
        what="Cem promoted",
    )
    assert statuses == {"t-ana": "cancelled", "t-bea": "confirmed", "t-cem": "confirmed"}

    # 4. The seminar service's roster follows; attendance counts confirmed registrants only.
    async def roster() -> dict[str, str]:
        response = await stack.seminar.get(f"/v1/seminars/{seminar_id}/roster", headers=OPERATOR)
        response.raise_for_status()
        body = response.json()
        entries = body.get("entries", body.get("roster", []))
        return {e["participant_id"]: e["status"] for e in entries}

    await eventually(
        roster,
        until=lambda r: r.get("t-cem") == "confirmed" and r.get("t-ana") == "cancelled",
        what="roster",
    )
    attendance = await stack.seminar.post(
        f"/v1/seminars/{seminar_id}/attendance",
        headers=OPERATOR,
        json={"participant_ids": ["t-bea", "t-cem", "t-ana", "t-stranger"]},
    )
    assert attendance.status_code == 202, attendance.text
    assert sorted(attendance.json()["recorded"]) == ["t-bea", "t-cem"]
    assert sorted(attendance.json()["rejected"]) == ["t-ana", "t-stranger"]
    completed = await stack.seminar.post(f"/v1/seminars/{seminar_id}/complete", headers=OPERATOR)
    assert completed.status_code == 202, completed.text

    # 5. The evaluation window opens for the two attendees (attendance may be known to
    # the feedback service before the completion that opens the window).
    async def rate() -> dict[str, Any]:
        response = await stack.feedback.get(f"/v1/seminars/{seminar_id}/response-rate")
        return response.json() if response.status_code == 200 else {}

    await eventually(
        rate,
        until=lambda r: r.get("attendees") == 2 and r.get("window_state") == "open",
        what="evaluation window open",
    )
    evaluation = {
        "seminar_id": seminar_id,
        "participant_id": "t-bea",
        "overall": "excellent",
        "comments": "Very practical",
        "answers": {},
    }
    assert (
        await stack.feedback.post("/v1/evaluations", headers=PARTICIPANT, json=evaluation)
    ).status_code == 201
    assert (
        await stack.feedback.post("/v1/evaluations", headers=PARTICIPANT, json=evaluation)
    ).status_code == 409
    stranger = {**evaluation, "participant_id": "t-stranger"}
    assert (
        await stack.feedback.post("/v1/evaluations", headers=PARTICIPANT, json=stranger)
    ).status_code == 403
    invalid = {**evaluation, "participant_id": "t-cem", "overall": "superb"}
    assert (
        await stack.feedback.post("/v1/evaluations", headers=PARTICIPANT, json=invalid)
    ).status_code == 422

    # 6. The yearly reports, exactly in the contract's shape.
    participation = await eventually(
        lambda: _report(stack, "participation", 2025),
        until=lambda r: r["total_participants"] == 2,
        what="participation",
    )
    assert participation == {
        "year": 2025,
        "rows": [
            {
                "kind": "online_seminar",
                "programme": "etwinning",
                "participants": 2,
                "previous_year_participants": 0,
                "growth_pct": None,
            }
        ],
        "total_participants": 2,
    }
    satisfaction = await eventually(
        lambda: _report(stack, "satisfaction", 2025),
        until=lambda r: r["total"]["responses"] == 1,
        what="satisfaction",
    )
    assert satisfaction == {
        "year": 2025,
        "rows": [
            {
                "kind": "online_seminar",
                "programme": "etwinning",
                "participants": 2,
                "responses": 1,
                "response_rate_pct": 50.0,
                "ratings": {"excellent": 1, "very_good": 0, "good": 0, "fair": 0, "poor": 0},
                "excellent_or_very_good_pct": 100.0,
            }
        ],
        "total": {
            "participants": 2,
            "responses": 1,
            "response_rate_pct": 50.0,
            "excellent_or_very_good_pct": 100.0,
        },
    }

    # The certificates are issued by durable jobs after the completion; both before Bea
    # asks to be forgotten (an attendee erased before the job reaches her gets none).
    await eventually(
        lambda: _report(stack, "certificates", 2025),
        until=lambda r: r["total"]["issued"] == 2,
        what="certificates issued",
    )

    # 7. Ana and Bea ask to be forgotten: no name or e-mail anywhere, every count the same.
    await kafka.send_event(
        ParticipantErasureRequested(participant_id="t-ana"), topic=REGISTRATION_REQUESTS
    )
    await stack.registration.post("/v1/participants/t-bea/erase", headers=OPERATOR)

    async def personal_data_left() -> list[str]:
        return await _find_personal_data(namespace, kafka)

    await eventually(
        personal_data_left, until=lambda found: not found, what="personal data erased", timeout_s=30
    )
    assert await _report(stack, "participation", 2025) == participation
    assert await _report(stack, "satisfaction", 2025) == satisfaction
    statuses = await _statuses(stack, seminar_id)
    assert sorted(statuses.values()) == ["cancelled", "confirmed", "confirmed"]

    # Delivered twice, decided once: one decision event per person and change.
    announced = [e for e in await kafka.events(REGISTRATION_EVENTS) if e.subject == seminar_id]
    decisions = [e for e in announced if e.type.startswith("registration.")]
    assert sorted(e.type for e in decisions) == sorted(
        ["registration.confirmed.v1"] * 2
        + ["registration.waitlisted.v1", "registration.cancelled.v1", "registration.promoted.v1"]
    )

    # 8. Certificates: issued to the two attendees, Bea's revoked by her erasure; each
    # announced once, under a pseudonym once revoked, and counted by the metrics.
    certificates = await eventually(
        lambda: _report(stack, "certificates", 2025),
        until=lambda r: r["total"] == {"issued": 2, "revoked": 1, "valid": 1},
        what="certificates report",
    )
    assert certificates["rows"] == [
        {"kind": "online_seminar", "programme": "etwinning", "issued": 2, "revoked": 1, "valid": 1}
    ]
    announced = [e for e in await kafka.events(REGISTRATION_EVENTS) if e.subject == seminar_id]
    issued = sorted(
        e.data["participant_id"] for e in announced if e.type == "certificate.issued.v1"
    )
    revoked = [e.data for e in announced if e.type == "certificate.revoked.v1"]
    assert issued == ["t-bea", "t-cem"]
    assert len(revoked) == 1
    assert is_pseudonym(revoked[0]["participant_id"])
    funnel = await _report(stack, "funnel", 2025)
    assert (funnel["total"]["requested"], funnel["total"]["confirmed"]) == (3, 3)
    assert funnel["total"]["registered_again"] == 0


async def _find_personal_data(namespace: Namespace, kafka: KafkaProbe) -> list[str]:
    """Where a name or e-mail address of an erased person still stands: every collection
    of every service's database, and every record of every topic."""
    needles = [p.display_name or "" for p in (PEOPLE["t-ana"], PEOPLE["t-bea"])] + [
        str(p.email) for p in (PEOPLE["t-ana"], PEOPLE["t-bea"])
    ]
    found: list[str] = []
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(namespace.mongodb_uri)
    try:
        for service in ("seminar", "registration", "feedback", "metrics"):
            db = client[namespace.mongo().database_prefix + service]
            for name in await db.list_collection_names():
                async for doc in db[name].find({}):
                    text = repr(doc)
                    found += [f"{service}.{name}: {n}" for n in needles if n in text]
    finally:
        await client.close()
    for topic in ALL_TOPICS:
        if topic == REGISTRATION_REQUESTS:
            continue  # what other systems sent us is theirs; it expires with the topic (7 days)
        for record in await kafka.read_all(topic):
            text = (record.value or b"").decode(errors="replace")
            found += [f"topic {topic}: {n}" for n in needles if n in text]
    return found
