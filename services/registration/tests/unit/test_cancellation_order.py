"""A request and its cancellation consumed in either order (different partitions): the
use cases over in-memory fakes. The outcome is the one publishing order gives (the
envelopes' ``time``), whatever the order of consumption."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from registration.domain import Seats, SeminarStatus, registration_id
from registration.handlers import (
    PENDING_CANCELLATION_JOB,
    CancellationRequest,
    OutcomeStatus,
    RegistrationRequest,
)
from seminarops_shared.scheduler import Job

from ..conftest import participant
from .conftest import World, make_world

SOURCE = "/platform/portal"


def request(world: World, person: str, *, at: int, seminar: str = "s") -> RegistrationRequest:
    """A request published ``at`` seconds after the world's start."""
    return RegistrationRequest(
        seminar_id=seminar,
        participant=participant(person),
        source=SOURCE,
        request_id=f"req-{person}-{at}",
        requested_at=world.now + timedelta(seconds=at),
    )


def cancellation(world: World, person: str, *, at: int, seminar: str = "s") -> CancellationRequest:
    return CancellationRequest(
        seminar_id=seminar,
        participant_id=person,
        event_id=f"cancel-{person}-{at}",
        source="/platform/other-portal",
        cancelled_at=world.now + timedelta(seconds=at),
    )


def emitted(uow: Any) -> list[tuple[str, str, int]]:
    return [(type(e).__name__, e.participant_id, e.version) for e in uow.emitted]


def open_seminar(world: World, capacity: int, seminar: str = "s") -> None:
    world.seminars.books[seminar] = Seats(status=SeminarStatus.OPEN, capacity=capacity)


async def test_a_cancellation_before_its_request_is_kept_then_applied_when_it_is_decided(
    world: World,
) -> None:
    open_seminar(world, 1)
    first = world.uow()
    await world.service.cancelling.cancel_requested(first, cancellation(world, "x", at=2))
    assert first.emitted == []
    reg_id = registration_id("s", "x")
    assert world.cancellations.docs[reg_id]["cancelled_at"] == world.now + timedelta(seconds=2)
    assert world.seminars.books["s"].pending_cancellations == 1
    [job] = world.scheduler.jobs.values()
    assert (job["kind"], job["due_at"]) == (PENDING_CANCELLATION_JOB, world.now + timedelta(days=7))

    # The request (published before the cancellation) and another person's, in one batch.
    second = world.uow()
    outcomes = await world.service.requests.decide(
        second, [request(world, "x", at=1), request(world, "y", at=3)]
    )
    assert [(o.status, o.created) for o in outcomes] == [
        (OutcomeStatus.CANCELLED, True),
        (OutcomeStatus.WAITLISTED, True),
    ]
    # The usual events: x took the seat, its cancellation freed it, y moved up.
    assert emitted(second) == [
        ("RegistrationConfirmed", "x", 1),
        ("RegistrationWaitlisted", "y", 1),
        ("RegistrationCancelled", "x", 2),
        ("RegistrationPromoted", "y", 2),
    ]
    assert {p: d["status"] for p, d in world.registrations.of("s").items()} == {
        "x": "cancelled",
        "y": "confirmed",
    }
    book = world.seminars.books["s"]
    assert (book.confirmed, book.waitlisted, book.pending_cancellations) == (1, 0, 0)
    assert (world.cancellations.docs, world.scheduler.jobs) == ({}, {})

    # The same request again (a redelivery), and an older one: nothing changes.
    again = world.uow()
    repeats = await world.service.requests.decide(
        again, [request(world, "x", at=1), request(world, "x", at=0)]
    )
    assert [(o.status, o.created) for o in repeats] == [(OutcomeStatus.CANCELLED, False)] * 2
    assert again.emitted == []
    # One published after the cancellation registers x again: waitlisted at the end of
    # the queue (y holds the one seat), the same registration, its version moving on.
    later = world.uow()
    [anew] = await world.service.requests.decide(later, [request(world, "x", at=9)])
    assert (anew.status, anew.created, anew.position) == (OutcomeStatus.WAITLISTED, True, 1)
    assert emitted(later) == [("RegistrationWaitlisted", "x", 3)]
    doc = world.registrations.docs[reg_id]
    assert (doc["status"], doc["version"], doc.get("reason")) == ("waitlisted", 3, None)
    assert "cancellation_published_at" not in doc
    # And that request again changes nothing.
    replay = world.uow()
    await world.service.requests.decide(replay, [request(world, "x", at=9)])
    assert replay.emitted == []


