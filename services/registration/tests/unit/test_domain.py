"""The registration rules: seat arithmetic, waiting-list order, promotion, capacity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registration import domain
from registration.domain import DecisionKind, Seats, SeminarStatus
from seminarops_shared.events.registration import RegistrationStatus


def open_book(capacity: int, **counters: int) -> Seats:
    return Seats(status=SeminarStatus.OPEN, capacity=capacity, **counters)


def test_requests_are_confirmed_while_seats_remain_then_waitlisted_in_order() -> None:
    book, decisions = domain.decide_requests(open_book(3, confirmed=1), 5)
    assert [d.kind for d in decisions] == [
        DecisionKind.CONFIRMED,
        DecisionKind.CONFIRMED,
        DecisionKind.WAITLISTED,
        DecisionKind.WAITLISTED,
        DecisionKind.WAITLISTED,
    ]
    assert [d.waitlist_seq for d in decisions[2:]] == [1, 2, 3]
    assert [d.position for d in decisions[2:]] == [1, 2, 3]
    assert (book.confirmed, book.waitlisted, book.next_waitlist_seq) == (3, 3, 4)


def test_waitlist_sequence_continues_after_people_left_the_queue() -> None:
    # Seq 1..10 were handed out; 4 are still waiting: the next is seq 11, position 5.
    book = open_book(2, confirmed=2, waitlisted=4, next_waitlist_seq=11)
    after, [decision] = domain.decide_requests(book, 1)
    assert (decision.waitlist_seq, decision.position) == (11, 5)
    assert (after.waitlisted, after.next_waitlist_seq) == (5, 12)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (SeminarStatus.CANCELLED, domain.REASON_SEMINAR_CANCELLED),
        (SeminarStatus.CLOSED, domain.REASON_SEMINAR_CLOSED),
    ],
)
def test_cancelled_or_closed_seminars_reject_with_a_reason(
    status: SeminarStatus, reason: str
) -> None:
    book = Seats(status=status, capacity=10, confirmed=2)
    after, decisions = domain.decide_requests(book, 2)
    assert after == book
    assert {(d.kind, d.reason) for d in decisions} == {(DecisionKind.REJECTED, reason)}


def test_requests_for_an_unknown_seminar_are_not_decided() -> None:
    with pytest.raises(domain.SeminarNotKnown):
        domain.decide_requests(domain.unknown_seminar(), 1)


def test_cancelling_a_confirmed_registration_frees_a_seat_for_the_queue_head() -> None:
    book = open_book(2, confirmed=2, waitlisted=3, next_waitlist_seq=4)
    released = domain.release(book, RegistrationStatus.CONFIRMED)
    assert (released.confirmed, domain.promotable(released)) == (1, 1)
    promoted = domain.promote(released, 1)
    assert (promoted.confirmed, promoted.waitlisted) == (2, 2)
    assert domain.promotable(promoted) == 0


def test_cancelling_a_waitlisted_registration_promotes_nobody() -> None:
    book = open_book(2, confirmed=2, waitlisted=3)
    released = domain.release(book, RegistrationStatus.WAITLISTED)
    assert (released.confirmed, released.waitlisted, domain.promotable(released)) == (2, 2, 0)


def test_cancelling_what_holds_nothing_changes_nothing() -> None:
    book = open_book(2, confirmed=1)
    assert domain.release(book, RegistrationStatus.CANCELLED) == book
    assert domain.release(book, RegistrationStatus.REJECTED) == book


def test_promotion_beyond_the_free_seats_is_refused() -> None:
    book = open_book(2, confirmed=1, waitlisted=5)
    with pytest.raises(ValueError, match="cannot promote"):
        domain.promote(book, 2)


def test_capacity_increase_promotes_as_many_as_fit() -> None:
    book = open_book(2, confirmed=2, waitlisted=5)
    bigger = domain.change_capacity(book, 5)
    assert domain.promotable(bigger) == 3
    assert domain.promotable(domain.change_capacity(book, 20)) == 5


def test_capacity_decrease_never_unconfirms_anyone() -> None:
    book = open_book(5, confirmed=5, waitlisted=1)
    smaller = domain.change_capacity(book, 3)
    assert (smaller.confirmed, smaller.free, domain.promotable(smaller)) == (5, 0, 0)
    # New requests wait until enough confirmed ones have cancelled.
    _, [decision] = domain.decide_requests(smaller, 1)
    assert decision.kind is DecisionKind.WAITLISTED
    once = domain.release(smaller, RegistrationStatus.CONFIRMED)
    twice = domain.release(once, RegistrationStatus.CONFIRMED)
    assert domain.promotable(twice) == 0
    thrice = domain.release(twice, RegistrationStatus.CONFIRMED)
    assert domain.promotable(thrice) == 1


def test_capacity_must_stay_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        domain.change_capacity(open_book(5), 0)


def test_closed_or_cancelled_seminars_promote_nobody() -> None:
    book = open_book(2, confirmed=1, waitlisted=3)
    assert domain.promotable(domain.close_seminar(book)) == 0
    cancelled = domain.cancel_seminar(book)
    assert (cancelled.confirmed, cancelled.waitlisted, domain.promotable(cancelled)) == (0, 0, 0)


def test_parking_keeps_arrival_order_and_starts_one_timer_per_round() -> None:
    book, first, timer = domain.park(domain.unknown_seminar(), 3)
    assert (first, timer, book.parked, book.park_round) == (1, True, 3, 1)
    book, first, timer = domain.park(book, 2)
    assert (first, timer, book.parked, book.park_round) == (4, False, 5, 1)
    opened = domain.open_seminar(book, capacity=10)
    assert (opened.status, opened.capacity, opened.parked) == (SeminarStatus.OPEN, 10, 0)


def test_a_timer_round_ends_and_a_new_one_starts_only_if_requests_remain() -> None:
    book, _, _ = domain.park(domain.unknown_seminar(), 3)
    assert domain.next_park_round(book, 0).park_round == book.park_round
    assert domain.next_park_round(book, 2) == Seats(
        status=SeminarStatus.UNKNOWN, capacity=0, parked=2, next_park_seq=4, park_round=2
    )


def test_only_unknown_seminars_park() -> None:
    with pytest.raises(ValueError, match="unknown"):
        domain.park(open_book(1), 1)


def test_park_timeout() -> None:
    parked_at = datetime(2026, 1, 1, tzinfo=UTC)
    timeout = timedelta(hours=24)
    assert not domain.expired(parked_at, now=parked_at + timeout / 2, timeout=timeout)
    assert domain.expired(parked_at, now=parked_at + timeout, timeout=timeout)


def test_registration_ids_are_deterministic_per_seminar_and_participant() -> None:
    one = domain.registration_id("sem-1", "p-1")
    assert one == domain.registration_id("sem-1", "p-1")
    assert one.startswith("reg-")
    assert len(one) == len("reg-") + 24
    assert one != domain.registration_id("sem-1", "p-2")
    assert one != domain.registration_id("sem-2", "p-1")
    # No ambiguity from concatenation.
    assert domain.registration_id("a", "bc") != domain.registration_id("ab", "c")


@given(
    capacity=st.integers(min_value=1, max_value=50),
    operations=st.lists(
        st.one_of(
            st.tuples(st.just("request"), st.integers(min_value=0, max_value=20)),
            st.tuples(st.just("cancel_confirmed"), st.just(0)),
            st.tuples(st.just("cancel_waitlisted"), st.just(0)),
            st.tuples(st.just("capacity"), st.integers(min_value=1, max_value=60)),
        ),
        max_size=40,
    ),
)
def test_never_more_confirmed_than_capacity_and_seats_never_left_idle(
    capacity: int, operations: list[tuple[str, int]]
) -> None:
    """Property: whatever happens, confirmed only exceeds capacity after a decrease, it
    never grows past capacity, and nobody waits while a seat is free."""
    book = open_book(capacity)
    for kind, amount in operations:
        before = book
        if kind == "request":
            book, _ = domain.decide_requests(book, amount)
        elif kind == "cancel_confirmed" and book.confirmed:
            book = domain.release(book, RegistrationStatus.CONFIRMED)
        elif kind == "cancel_waitlisted" and book.waitlisted:
            book = domain.release(book, RegistrationStatus.WAITLISTED)
        elif kind == "capacity":
            book = domain.change_capacity(book, amount)
        book = domain.promote(book, domain.promotable(book))
        if book.confirmed > before.confirmed:
            assert book.confirmed <= book.capacity
        assert book.confirmed <= max(book.capacity, before.confirmed)
        assert book.waitlisted == 0 or book.confirmed >= book.capacity


def test_a_cancellation_applies_to_requests_published_at_or_before_it() -> None:
    request = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    applies = domain.cancellation_applies
    assert applies(cancelled_at=request + timedelta(seconds=1), requested_at=request)
    assert not applies(cancelled_at=request - timedelta(seconds=1), requested_at=request)
    # Equal times (clocks with a resolution of a second): the cancellation wins.
    assert applies(cancelled_at=request, requested_at=request)
    # Compared at the database's precision: a time read back (milliseconds) and the
    # same time from an envelope (microseconds) are equal.
    precise = request + timedelta(microseconds=1_999)
    assert applies(cancelled_at=domain.instant(precise), requested_at=precise)
    assert domain.instant(precise) == request + timedelta(milliseconds=1)


def test_a_later_request_and_the_later_of_two_cancellations() -> None:
    t = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    assert domain.later_request(t + timedelta(milliseconds=1), than=t)
    assert not domain.later_request(t, than=t)
    assert not domain.later_request(t + timedelta(microseconds=500), than=t)
    # A request registers again only if published after the cancellation.
    assert domain.registers_again(requested_at=t + timedelta(milliseconds=1), cancelled_at=t)
    assert not domain.registers_again(requested_at=t, cancelled_at=t)
    assert domain.supersedes(t, None)
    assert domain.supersedes(t + timedelta(seconds=1), t)
    assert not domain.supersedes(t, t)  # the same one again changes nothing
    assert not domain.supersedes(t, t + timedelta(seconds=1))


def test_kept_cancellations_are_counted_and_dropped_with_the_seminar() -> None:
    book = domain.keep_cancellation(domain.keep_cancellation(domain.unknown_seminar()))
    assert book.pending_cancellations == 2
    opened = domain.open_seminar(book, capacity=3)
    assert opened.pending_cancellations == 2  # they wait for requests decided now
    assert domain.drop_cancellations(opened, 1).pending_cancellations == 1
    assert domain.drop_cancellations(opened, 5).pending_cancellations == 0
    assert domain.close_seminar(opened).pending_cancellations == 0
    assert domain.cancel_seminar(opened).pending_cancellations == 0
