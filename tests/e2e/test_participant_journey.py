"""The participant journey across all four services, through the contract only
(CONTRACT.md "Participant journey"): an eTwinning Plus learning event scheduled with
seat offers and an eligibility list; a teacher from elsewhere rejected, one who
cancelled registering again at the end of the queue, a freed seat offered, lapsing and
offered to the next, the seminar's and the participants' calendars, and after
completion a certificate verified publicly and as a PDF whose QR code reads back."""

from __future__ import annotations

import io
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pypdf
import pytest
import zxingcpp

from seminarops_devtools.testing.ical import read_calendar
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe
from seminarops_shared.events.inbound import (
    Participant,
    RegistrationCancellationRequested,
    RegistrationRequested,
)
from seminarops_shared.events.topics import REGISTRATION_EVENTS

from .conftest import OPERATOR, PLATFORM, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ETWINNING_PLUS = ["AM", "AZ", "GE", "MD", "UA", "TN", "JO", "LB"]
# Two sessions in Kyiv: 3.5 h and 2 h, 5.5 h in all. An earlier season's dates, so that
# attendance and completion are possible at once.
SESSIONS = [
    ("2025-10-06T09:00:00+03:00", "2025-10-06T12:30:00+03:00"),
    ("2025-10-07T09:00:00+03:00", "2025-10-07T11:00:00+03:00"),
]

PEOPLE = {
    p.id: p
    for p in [
        Participant(id="t-olena", display_name="Olena Kovalenko", country="UA"),
        Participant(id="t-giorgi", display_name="Giorgi Beridze", country="GE"),
        Participant(id="t-mihai", display_name="Mihai Ceban", country="MD"),
        Participant(id="t-anahit", display_name="Anahit Sargsyan", country="AM"),
        Participant(id="t-julie", display_name="Julie Martin", country="FR"),
    ]
}


async def _register(stack: Stack, seminar_id: str, person: str) -> httpx.Response:
    return await stack.registration.post(
        "/v1/registrations",
        headers=PLATFORM,
        json={"seminar_id": seminar_id, "participant": PEOPLE[person].model_dump(mode="json")},
    )


