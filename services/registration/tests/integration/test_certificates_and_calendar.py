"""The participant journey against the real broker and database: certificates issued on
completion, verified publicly and as PDF, stable through replays, revoked by erasure;
the participant's calendar from the seminar events; facts kept before the upgrade."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pypdf
import pytest
import zxingcpp
from fastapi import FastAPI

from registration import journey
from registration.certificates import certificate_id
from registration.journey import CERTIFICATE_ISSUE_JOB
from seminarops_devtools.testing.ical import read_calendar
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.events.inbound import Participant, ParticipantErasureRequested
from seminarops_shared.events.seminar import (
    SeminarCancelled,
    SeminarCompleted,
    SeminarRescheduled,
    SeminarScheduled,
    SessionTimes,
)
from seminarops_shared.events.topics import SEMINAR_EVENTS
from seminarops_shared.events.vocabulary import Kind, Programme, Promotion
from seminarops_shared.privacy import is_pseudonym

from ..conftest import SEMINAR_SOURCE, http_body, new_id, participant, requested
from .conftest import database, registration_app, schedule, seat_book, statuses

pytestmark = pytest.mark.integration

MAY_4 = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)


def _sessions(*starts: datetime, hours: int = 2) -> list[SessionTimes]:
    return [SessionTimes(starts_at=s, ends_at=s + timedelta(hours=hours)) for s in starts]


def _scheduled(seminar_id: str, *, capacity: int = 5, timezone: str = "Europe/Brussels") -> Any:
    return SeminarScheduled(
        seminar_id=seminar_id,
        title="Robots & Poetry: a learning event",
        kind=Kind.LEARNING_EVENT,
        programme=Programme.ETWINNING_PLUS,
        language="en",
        timezone=timezone,
        sessions=_sessions(MAY_4, MAY_4 + timedelta(days=1)),
        capacity=capacity,
        year=2026,
    )


def _completed(seminar_id: str, attendees: list[str]) -> SeminarCompleted:
    return SeminarCompleted(
        seminar_id=seminar_id,
        kind=Kind.LEARNING_EVENT,
        programme=Programme.ETWINNING_PLUS,
        year=2026,
        attendee_ids=attendees,
    )


async def _certificates(client: httpx.AsyncClient, person: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/participants/{person}/certificates")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["certificates"]
    return found


async def _issuing(app: FastAPI, seminar_id: str) -> int:
    """Certificate jobs of the seminar not run yet."""
    return int(
        await database(app)["scheduled_jobs"].count_documents(
            {"group": seminar_id, "kind": CERTIFICATE_ISSUE_JOB}
        )
    )


async def _processed(app: FastAPI, event_id: str) -> bool:
    marker = await database(app)["processed_events"].find_one({"_id": f"registration:{event_id}"})
    return marker is not None


async def test_attendees_get_certificates_verifiable_by_code_and_as_pdf(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    # Paper certificates point at the public address, not the one the PDF was fetched at.
    app = registration_app(namespace, certificate_verify_base_url="https://seminars.example.org")
    zofia = Participant(
        id="zofia", display_name="Zofia Łukasiewicz", email="zofia@school.example", country="PL"
    )
    async with running(app) as client:
        await kafka.send_event(_scheduled(seminar), source=SEMINAR_SOURCE)
        await eventually(lambda: seat_book(app, seminar), what="seminar known")
        await client.post(
            "/v1/registrations",
            json={"seminar_id": seminar, "participant": zofia.model_dump(mode="json")},
        )
        for person in ["bert", "absent"]:
            await kafka.send_event(requested(seminar, person))
        await eventually(
            lambda: statuses(app, seminar), until=lambda c: c.total() == 3, what="registered"
        )
        completion = await kafka.send_event(
            _completed(seminar, ["zofia", "bert", "stranger"]), source=SEMINAR_SOURCE
        )
        [mine] = await eventually(
            lambda: _certificates(client, "zofia"), until=lambda c: len(c) == 1, what="issued"
        )
        [berts] = await _certificates(client, "bert")
        # A redelivery of the completion, then the same completion under a new event id:
        # neither issues anything or changes a code.
        await kafka.send_envelope(completion, topic=SEMINAR_EVENTS, key=seminar)
        again = await kafka.send_event(
            _completed(seminar, ["zofia", "bert", "stranger"]), source=SEMINAR_SOURCE
        )
        await eventually(lambda: _processed(app, again.id), what="repeat completion applied")
        await eventually(lambda: _issuing(app, seminar), until=lambda n: n == 0, what="jobs run")
        after_replay = await _certificates(client, "zofia")
        verified = await client.get(f"/v1/certificates/{mine['code']}")
        pdf = await client.get(f"/v1/certificates/{mine['code']}.pdf")
        unknown = await client.get("/v1/certificates/AAAAAAAAAAAAAAAAAAAAAA")
        malformed = await client.get("/v1/certificates/not a code")
        nobody = await _certificates(client, "absent") + await _certificates(client, "stranger")
        stored = await database(app)["certificates"].count_documents({"seminar_id": seminar})
        registration = await database(app)["registrations"].find_one({"participant_id": "zofia"})
    assert after_replay == [mine]
    assert stored == 2
    assert nobody == []
    assert mine["code"] != berts["code"]
    assert len(mine["code"]) == 22
    assert mine["display_name"] == "Zofia Łukasiewicz"
    assert mine["seminar_title"] == "Robots & Poetry: a learning event"
    assert (mine["kind"], mine["programme"], mine["year"]) == (
        "learning_event",
        "etwinning_plus",
        2026,
    )
    assert mine["hours"] == 4.0
    assert mine["timezone"] == "Europe/Brussels"
    assert registration is not None
    assert registration["certificate_id"] == certificate_id(seminar, "zofia")

    assert verified.status_code == 200
    public = verified.json()
    assert (public["status"], public["valid"]) == ("valid", True)
    assert public["display_name"] == "Zofia Łukasiewicz"
    assert public["seminar_title"] == "Robots & Poetry: a learning event"
    assert "zofia@school.example" not in verified.text
    assert "participant_id" not in public

    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    [page] = pypdf.PdfReader(io.BytesIO(pdf.content)).pages
    text = page.extract_text()
    assert "Zofia Łukasiewicz" in text
    assert "Robots & Poetry: a learning event" in text
    assert mine["code"] in text
    public_url = f"https://seminars.example.org/v1/certificates/{mine['code']}"
    assert public_url in text
    [qr] = page.images
    assert [found.text for found in zxingcpp.read_barcodes(qr.image)] == [public_url]

    assert unknown.status_code == 404
    assert malformed.status_code == 422


async def test_erasure_revokes_the_persons_certificates_and_forgets_them(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    async with running(app) as client:
        await schedule(app, kafka, seminar, 5)
        for person in ["forget-me", "keep-me", "erase-by-http", "gone-before"]:
            await kafka.send_event(requested(seminar, person))
        await eventually(
            lambda: statuses(app, seminar), until=lambda c: c.total() == 4, what="registered"
        )
        # Erased before the completion (which still names them, as it was published
        # first): no certificate is issued in their name.
        gone = await kafka.send_event(ParticipantErasureRequested(participant_id="gone-before"))
        await eventually(lambda: _processed(app, gone.id), what="early erasure applied")
        await kafka.send_event(
            _completed(seminar, ["forget-me", "keep-me", "erase-by-http", "gone-before"]),
            source=SEMINAR_SOURCE,
        )
        [forgotten] = await eventually(
            lambda: _certificates(client, "forget-me"), until=lambda c: len(c) == 1, what="issued"
        )
        [by_http] = await eventually(
            lambda: _certificates(client, "erase-by-http"), until=lambda c: len(c) == 1
        )
        erasure = ParticipantErasureRequested(participant_id="forget-me")
        await kafka.send_event(erasure)

        async def verification() -> dict[str, Any]:
            body: dict[str, Any] = (
                await client.get(f"/v1/certificates/{forgotten['code']}")
            ).json()
            return body

        revoked = await eventually(
            verification, until=lambda v: v["status"] == "revoked", what="revoked"
        )
        pdf = await client.get(f"/v1/certificates/{forgotten['code']}.pdf")
        mine = await _certificates(client, "forget-me")
        [kept] = await _certificates(client, "keep-me")
        erased_over_http = await client.post("/v1/participants/erase-by-http/erase")
        by_http_now = (await client.get(f"/v1/certificates/{by_http['code']}")).json()
        doc = await database(app)["certificates"].find_one({"code": forgotten["code"]})
        # A completion replayed after the erasure issues nothing in the erased name.
        replay = await kafka.send_event(
            _completed(seminar, ["forget-me", "keep-me"]), source=SEMINAR_SOURCE
        )
        await eventually(lambda: _processed(app, replay.id), what="replay applied")
        await eventually(lambda: _issuing(app, seminar), until=lambda n: n == 0, what="jobs run")
        after_replay = await database(app)["certificates"].count_documents({"seminar_id": seminar})
    assert (revoked["valid"], revoked["display_name"]) == (False, None)
    assert revoked["revoked_at"] is not None
    assert revoked["seminar_title"] == "Coding in the classroom"  # the facts stay
    assert pdf.status_code == 404
    assert pdf.json()["code"] == "certificate_revoked"
    assert mine == []
    assert kept["status"] == "valid"
    assert erased_over_http.json()["certificates_revoked"] == 1
    assert by_http_now["status"] == "revoked"
    assert doc is not None
    assert is_pseudonym(doc["participant_id"])
    assert "display_name" not in doc
    assert after_replay == 3  # forget-me (revoked), keep-me, erase-by-http


async def _decided(app: FastAPI, seminar_id: str, person: str) -> bool:
    found = await database(app)["registrations"].find_one(
        {"seminar_id": seminar_id, "participant_id": person}
    )
    return found is not None


def _calendar(text: str) -> dict[str, Any]:
    parsed = read_calendar(text)
    # vobject has no ``vevent_list`` on a calendar without events.
    return {event.uid.value: event for event in parsed.contents.get("vevent", [])}


async def test_the_calendar_shows_confirmed_seminars_reschedules_and_cancellations(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    brussels, tokyo, full = new_id("bru"), new_id("tyo"), new_id("full")
    app = registration_app(namespace)
    async with running(app) as client:
        await kafka.send_event(_scheduled(brussels), source=SEMINAR_SOURCE)
        await kafka.send_event(_scheduled(tokyo, timezone="Asia/Tokyo"), source=SEMINAR_SOURCE)
        await kafka.send_event(_scheduled(full, capacity=1), source=SEMINAR_SOURCE)
        await kafka.send_event(requested(full, "first"))
        for seminar in [brussels, tokyo, full]:
            await kafka.send_event(requested(seminar, "anna"))
        for seminar in [brussels, tokyo, full]:
            await eventually(lambda s=seminar: _decided(app, s, "anna"), what=f"anna in {seminar}")  # type: ignore[misc]
        moved = MAY_4 + timedelta(days=7)
        await kafka.send_event(
            SeminarRescheduled(
                seminar_id=brussels,
                old_sessions=_sessions(MAY_4, MAY_4 + timedelta(days=1)),
                new_sessions=_sessions(moved, moved + timedelta(days=1)),
                old_capacity=5,
                new_capacity=5,
                year=2026,
            ),
            source=SEMINAR_SOURCE,
        )
        counts = await statuses(app, full)
        # Cancelled: tokyo, where anna held a seat, and full, where she was waiting.
        await kafka.send_event(SeminarCancelled(seminar_id=tokyo), source=SEMINAR_SOURCE)
        cancel = await kafka.send_event(SeminarCancelled(seminar_id=full), source=SEMINAR_SOURCE)
        await eventually(lambda: _processed(app, cancel.id), what="cancellation applied")
        await eventually(lambda: statuses(app, tokyo), until=lambda c: c["cancelled"] == 1)

        async def sequence() -> str:
            response = await client.get("/v1/participants/anna/calendar.ics")
            return response.text

        text = await eventually(
            sequence, until=lambda t: "SEQUENCE:1" in t, what="reschedule in the calendar"
        )
        response = await client.get("/v1/participants/anna/calendar.ics")
        nobody = await client.get("/v1/participants/nobody/calendar.ics")
    assert counts["waitlisted"] == 1  # anna waited for `full`: never in her calendar
    assert response.headers["content-type"].startswith("text/calendar")
    events = _calendar(text)
    assert sorted(events) == sorted(
        [
            f"{brussels}-0@seminar-ops",
            f"{brussels}-1@seminar-ops",
            f"{tokyo}-0@seminar-ops",
            f"{tokyo}-1@seminar-ops",
        ]
    )
    first = events[f"{brussels}-0@seminar-ops"]
    assert first.dtstart.value.astimezone(UTC) == moved
    assert first.dtstart.value.utcoffset() == timedelta(hours=2)  # Brussels, summer time
    assert "DTSTART;TZID=Europe/Brussels:20260511T170000" in text
    assert first.sequence.value == "1"
    assert first.status.value == "CONFIRMED"
    assert first.summary.value == "Robots & Poetry: a learning event"
    cancelled = events[f"{tokyo}-0@seminar-ops"]
    assert cancelled.status.value == "CANCELLED"
    assert cancelled.sequence.value == "1"  # cancelled: one revision more
    assert cancelled.dtstart.value.utcoffset() == timedelta(hours=9)
    assert nobody.status_code == 200
    assert _calendar(nobody.text) == {}


async def test_seminars_known_before_their_facts_were_kept_still_read(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("old")
    app = registration_app(namespace)
    async with running(app) as client:
        await schedule(app, kafka, seminar, 5)
        await kafka.send_event(requested(seminar, "anna"))
        await eventually(lambda: statuses(app, seminar), what="registered")
        facts = database(app)["seminar_facts"]
        # The shape before sessions and reschedules were kept; and a document that has
        # nothing but its id.
        await facts.replace_one({"_id": seminar}, {"_id": seminar, "title": "Old"})
        before = await client.get("/v1/participants/anna/calendar.ics")
        moved = MAY_4 + timedelta(days=30)
        rescheduled = await kafka.send_event(
            SeminarRescheduled(
                seminar_id=seminar,
                old_sessions=_sessions(MAY_4),
                new_sessions=_sessions(moved),
                old_capacity=5,
                new_capacity=5,
                year=2026,
            ),
            source=SEMINAR_SOURCE,
        )
        await eventually(lambda: _processed(app, rescheduled.id), what="reschedule applied")
        after = await client.get("/v1/participants/anna/calendar.ics")
        await facts.replace_one({"_id": seminar}, {"_id": seminar})
        await kafka.send_event(_completed(seminar, ["anna"]), source=SEMINAR_SOURCE)
        [certificate] = await eventually(
            lambda: _certificates(client, "anna"), until=lambda c: len(c) == 1, what="issued"
        )
    assert before.status_code == 200
    assert _calendar(before.text) == {}
    [event] = _calendar(after.text).values()
    assert (event.summary.value, event.sequence.value) == ("Old", "1")
    assert event.dtstart.value.astimezone(UTC) == moved
    assert (certificate["seminar_title"], certificate["hours"]) == (None, None)
    assert certificate["kind"] == "learning_event"
    assert participant("anna").display_name == certificate["display_name"]


async def test_a_large_completion_is_issued_in_chunks_each_its_own_transaction(
    namespace: Namespace, kafka: KafkaProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journey, "CERTIFICATES_PER_JOB", 2)
    seminar = new_id("sem")
    people = [f"p{i}" for i in range(5)]
    app = registration_app(namespace)
    async with running(app):
        await schedule(app, kafka, seminar, 10)
        for person in people:
            await kafka.send_event(requested(seminar, person))
        await eventually(
            lambda: statuses(app, seminar), until=lambda c: c.total() == 5, what="registered"
        )
        completion = await kafka.send_event(_completed(seminar, people), source=SEMINAR_SOURCE)
        await eventually(lambda: _processed(app, completion.id), what="completion applied")
        await eventually(lambda: _issuing(app, seminar), until=lambda n: n == 0, what="jobs run")
        docs = await database(app)["certificates"].find({"seminar_id": seminar}).to_list()
    assert sorted(d["participant_id"] for d in docs) == people
    assert len({d["code"] for d in docs}) == 5


async def test_an_offered_seat_shows_tentative_until_accepted(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    offer_terms = _scheduled(seminar, capacity=1).model_copy(
        update={"promotion": Promotion.OFFER, "offer_hours": 24}
    )
    async with running(app) as client:
        await kafka.send_event(offer_terms, source=SEMINAR_SOURCE)
        await eventually(lambda: seat_book(app, seminar), what="seminar known")
        first = (await client.post("/v1/registrations", json=http_body(seminar, "first"))).json()
        anna = (await client.post("/v1/registrations", json=http_body(seminar, "anna"))).json()
        waiting = await client.get("/v1/participants/anna/calendar.ics")
        await client.delete(f"/v1/registrations/{first['id']}")
        offered = await client.get("/v1/participants/anna/calendar.ics")
        await client.post(f"/v1/registrations/{anna['id']}/accept")
        accepted = await client.get("/v1/participants/anna/calendar.ics")
    assert anna["status"] == "waitlisted"
    assert _calendar(waiting.text) == {}
    offered_events = _calendar(offered.text)
    assert sorted(offered_events) == [f"{seminar}-0@seminar-ops", f"{seminar}-1@seminar-ops"]
    assert {e.status.value for e in offered_events.values()} == {"TENTATIVE"}
    assert {e.status.value for e in _calendar(accepted.text).values()} == {"CONFIRMED"}