async def test_a_request_published_after_a_kept_cancellation_stays_registered(
    world: World,
) -> None:
    open_seminar(world, 5)
    await world.service.cancelling.cancel_requested(world.uow(), cancellation(world, "x", at=1))
    uow = world.uow()
    [outcome] = await world.service.requests.decide(uow, [request(world, "x", at=2)])
    assert (outcome.status, emitted(uow)) == (
        OutcomeStatus.CONFIRMED,
        [("RegistrationConfirmed", "x", 1)],
    )
    # The cancellation is settled (dropped): the request after it registered x.
    assert world.cancellations.docs == {}
    assert world.seminars.books["s"].pending_cancellations == 0

    # The same request again changes nothing; so does one published before the
    # cancellation (from the other partition): in publishing order it registered x,
    # the cancellation cancelled it, and the later request registered x again.
    again = world.uow()
    await world.service.requests.decide(again, [request(world, "x", at=2)])
    assert again.emitted == []
    earlier = world.uow()
    [late] = await world.service.requests.decide(earlier, [request(world, "x", at=0)])
    assert (late.status, late.created, earlier.emitted) == (OutcomeStatus.CONFIRMED, False, [])


async def test_a_cancellation_consumed_after_a_later_request_does_not_cancel_it(
    world: World,
) -> None:
    # Published: cancellation (t=1), request (t=2); consumed the other way round.
    open_seminar(world, 5)
    await world.service.requests.decide(world.uow(), [request(world, "x", at=2)])
    uow = world.uow()
    await world.service.cancelling.cancel_requested(uow, cancellation(world, "x", at=1))
    assert uow.emitted == []
    doc = world.registrations.docs[registration_id("s", "x")]
    assert (doc["status"], doc["version"]) == ("confirmed", 1)
    # Nor does an older one, nor an earlier request consumed after them.
    await world.service.cancelling.cancel_requested(world.uow(), cancellation(world, "x", at=0))
    earlier = world.uow()
    await world.service.requests.decide(earlier, [request(world, "x", at=-1)])
    assert earlier.emitted == []
    assert world.registrations.docs[registration_id("s", "x")]["status"] == "confirmed"


async def test_a_repeat_published_after_the_cancellation_is_noted_and_keeps_it_registered(
    world: World,
) -> None:
    # Published: request (t=1), cancellation (t=2), request again (t=3); the repeat is
    # consumed before the cancellation. In publishing order the repeat registers x again
    # after the cancellation: so the registration stands.
    open_seminar(world, 5)
    await world.service.requests.decide(world.uow(), [request(world, "x", at=1)])
    repeat = world.uow()
    [outcome] = await world.service.requests.decide(repeat, [request(world, "x", at=3)])
    assert (outcome.status, outcome.created, repeat.emitted) == (
        OutcomeStatus.CONFIRMED,
        False,
        [],
    )
    doc = world.registrations.docs[registration_id("s", "x")]
    assert (doc["last_requested_at"], doc["version"]) == (world.now + timedelta(seconds=3), 1)
    uow = world.uow()
    await world.service.cancelling.cancel_requested(uow, cancellation(world, "x", at=2))
    assert uow.emitted == []
    # A cancellation published after every request cancels.
    last = world.uow()
    await world.service.cancelling.cancel_requested(last, cancellation(world, "x", at=3))
    assert emitted(last) == [("RegistrationCancelled", "x", 2)]


async def test_a_later_cancellation_of_a_cancelled_registration_is_noted(world: World) -> None:
    # Published: request (t=1), cancellation (t=2), request (t=3), cancellation (t=4);
    # consumed: both cancellations, then the second request, which was cancelled by the
    # later cancellation in publishing order.
    open_seminar(world, 5)
    await world.service.requests.decide(world.uow(), [request(world, "x", at=1)])
    await world.service.cancelling.cancel_requested(world.uow(), cancellation(world, "x", at=2))
    await world.service.cancelling.cancel_requested(world.uow(), cancellation(world, "x", at=4))
    doc = world.registrations.docs[registration_id("s", "x")]
    assert doc["cancellation_published_at"] == world.now + timedelta(seconds=4)
    uow = world.uow()
    [outcome] = await world.service.requests.decide(uow, [request(world, "x", at=3)])
    assert (outcome.status, outcome.created, uow.emitted) == (OutcomeStatus.CANCELLED, False, [])


