"""The participant journey (CONTRACT.md) against the real broker and database:
registering again after cancelling, the waiting-list position on every read,
eligibility by country, and seat offers (accept, decline, expiry across a restart)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from registration.domain import registration_id
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.clock import utc_now
from seminarops_shared.events.inbound import (
    Participant,
    RegistrationCancellationRequested,
    RegistrationRequested,
)
from seminarops_shared.events.seminar import SeminarRescheduled, SeminarScheduled
from seminarops_shared.events.topics import REGISTRATION_REQUESTS
from seminarops_shared.events.vocabulary import Promotion

from ..conftest import SEMINAR_SOURCE, http_body, new_id, participant, requested, scheduled
from .conftest import database, decisions, registration_app, schedule, seat_book

pytestmark = pytest.mark.integration

# eTwinning Plus: the programme's neighbourhood countries. A seminar for their teachers
# lists them in `eligible_countries`; a teacher from elsewhere is rejected `not_eligible`.
ETWINNING_PLUS = ["AM", "AZ", "GE", "MD", "UA", "TN", "JO", "LB"]


class ShiftableClock:
    """The real time plus a shift a test moves forward (an offer's hours in a moment)."""

    def __init__(self) -> None:
        self.shift = timedelta()

    def __call__(self) -> datetime:
        return utc_now() + self.shift


def journey_seminar(seminar_id: str, capacity: int, **terms: Any) -> SeminarScheduled:
    return scheduled(seminar_id, capacity).model_copy(update=terms)


async def registration(app: FastAPI, seminar_id: str, person: str) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = await database(app)["registrations"].find_one(
        {"_id": registration_id(seminar_id, person)}
    )
    return doc


async def read(client: httpx.AsyncClient, reg_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/registrations/{reg_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def post(client: httpx.AsyncClient, seminar: str, person: str) -> httpx.Response:
    return await client.post("/v1/registrations", json=http_body(seminar, person))


async def test_a_participant_who_cancelled_registers_again_over_http_and_kafka(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    async with running(app) as client:
        await schedule(app, kafka, seminar, 1)
        a, b, c = [(await post(client, seminar, p)).json() for p in "abc"]
        assert [r["status"] for r in (a, b, c)] == ["confirmed", "waitlisted", "waitlisted"]
        positions = [(await read(client, r["id"]))["waitlist_position"] for r in (a, b, c)]

        # b leaves the queue and asks again: decided anew, at the end of the queue.
        assert (await client.delete(f"/v1/registrations/{b['id']}")).status_code == 200
        c_moved_up = (await read(client, c["id"]))["waitlist_position"]
        again = await post(client, seminar, "b")
        repeat = await post(client, seminar, "b")  # idempotent while it is active
        b_after = await read(client, b["id"])

        # Over Kafka: x requests, cancels, requests again (a new event id).
        await kafka.send_event(requested(seminar, "x"))
        await eventually(lambda: registration(app, seminar, "x"), what="x decided")
        await kafka.send_event(
            RegistrationCancellationRequested(seminar_id=seminar, participant_id="x")
        )
        await eventually(
            lambda: registration(app, seminar, "x"),
            until=lambda d: d is not None and d["status"] == "cancelled",
            what="x cancelled",
        )
        anew = await kafka.send_event(requested(seminar, "x"))
        x = await eventually(
            lambda: registration(app, seminar, "x"),
            until=lambda d: d is not None and d["status"] == "waitlisted",
            what="x decided anew",
        )
        # The same event again (a redelivery) changes nothing: a marker after it on the
        # same partition shows it was consumed.
        await kafka.send_envelope(anew, topic=REGISTRATION_REQUESTS, key=seminar)
        await kafka.send_event(requested(seminar, "marker"))
        await eventually(lambda: registration(app, seminar, "marker"), what="marker decided")
        x_after = await registration(app, seminar, "x")
        listing = (await client.get(f"/v1/seminars/{seminar}/registrations")).json()
        events = await eventually(
            lambda: decisions(kafka, seminar), until=lambda e: len(e) >= 9, what="events"
        )

    assert positions == [None, 1, 2]
    assert c_moved_up == 1
    assert (again.status_code, again.json()["id"], again.json()["status"]) == (
        201,
        b["id"],
        "waitlisted",
    )
    assert again.json()["position"] == 2
    assert (repeat.status_code, repeat.json()["status"]) == (200, "waitlisted")
    assert (b_after["status"], b_after["version"], b_after["waitlist_position"]) == (
        "waitlisted",
        3,
        2,
    )
    assert b_after["reason"] is None
    assert x is not None
    assert x_after is not None
    assert (x["version"], x_after["version"]) == (3, 3)
    by_person = {r["participant_id"]: r for r in listing["registrations"]}
    assert {p: (r["status"], r["waitlist_position"]) for p, r in by_person.items()} == {
        "a": ("confirmed", None),
        "b": ("waitlisted", 2),
        "c": ("waitlisted", 1),
        "x": ("waitlisted", 3),
        "marker": ("waitlisted", 4),
    }
    x_events = [(e.type, e.data["version"]) for e in events if e.data["participant_id"] == "x"]
    assert x_events == [
        ("registration.waitlisted.v1", 1),
        ("registration.cancelled.v1", 2),
        ("registration.waitlisted.v1", 3),
    ]


async def test_only_eligible_countries_register(namespace: Namespace, kafka: KafkaProbe) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    async with running(app) as client:
        await kafka.send_event(
            journey_seminar(seminar, 5, eligible_countries=ETWINNING_PLUS), source=SEMINAR_SOURCE
        )
        await eventually(lambda: seat_book(app, seminar), what="seminar known")
        french = await post(client, seminar, "fr-teacher")  # the helpers' participants: FR
        ukrainian = participant("ua-teacher").model_copy(update={"country": "UA"})
        await kafka.send_event(RegistrationRequested(seminar_id=seminar, participant=ukrainian))
        stateless = Participant(id="nowhere", display_name="No country")
        await kafka.send_event(RegistrationRequested(seminar_id=seminar, participant=stateless))
        events = await eventually(
            lambda: decisions(kafka, seminar), until=lambda e: len(e) >= 3, what="events"
        )
        book = await seat_book(app, seminar)
    assert (french.status_code, french.json()["status"], french.json()["reason"]) == (
        201,
        "rejected",
        "not_eligible",
    )
    outcome = {e.data["participant_id"]: (e.type, e.data.get("reason")) for e in events}
    assert outcome == {
        "fr-teacher": ("registration.rejected.v1", "not_eligible"),
        "ua-teacher": ("registration.confirmed.v1", None),
        "nowhere": ("registration.rejected.v1", "not_eligible"),
    }
    assert book is not None
    assert (book["confirmed_count"], book["eligible_countries"]) == (1, sorted(ETWINNING_PLUS))


async def test_seat_offers_are_accepted_declined_and_expire_across_a_restart(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    clock = ShiftableClock()
    app = registration_app(namespace, clock=clock)
    async with running(app) as client:
        await kafka.send_event(
            journey_seminar(seminar, 2, promotion=Promotion.OFFER, offer_hours=3),
            source=SEMINAR_SOURCE,
        )
        await eventually(lambda: seat_book(app, seminar), what="seminar known")
        a, b, c, d, e = [(await post(client, seminar, p)).json()["id"] for p in "abcde"]
        before_offer = await client.post(f"/v1/registrations/{c}/accept")
        unknown = await client.post("/v1/registrations/reg-000000000000000000000000/accept")

        # a cancels: c (head of the queue) is offered the seat; d moves up to 1.
        await client.delete(f"/v1/registrations/{a}")
        c_offered, d_waiting = await read(client, c), await read(client, d)
        # c declines: cancelled offer_declined, d is offered the seat.
        declined = await client.post(f"/v1/registrations/{c}/decline")
        declined_again = await client.post(f"/v1/registrations/{c}/decline")
        d_offered = await read(client, d)
        # d accepts: confirmed; accepting again is a conflict.
        accepted = await client.post(f"/v1/registrations/{d}/accept")
        accepted_again = await client.post(f"/v1/registrations/{d}/accept")
        # b cancels: e is offered the seat, and lets the offer lapse.
        await client.delete(f"/v1/registrations/{b}")
        e_offered = await read(client, e)

    # The service is down when e's offer lapses; the timer is durable: the next start
    # (another replica, as it may be) runs it.
    clock.shift = timedelta(hours=3, seconds=1)
    late_accept = None
    restarted = registration_app(namespace, clock=clock)
    async with running(restarted) as client:
        e_lapsed = await eventually(
            lambda: read(client, e), until=lambda r: r["status"] == "cancelled", what="lapsed"
        )
        late_accept = await client.post(f"/v1/registrations/{e}/accept")
        listing = (await client.get(f"/v1/seminars/{seminar}/registrations")).json()
        events = await eventually(
            lambda: decisions(kafka, seminar),
            until=lambda found: any(x.data.get("reason") == "offer_expired" for x in found),
            what="expiry announced",
        )

    assert (before_offer.status_code, unknown.status_code) == (409, 404)
    assert (c_offered["status"], c_offered["waitlist_position"]) == ("offered", None)
    expires = datetime.fromisoformat(c_offered["offer_expires_at"])
    assert timedelta(hours=2, minutes=59) < expires - utc_now() <= timedelta(hours=3)
    assert d_waiting["waitlist_position"] == 1
    assert (declined.status_code, declined.json()["reason"]) == (200, "offer_declined")
    assert declined_again.status_code == 409
    assert d_offered["status"] == "offered"
    assert (accepted.status_code, accepted.json()["status"]) == (200, "confirmed")
    assert accepted_again.status_code == 409
    assert e_offered["status"] == "offered"
    assert (e_lapsed["reason"], e_lapsed["offer_expires_at"]) == ("offer_expired", None)
    assert late_accept is not None
    assert late_accept.status_code == 409
    assert (listing["confirmed"], listing["offered"], listing["waitlisted"]) == (1, 0, 0)
    trail = [
        (x.type, x.data["participant_id"], x.data.get("reason"))
        for x in events
        if x.type != "registration.waitlisted.v1"
    ]
    assert trail == [
        ("registration.confirmed.v1", "a", None),
        ("registration.confirmed.v1", "b", None),
        ("registration.cancelled.v1", "a", "participant_request"),
        ("registration.offered.v1", "c", None),
        ("registration.cancelled.v1", "c", "offer_declined"),
        ("registration.offered.v1", "d", None),
        ("registration.confirmed.v1", "d", None),
        ("registration.cancelled.v1", "b", "participant_request"),
        ("registration.offered.v1", "e", None),
        ("registration.cancelled.v1", "e", "offer_expired"),
    ]


async def test_a_capacity_decrease_sends_offers_back_to_the_head_of_the_queue(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    times = scheduled(seminar, 1).sessions
    async with running(app) as client:
        await kafka.send_event(
            journey_seminar(seminar, 2, promotion=Promotion.OFFER), source=SEMINAR_SOURCE
        )
        await eventually(lambda: seat_book(app, seminar), what="seminar known")
        ids = [(await post(client, seminar, p)).json()["id"] for p in "abcde"]

        async def resize(old: int, new: int) -> None:
            await kafka.send_event(
                SeminarRescheduled(
                    seminar_id=seminar,
                    old_sessions=times,
                    new_sessions=times,
                    old_capacity=old,
                    new_capacity=new,
                    year=2026,
                ),
                source=SEMINAR_SOURCE,
            )

        await resize(2, 4)  # c and d are offered the two new seats
        await eventually(
            lambda: seat_book(app, seminar),
            until=lambda book: book is not None and book["offered_count"] == 2,
            what="offers",
        )
        await resize(4, 3)  # d's offer no longer fits: back to the head of the queue
        book = await eventually(
            lambda: seat_book(app, seminar),
            until=lambda book: book is not None and book["capacity"] == 3,
            what="shrunk",
        )
        reads = [await read(client, reg_id) for reg_id in ids]

    assert book is not None
    assert (book["confirmed_count"], book["offered_count"], book["waitlisted_count"]) == (2, 1, 2)
    assert [(r["status"], r["waitlist_position"]) for r in reads] == [
        ("confirmed", None),
        ("confirmed", None),
        ("offered", None),
        ("waitlisted", 1),
        ("waitlisted", 2),
    ]
