"""The participant journey's rules (pure): eligibility by country, seat offers and
their bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registration import domain
from registration.domain import DecisionKind, Seats, SeatTerms, SeminarStatus
from seminarops_shared.events.registration import RegistrationStatus
from seminarops_shared.events.vocabulary import Promotion

# eTwinning Plus: the programme's neighbourhood countries (Armenia, Azerbaijan, Georgia,
# Moldova, Ukraine, Tunisia, Jordan, Lebanon). A seminar for them lists them.
ETWINNING_PLUS = frozenset({"AM", "AZ", "GE", "MD", "UA", "TN", "JO", "LB"})
OFFERS = SeatTerms(promotion=Promotion.OFFER, offer_hours=24)


def test_eligibility_follows_the_country_list() -> None:
    plus = SeatTerms(eligible_countries=ETWINNING_PLUS)
    assert plus.admits("UA")
    assert plus.admits("ge")
    assert not plus.admits("FR")
    assert not plus.admits(None)  # no country when the list is set: not eligible
    assert domain.DEFAULT_TERMS.admits(None)
    assert domain.DEFAULT_TERMS.admits("FR")


def test_ineligible_requests_are_rejected_and_take_no_seat() -> None:
    book = Seats(
        status=SeminarStatus.OPEN, capacity=1, terms=SeatTerms(eligible_countries=ETWINNING_PLUS)
    )
    after, decisions = domain.decide_for_countries(book, ["FR", "UA", None, "MD"])
    assert [(d.kind, d.reason, d.position) for d in decisions] == [
        (DecisionKind.REJECTED, domain.REASON_NOT_ELIGIBLE, None),
        (DecisionKind.CONFIRMED, None, None),
        (DecisionKind.REJECTED, domain.REASON_NOT_ELIGIBLE, None),
        (DecisionKind.WAITLISTED, None, 1),
    ]
    assert (after.confirmed, after.waitlisted, after.next_waitlist_seq) == (1, 1, 2)
    # A seminar that is not open gives its own reason first.
    closed = Seats(status=SeminarStatus.CLOSED, capacity=1, terms=book.terms)
    _, [decision] = domain.decide_for_countries(closed, ["FR"])
    assert decision.reason == domain.REASON_SEMINAR_CLOSED


def test_under_offers_a_freed_seat_is_offered_and_stays_taken_until_answered() -> None:
    book = Seats(status=SeminarStatus.OPEN, capacity=2, confirmed=2, waitlisted=2, terms=OFFERS)
    freed = domain.release(book, RegistrationStatus.CONFIRMED)
    offered = domain.promote(freed, domain.promotable(freed))
    assert (offered.confirmed, offered.offered, offered.waitlisted, offered.free) == (1, 1, 1, 0)
    # A new request waits: the offered seat is taken.
    _, [decision] = domain.decide_requests(offered, 1)
    assert decision.kind is DecisionKind.WAITLISTED
    accepted = domain.accept_offer(offered)
    assert (accepted.confirmed, accepted.offered) == (2, 0)
    declined = domain.release(offered, RegistrationStatus.OFFERED)
    assert (declined.offered, domain.promotable(declined)) == (0, 1)
    with pytest.raises(ValueError, match="no offer"):
        domain.accept_offer(accepted)
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert domain.offer_expires_at(offered, now=now) == now + timedelta(hours=24)
    default = Seats(status=SeminarStatus.OPEN, capacity=1, terms=SeatTerms(Promotion.OFFER))
    assert domain.offer_expires_at(default, now=now) == now + timedelta(hours=48)


def test_a_capacity_decrease_sends_offers_that_no_longer_fit_back_to_the_queue() -> None:
    book = Seats(status=SeminarStatus.OPEN, capacity=4, confirmed=2, offered=2, terms=OFFERS)
    smaller = domain.change_capacity(book, 3)
    assert domain.excess_offers(smaller) == 1
    back = domain.withdraw_offers(smaller, 1)
    assert (back.confirmed, back.offered, back.waitlisted, back.taken) == (2, 1, 1, 3)
    # Below the confirmed: every offer goes back, nobody is un-confirmed.
    tiny = domain.change_capacity(book, 1)
    assert domain.excess_offers(tiny) == 2
    assert domain.withdraw_offers(tiny, 2).confirmed == 2


_steps = st.lists(
    st.tuples(
        st.sampled_from(["request", "cancel_confirmed", "cancel_offered", "accept", "capacity"]),
        st.integers(min_value=1, max_value=6),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(steps=_steps, offers=st.booleans())
def test_confirmed_plus_offered_never_grows_beyond_capacity(
    steps: list[tuple[str, int]], offers: bool
) -> None:
    terms = OFFERS if offers else domain.DEFAULT_TERMS
    book = Seats(status=SeminarStatus.OPEN, capacity=3, terms=terms)
    for step, amount in steps:
        before = book.taken
        if step == "request":
            book, _ = domain.decide_requests(book, amount)
        elif step == "cancel_confirmed" and book.confirmed:
            book = domain.release(book, RegistrationStatus.CONFIRMED)
        elif step == "cancel_offered" and book.offered:
            book = domain.release(book, RegistrationStatus.OFFERED)
        elif step == "accept" and book.offered:
            book = domain.accept_offer(book)
        elif step == "capacity":
            book = domain.change_capacity(book, amount)
            book = domain.withdraw_offers(book, domain.excess_offers(book))
        book = domain.promote(book, domain.promotable(book))
        assert book.taken <= max(book.capacity, before)
        assert book.offered <= max(0, book.capacity - book.confirmed)
        assert min(book.confirmed, book.offered, book.waitlisted) >= 0
        assert book.offered == 0 or offers