async def test_the_later_of_two_kept_cancellations_is_kept_and_expires(world: World) -> None:
    open_seminar(world, 5)
    await world.service.cancelling.cancel_requested(world.uow(), cancellation(world, "x", at=5))
    await world.service.cancelling.cancel_requested(
        world.uow(later=timedelta(hours=1)), cancellation(world, "x", at=3)
    )
    reg_id = registration_id("s", "x")
    assert world.cancellations.docs[reg_id]["event_id"] == "cancel-x-5"
    await world.service.cancelling.cancel_requested(
        world.uow(later=timedelta(hours=2)), cancellation(world, "x", at=7)
    )
    assert world.cancellations.docs[reg_id]["event_id"] == "cancel-x-7"
    assert world.seminars.books["s"].pending_cancellations == 1
    [(job_id, job)] = world.scheduler.jobs.items()
    assert job["due_at"] == world.now + timedelta(days=7, hours=2)  # moved, not doubled

    world.scheduler.jobs.clear()  # the scheduler deletes a job it runs
    expiry = world.uow(later=timedelta(days=7, hours=2))
    await world.service.kept.on_cancellation_expired(
        Job(id=job_id, kind=job["kind"], group="s", due_at=job["due_at"], payload=job["payload"]),
        expiry,
    )
    assert world.cancellations.docs == {}
    assert world.seminars.books["s"].pending_cancellations == 0
    # Its request, when it finally comes, registers the person.
    [outcome] = await world.service.requests.decide(world.uow(), [request(world, "x", at=1)])
    assert outcome.status is OutcomeStatus.CONFIRMED


async def test_a_kept_cancellation_waits_for_an_unknown_seminar(world: World) -> None:
    await world.service.cancelling.cancel_requested(world.uow(), cancellation(world, "x", at=2))
    book = world.seminars.books["s"]
    assert (book.status, book.pending_cancellations) == (SeminarStatus.UNKNOWN, 1)
    # Parked, like every request for an unknown seminar; decided (and cancelled) with
    # the others when the seminar is scheduled.
    await world.service.requests.decide(world.uow(), [request(world, "x", at=1)])
    await world.service.requests.decide(world.uow(), [request(world, "y", at=3)])
    opening = world.uow()
    await world.service.seminar_changes.on_seminar_scheduled(opening, seminar_id="s", capacity=1)
    assert emitted(opening) == [
        ("RegistrationConfirmed", "x", 1),
        ("RegistrationWaitlisted", "y", 1),
        ("RegistrationCancelled", "x", 2),
        ("RegistrationPromoted", "y", 2),
    ]
    book = world.seminars.books["s"]
    assert (book.confirmed, book.waitlisted, book.pending_cancellations) == (1, 0, 0)
    assert world.cancellations.docs == {}


async def test_a_cancellation_withdraws_a_parked_request_and_its_redelivery(
    world: World,
) -> None:
    await world.service.requests.decide(world.uow(), [request(world, "x", at=1)])
    await world.service.cancelling.cancel_requested(world.uow(), cancellation(world, "x", at=2))
    assert world.parked.docs == {}
    assert world.seminars.books["s"].parked == 0
    # The withdrawal is kept: the same request delivered again ends cancelled.
    await world.service.requests.decide(world.uow(), [request(world, "x", at=1)])
    opening = world.uow()
    await world.service.seminar_changes.on_seminar_scheduled(opening, seminar_id="s", capacity=1)
    assert [name for name, _, _ in emitted(opening)] == [
        "RegistrationConfirmed",
        "RegistrationCancelled",
    ]
    assert world.seminars.books["s"].confirmed == 0


async def test_completion_cancellation_and_erasure_drop_kept_cancellations(
    world: World,
) -> None:
    for seminar in ["done", "gone"]:
        open_seminar(world, 5, seminar)
        await world.service.cancelling.cancel_requested(
            world.uow(), cancellation(world, "x", at=1, seminar=seminar)
        )
    await world.service.cancelling.cancel_requested(
        world.uow(), cancellation(world, "z", at=1, seminar="s")
    )
    assert len(world.cancellations.docs) == 3
    await world.service.seminar_changes.on_seminar_completed(world.uow(), seminar_id="done")
    await world.service.seminar_changes.on_seminar_cancelled(world.uow(), seminar_id="gone")
    assert {d["seminar_id"] for d in world.cancellations.docs.values()} == {"s"}
    assert world.seminars.books["done"].pending_cancellations == 0
    assert world.seminars.books["gone"].pending_cancellations == 0
    await world.service.erasure.erase(world.uow(), participant_id="z")
    assert (world.cancellations.docs, world.scheduler.jobs) == ({}, {})
    # Nothing is kept for a seminar that can register nobody any more.
    await world.service.cancelling.cancel_requested(
        world.uow(), cancellation(world, "y", at=1, seminar="done")
    )
    assert world.cancellations.docs == {}


