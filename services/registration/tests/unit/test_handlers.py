"""The use cases over in-memory fakes: what is stored and what is emitted."""

from __future__ import annotations

from datetime import timedelta

from registration.domain import Seats, SeminarStatus, registration_id
from registration.handlers import OutcomeStatus, RegistrationRequest
from seminarops_shared.privacy import is_pseudonym

from ..conftest import participant
from .conftest import World

SOURCE = "/platform/portal"


def request(
    world: World, seminar: str, person: str, *, source: str = SOURCE
) -> RegistrationRequest:
    return RegistrationRequest(
        seminar_id=seminar,
        participant=participant(person),
        source=source,
        request_id=f"evt-{person}-{source}",
        requested_at=world.now,
    )


async def test_a_batch_confirms_waitlists_and_answers_duplicates_with_the_same_registration(
    world: World,
) -> None:
    world.seminars.books["s"] = Seats(status=SeminarStatus.OPEN, capacity=2)
    uow = world.uow()
    outcomes = await world.service.requests.decide(
        uow,
        [
            request(world, "s", "a"),
            request(world, "s", "b"),
            request(world, "s", "a", source="/platform/other"),
            request(world, "s", "c"),
        ],
    )
    assert [(o.status, o.created) for o in outcomes] == [
        (OutcomeStatus.CONFIRMED, True),
        (OutcomeStatus.CONFIRMED, True),
        (OutcomeStatus.CONFIRMED, False),
        (OutcomeStatus.WAITLISTED, True),
    ]
    assert outcomes[0].registration_id == outcomes[2].registration_id
    assert [type(e).__name__ for e in uow.emitted] == [
        "RegistrationConfirmed",
        "RegistrationConfirmed",
        "RegistrationWaitlisted",
    ]
    for event in uow.emitted:
        dumped = event.model_dump()
        assert "email" not in dumped
        assert "display_name" not in dumped
    book = world.seminars.books["s"]
    assert (book.confirmed, book.waitlisted, book.next_waitlist_seq) == (2, 1, 2)
    # A later repeat changes nothing and emits nothing.
    again = world.uow()
    [repeat] = await world.service.requests.decide(again, [request(world, "s", "c")])
    assert (repeat.status, repeat.created, again.emitted) == (OutcomeStatus.WAITLISTED, False, [])


async def test_unknown_seminar_parks_then_decides_in_arrival_order(world: World) -> None:
    first = world.uow()
    outcomes = await world.service.requests.decide(first, [request(world, "s", p) for p in "abc"])
    assert {o.status for o in outcomes} == {OutcomeStatus.PENDING}
    assert first.emitted == []
    [job] = world.scheduler.jobs.values()
    assert job["due_at"] == world.now + timedelta(hours=1)
    second = world.uow()
    await world.service.requests.decide(
        second, [request(world, "s", "d"), request(world, "s", "a")]
    )
    assert len(world.scheduler.jobs) == 1  # one timer per parked seminar
    assert len(world.parked.docs) == 4

    opening = world.uow()
    await world.service.seminar_changes.on_seminar_scheduled(opening, seminar_id="s", capacity=2)
    decided = [(type(e).__name__, e.participant_id) for e in opening.emitted]  # type: ignore[attr-defined]
    assert decided == [
        ("RegistrationConfirmed", "a"),
        ("RegistrationConfirmed", "b"),
        ("RegistrationWaitlisted", "c"),
        ("RegistrationWaitlisted", "d"),
    ]
    assert world.parked.docs == {}
    assert world.scheduler.jobs == {}
    assert world.seminars.books["s"].parked == 0


async def test_cancelling_a_confirmed_registration_promotes_the_head(world: World) -> None:
    world.seminars.books["s"] = Seats(status=SeminarStatus.OPEN, capacity=1)
    await world.service.requests.decide(world.uow(), [request(world, "s", p) for p in "abc"])
    uow = world.uow()
    outcome = await world.service.cancelling.cancel(uow, registration_id=registration_id("s", "a"))
    assert outcome is not None
    assert outcome.status is OutcomeStatus.CANCELLED
    assert [(type(e).__name__, e.participant_id, e.version) for e in uow.emitted] == [  # type: ignore[attr-defined]
        ("RegistrationCancelled", "a", 2),
        ("RegistrationPromoted", "b", 2),
    ]
    docs = world.registrations.of("s")
    assert {p: d["status"] for p, d in docs.items()} == {
        "a": "cancelled",
        "b": "confirmed",
        "c": "waitlisted",
    }
    assert "waitlist_seq" not in docs["b"]
    again = world.uow()
    await world.service.cancelling.cancel(again, registration_id=registration_id("s", "a"))
    assert again.emitted == []  # idempotent


async def test_parked_requests_time_out_and_only_the_due_ones(world: World) -> None:
    await world.service.requests.decide(world.uow(), [request(world, "s", "early")])
    await world.service.requests.decide(
        world.uow(later=timedelta(minutes=40)), [request(world, "s", "late")]
    )
    [job] = world.scheduler.jobs.values()
    world.scheduler.jobs.clear()  # the scheduler deletes a job it runs
    timeout = world.uow(later=timedelta(minutes=61))
    from seminarops_shared.scheduler import Job

    await world.service.parking.on_park_timeout(
        Job(id="j", kind=job["kind"], group="s", due_at=job["due_at"], payload=job["payload"]),
        timeout,
    )
    [rejected] = timeout.emitted
    assert (rejected.participant_id, rejected.reason) == ("early", "seminar_unknown")  # type: ignore[attr-defined]
    assert [d["participant"]["id"] for d in world.parked.docs.values()] == ["late"]
    [next_job] = world.scheduler.jobs.values()
    assert next_job["due_at"] == world.now + timedelta(minutes=100)


async def test_erasure_pseudonymises_and_announces(world: World) -> None:
    world.seminars.books["s"] = Seats(status=SeminarStatus.OPEN, capacity=5)
    await world.service.requests.decide(
        world.uow(), [request(world, "s", "x"), request(world, "s", "y")]
    )
    uow = world.uow()
    changed = await world.service.erasure.erase(uow, participant_id="x")
    assert changed == 1
    [announcement] = uow.emitted
    assert announcement.participant_id == "x"  # type: ignore[attr-defined]
    erased = world.registrations.docs[registration_id("s", "x")]
    assert is_pseudonym(erased["participant_id"])
    assert "email" not in erased
    assert erased["status"] == "confirmed"
    assert world.seminars.books["s"].confirmed == 2