async def _read(stack: Stack, registration_id: str) -> dict[str, Any]:
    response = await stack.registration.get(
        f"/v1/registrations/{registration_id}", headers=PLATFORM
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _by_person(stack: Stack, seminar_id: str) -> dict[str, dict[str, Any]]:
    response = await stack.registration.get(
        f"/v1/seminars/{seminar_id}/registrations", headers=OPERATOR
    )
    if response.status_code == 404:
        return {}
    response.raise_for_status()
    return {r["participant_id"]: r for r in response.json()["registrations"]}


async def _calendar(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    """The VEVENTs of a calendar as a second parser (vobject) reads them."""
    response = await client.get(path, headers=PLATFORM)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    calendar = read_calendar(response.text)
    return [
        {
            "uid": event.uid.value,
            "summary": event.summary.value,
            "status": event.status.value,
            "sequence": int(event.sequence.value),
            "starts": event.dtstart.value,
            "ends": event.dtend.value,
        }
        for event in getattr(calendar, "vevent_list", [])
    ]


def _sessions_as_events(
    seminar_id: str, title: str, status: str
) -> list[tuple[str, str, str, datetime, datetime]]:
    return [
        (
            f"{seminar_id}-{index}@seminar-ops",
            title,
            status,
            datetime.fromisoformat(starts),
            datetime.fromisoformat(ends),
        )
        for index, (starts, ends) in enumerate(SESSIONS)
    ]


def _shown(events: list[dict[str, Any]]) -> list[tuple[str, str, str, datetime, datetime]]:
    return sorted((e["uid"], e["summary"], e["status"], e["starts"], e["ends"]) for e in events)


async def test_a_participant_journey_with_offers_eligibility_calendars_and_a_certificate(
    stack: Stack, kafka: KafkaProbe
) -> None:
    title = f"Digital citizenship in the neighbourhood {uuid.uuid4().hex[:6]}"
    # 1. Two seats, freed seats offered for one hour, open to eTwinning Plus countries.
    created = await stack.seminar.post(
        "/v1/seminars",
        headers=OPERATOR,
        json={
            "title": title,
            "kind": "learning_event",
            "programme": "etwinning_plus",
            "sessions": [{"starts_at": s, "ends_at": e} for s, e in SESSIONS],
            "timezone": "Europe/Kyiv",
            "capacity": 2,
            "language": "en",
            "promotion": "offer",
            "offer_hours": 1,
            "eligible_countries": ETWINNING_PLUS,
        },
    )
    assert created.status_code == 201, created.text
    seminar_id = created.json()["id"]
    assert (created.json()["promotion"], created.json()["offer_hours"]) == ("offer", 1)

    # 2. Olena (HTTP) and Giorgi (Kafka) take the seats; Mihai and Anahit wait; Julie,
    # from France, is not eligible.
    await eventually(
        lambda: stack.registration.get(
            f"/v1/seminars/{seminar_id}/registrations", headers=OPERATOR
        ),
        until=lambda r: r.status_code == 200,
        what="the seminar known to the registration service",
    )
    olena = await _register(stack, seminar_id, "t-olena")
    await kafka.send_event(
        RegistrationRequested(seminar_id=seminar_id, participant=PEOPLE["t-giorgi"])
    )
    await eventually(
        lambda: _by_person(stack, seminar_id),
        until=lambda r: r.get("t-giorgi", {}).get("status") == "confirmed",
        what="Giorgi confirmed",
    )
    mihai = (await _register(stack, seminar_id, "t-mihai")).json()
    anahit = (await _register(stack, seminar_id, "t-anahit")).json()
    await kafka.send_event(
        RegistrationRequested(seminar_id=seminar_id, participant=PEOPLE["t-julie"])
    )
    julie = (
        await eventually(
            lambda: _by_person(stack, seminar_id),
            until=lambda r: "t-julie" in r,
            what="Julie decided",
        )
    )["t-julie"]
    queue_at_first = [(await _read(stack, r["id"]))["waitlist_position"] for r in (mihai, anahit)]

    assert (olena.json()["status"], mihai["status"], anahit["status"]) == (
        "confirmed",
        "waitlisted",
        "waitlisted",
    )
    assert (julie["status"], julie["reason"]) == ("rejected", "not_eligible")
    assert queue_at_first == [1, 2]

    # 3. Mihai leaves the queue and registers again: the same registration, at the end.
    cancelled = await stack.registration.delete(
        f"/v1/registrations/{mihai['id']}", headers=PLATFORM
    )
    anahit_moved_up = (await _read(stack, anahit["id"]))["waitlist_position"]
    again = await _register(stack, seminar_id, "t-mihai")
    mihai_again = await _read(stack, mihai["id"])

    assert cancelled.json()["status"] == "cancelled"
    assert anahit_moved_up == 1
    assert (again.status_code, again.json()["id"], again.json()["status"]) == (
        201,
        mihai["id"],
        "waitlisted",
    )
    assert (mihai_again["status"], mihai_again["waitlist_position"]) == ("waitlisted", 2)

    # 4. Olena cancels from the portal: her seat is offered to Anahit for one hour, and
    # Anahit's calendar holds the sessions as tentative.
    await kafka.send_event(
        RegistrationCancellationRequested(seminar_id=seminar_id, participant_id="t-olena")
    )
    anahit_offered = await eventually(
        lambda: _read(stack, anahit["id"]),
        until=lambda r: r["status"] == "offered",
        what="a seat offered to Anahit",
    )
    offer_left = datetime.fromisoformat(anahit_offered["offer_expires_at"]) - stack.clock()
    mihai_next = (await _read(stack, mihai["id"]))["waitlist_position"]
    anahit_tentative = await _calendar(stack.registration, "/v1/participants/t-anahit/calendar.ics")

    assert timedelta(minutes=58) < offer_left <= timedelta(hours=1)
    assert (anahit_offered["waitlist_position"], mihai_next) == (None, 1)
    assert _shown(anahit_tentative) == _sessions_as_events(seminar_id, title, "TENTATIVE")

    # 5. An hour passes unanswered (the registration service's clock moves on): the offer
    # lapses, the seat goes to Mihai, and he accepts it.
    stack.clock.shift = timedelta(hours=1, seconds=1)
    anahit_lapsed = await eventually(
        lambda: _read(stack, anahit["id"]),
        until=lambda r: r["status"] == "cancelled",
        what="Anahit's offer lapsed",
    )
    mihai_offered = await eventually(
        lambda: _read(stack, mihai["id"]),
        until=lambda r: r["status"] == "offered",
        what="the seat offered to Mihai",
    )
    late = await stack.registration.post(
        f"/v1/registrations/{anahit['id']}/accept", headers=PLATFORM
    )
    accepted = await stack.registration.post(
        f"/v1/registrations/{mihai['id']}/accept", headers=PLATFORM
    )

    assert (anahit_lapsed["reason"], anahit_lapsed["waitlist_position"]) == ("offer_expired", None)
    assert mihai_offered["offer_expires_at"] is not None
    assert late.status_code == 409
    assert (accepted.status_code, accepted.json()["status"]) == (200, "confirmed")

    # 6. The calendars: the seminar's (public), Mihai's (confirmed), and nothing for
    # Anahit (her offer lapsed) or Olena (she cancelled).
    seminar_calendar = await _calendar(stack.seminar, f"/v1/seminars/{seminar_id}/calendar.ics")
    mihai_calendar = await _calendar(stack.registration, "/v1/participants/t-mihai/calendar.ics")
    anahit_calendar = await _calendar(stack.registration, "/v1/participants/t-anahit/calendar.ics")
    olena_calendar = await _calendar(stack.registration, "/v1/participants/t-olena/calendar.ics")

    expected = _sessions_as_events(seminar_id, title, "CONFIRMED")
    assert _shown(seminar_calendar) == expected
    assert [e["sequence"] for e in seminar_calendar] == [0, 0]
    assert _shown(mihai_calendar) == expected
    assert (anahit_calendar, olena_calendar) == ([], [])

    # 7. Giorgi and Mihai attend; the seminar completes; Mihai's certificate verifies
    # publicly and prints the seminar, its hours and a QR code of where to verify it.
    async def roster() -> dict[str, str]:
        response = await stack.seminar.get(f"/v1/seminars/{seminar_id}/roster", headers=OPERATOR)
        response.raise_for_status()
        return {e["participant_id"]: e["status"] for e in response.json()["entries"]}

    await eventually(roster, until=lambda r: r.get("t-mihai") == "confirmed", what="roster")
    attendance = await stack.seminar.post(
        f"/v1/seminars/{seminar_id}/attendance",
        headers=OPERATOR,
        json={"participant_ids": ["t-giorgi", "t-mihai", "t-anahit"]},
    )
    completed = await stack.seminar.post(f"/v1/seminars/{seminar_id}/complete", headers=OPERATOR)

    async def certificates(person: str) -> list[dict[str, Any]]:
        response = await stack.registration.get(
            f"/v1/participants/{person}/certificates", headers=PLATFORM
        )
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["certificates"]
        return found

    [certificate] = await eventually(
        lambda: certificates("t-mihai"), until=lambda c: len(c) == 1, what="certificate issued"
    )
    await eventually(lambda: certificates("t-giorgi"), until=lambda c: len(c) == 1, what="Giorgi's")
    anahit_certificates = await certificates("t-anahit")
    verified = await stack.registration.get(f"/v1/certificates/{certificate['code']}")
    pdf = await stack.registration.get(f"/v1/certificates/{certificate['code']}.pdf")

    assert attendance.status_code == 202, attendance.text
    assert sorted(attendance.json()["recorded"]) == ["t-giorgi", "t-mihai"]
    assert attendance.json()["rejected"] == ["t-anahit"]
    assert completed.status_code == 202, completed.text
    assert anahit_certificates == []
    assert verified.status_code == 200, verified.text
    public = verified.json()
    assert (public["status"], public["display_name"], public["seminar_title"]) == (
        "valid",
        "Mihai Ceban",
        title,
    )
    assert (public["kind"], public["programme"], public["year"], public["hours"]) == (
        "learning_event",
        "etwinning_plus",
        2025,
        5.5,
    )
    assert "participant_id" not in public

    assert pdf.status_code == 200
    [page] = pypdf.PdfReader(io.BytesIO(pdf.content)).pages
    text = page.extract_text()
    verify_url = str(stack.registration.base_url.join(f"/v1/certificates/{certificate['code']}"))
    assert title in text
    assert "Mihai Ceban" in text
    assert "5.5 hours" in text
    assert verify_url in text
    [qr] = page.images
    assert [found.text for found in zxingcpp.read_barcodes(qr.image)] == [verify_url]

    # 8. What the registration service announced of the offers, in order.
    offers = [
        (e.type, e.data["participant_id"], e.data.get("reason"))
        for e in await kafka.events(REGISTRATION_EVENTS)
        if e.subject == seminar_id
        and e.type in {"registration.offered.v1", "registration.cancelled.v1"}
    ]
    assert offers == [
        ("registration.cancelled.v1", "t-mihai", "participant_request"),
        ("registration.cancelled.v1", "t-olena", "participant_request"),
        ("registration.offered.v1", "t-anahit", None),
        ("registration.cancelled.v1", "t-anahit", "offer_expired"),
        ("registration.offered.v1", "t-mihai", None),
    ]