async def test_http_cancellation_of_a_kept_one_is_not_found_and_of_a_decided_one_applies(
    world: World,
) -> None:
    open_seminar(world, 1)
    await world.service.cancelling.cancel_requested(world.uow(), cancellation(world, "x", at=1))
    reg_id = registration_id("s", "x")
    assert await world.service.cancelling.cancel(world.uow(), registration_id=reg_id) is None
    await world.service.requests.decide(world.uow(), [request(world, "x", at=2)])
    outcome = await world.service.cancelling.cancel(world.uow(), registration_id=reg_id)
    assert outcome is not None
    assert outcome.status is OutcomeStatus.CANCELLED
    assert "held_cancellation" not in world.registrations.docs[reg_id]


# ---- property: the order of consumption does not matter ----------------------------------


def _publishing_order_outcome(events: list[tuple[str, int]]) -> str | None:
    """What consuming ``events`` in publishing order gives: the first request registers,
    a cancellation after it cancels, a request after that registers again. At equal
    times the request is first."""
    status: str | None = None
    for kind, _ in sorted(events, key=lambda e: (e[1], e[0] == "cancel")):
        if kind == "request" and status in {None, "cancelled"}:
            status = "confirmed"
        elif kind == "cancel" and status == "confirmed":
            status = "cancelled"
    return status


_events = st.lists(
    st.tuples(st.sampled_from(["request", "cancel"]), st.integers(min_value=0, max_value=6)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(published=_events, data=st.data())
async def test_any_order_of_consumption_gives_the_publishing_order_outcome(
    published: list[tuple[str, int]], data: st.DataObject
) -> None:
    world = make_world()
    open_seminar(world, 10)
    # Consumed in any order, some events twice (at-least-once delivery), requests one
    # by one or several in one batch.
    again = data.draw(st.lists(st.sampled_from(published), max_size=3))
    consumed = data.draw(st.permutations(published + again))
    batch: list[RegistrationRequest] = []
    for kind, at in consumed:
        if kind == "request":
            batch.append(request(world, "x", at=at))
            if data.draw(st.booleans()):
                continue
        if batch:
            await world.service.requests.decide(world.uow(), batch)
            batch = []
        if kind == "cancel":
            await world.service.cancelling.cancel_requested(
                world.uow(), cancellation(world, "x", at=at)
            )
    if batch:
        await world.service.requests.decide(world.uow(), batch)

    doc = world.registrations.docs.get(registration_id("s", "x"))
    assert (doc["status"] if doc else None) == _publishing_order_outcome(published)
    book = world.seminars.books["s"]
    assert book.confirmed == (1 if doc and doc["status"] == "confirmed" else 0)
    assert book.pending_cancellations == len(world.cancellations.docs)
    if doc is not None:
        assert world.cancellations.docs == {}


async def test_a_replayed_request_never_registers_again_even_with_skewed_clocks(
    world: World,
) -> None:
    # HTTP cancellations carry this service's clock, here behind the producer's: by time
    # alone a replayed old request would look newer than them. Its id says otherwise.
    open_seminar(world, 5)
    reg_id = registration_id("s", "x")
    await world.service.requests.decide(world.uow(), [request(world, "x", at=1)])
    await world.service.cancelling.cancel(world.uow(), registration_id=reg_id)
    [anew] = await world.service.requests.decide(world.uow(), [request(world, "x", at=5)])
    assert (anew.status, anew.created) == (OutcomeStatus.CONFIRMED, True)
    await world.service.cancelling.cancel(world.uow(), registration_id=reg_id)
    replay = world.uow()
    [outcome] = await world.service.requests.decide(replay, [request(world, "x", at=1)])
    assert (outcome.status, outcome.created, replay.emitted) == (OutcomeStatus.CANCELLED, False, [])
    assert world.registrations.docs[reg_id]["request_ids"] == ["req-x-1", "req-x-5"]
