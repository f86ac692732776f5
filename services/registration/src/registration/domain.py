"""The registration rules: seats, the waiting list, promotion, parking. Pure: no
database, broker, settings or clock; time and ids come in as arguments.

A seminar's *seat book* (``Seats``) holds its capacity and counters. Every change to it
goes through one function here that returns the new book, and the repository writes
the change with one atomic conditional update pinned to the old values, so two
writers can never both take the last seat.

Invariant everywhere: ``confirmed + offered`` never grows beyond ``capacity`` (it may
stay above it after a capacity decrease: nobody confirmed is ever un-confirmed, while
offers beyond the new capacity go back to the head of the queue).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from seminarops_shared.events.registration import RegistrationStatus
from seminarops_shared.events.vocabulary import Promotion

REGISTRATION_ID_PREFIX = "reg-"

# Reasons carried by registration.rejected.v1 / registration.cancelled.v1.
REASON_SEMINAR_UNKNOWN = "seminar_unknown"
REASON_SEMINAR_CANCELLED = "seminar_cancelled"
REASON_SEMINAR_CLOSED = "seminar_closed"
REASON_PARTICIPANT = "participant_request"
REASON_NOT_ELIGIBLE = "not_eligible"
REASON_OFFER_DECLINED = "offer_declined"
REASON_OFFER_EXPIRED = "offer_expired"
# Cancellations that came from the participant's side (they asked, or let an offer go):
# a new request of theirs is decided anew. One with the seminar's is final.
PARTICIPANT_REASONS = frozenset({REASON_PARTICIPANT, REASON_OFFER_DECLINED, REASON_OFFER_EXPIRED})
# How long an offer stands when the seminar does not say (``offer_hours``).
DEFAULT_OFFER_HOURS = 48


class SeminarStatus(enum.StrEnum):
    """What this service knows about a seminar.

    ``unknown``: requests arrived before ``seminar.scheduled.v1``; they are parked.
    ``open``: registration is open. ``closed``: the seminar is completed.
    ``cancelled``: the seminar was cancelled.
    """

    UNKNOWN = "unknown"
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class DecisionKind(enum.StrEnum):
    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    REJECTED = "rejected"


ACTIVE_STATUSES = frozenset(
    {RegistrationStatus.CONFIRMED, RegistrationStatus.WAITLISTED, RegistrationStatus.OFFERED}
)


def registration_id(seminar_id: str, participant_id: str) -> str:
    """The one id of (seminar, participant): every duplicate, from any source or path,
    resolves to it."""
    digest = hashlib.sha256(f"{seminar_id}\x1f{participant_id}".encode()).hexdigest()
    return f"{REGISTRATION_ID_PREFIX}{digest[:24]}"


@dataclass(frozen=True, slots=True)
class SeatTerms:
    """How a seminar gives its seats (``seminar.scheduled.v1``): freed seats are
    confirmed to the head of the queue at once (``automatic``) or offered to it for
    ``offer_hours`` (``offer``); ``eligible_countries`` (``None``: everyone) says who
    may register at all."""

    promotion: Promotion = Promotion.AUTOMATIC
    offer_hours: int | None = None
    eligible_countries: frozenset[str] | None = None

    @property
    def offers(self) -> bool:
        return self.promotion is Promotion.OFFER

    @property
    def offer_period(self) -> timedelta:
        return timedelta(hours=self.offer_hours or DEFAULT_OFFER_HOURS)

    def admits(self, country: str | None) -> bool:
        """Whether a participant from ``country`` may register: anyone when no list is
        set; with a list, only a participant whose country is on it (one without a
        country is not)."""
        if self.eligible_countries is None:
            return True
        return country is not None and country.upper() in self.eligible_countries


# The terms of a seminar that sets none: automatic promotion, open to every country.
DEFAULT_TERMS = SeatTerms()


@dataclass(frozen=True, slots=True)
class Seats:
    """A seminar's seat book.

    ``next_waitlist_seq`` is the sequence number the next waitlisted request gets
    (arrival order, never reused); ``waitlisted`` is how many are waiting now;
    ``offered`` how many hold a seat offer (under ``offer`` promotion): an offered seat
    is taken until the offer is declined or expires.
    """

    status: SeminarStatus
    capacity: int
    confirmed: int = 0
    offered: int = 0
    waitlisted: int = 0
    next_waitlist_seq: int = 1
    # Requests parked while the seminar is unknown: an upper bound of how many wait
    # (exact except after an erasure), the next arrival sequence number, and the round
    # of the timeout timer (a new timer id per round).
    parked: int = 0
    next_park_seq: int = 1
    park_round: int = 0
    # Cancellations kept because they arrived before the registration they cancel
    # (see ``cancellation_applies``): an upper bound of how many are kept (exact except
    # after an erasure). Zero spares the lookup when deciding this seminar's requests,
    # and every change to it is a write of the book, so keeping one and deciding the
    # request it cancels can never both commit without seeing each other.
    pending_cancellations: int = 0
    terms: SeatTerms = DEFAULT_TERMS

    @property
    def taken(self) -> int:
        """Seats confirmed or on offer."""
        return self.confirmed + self.offered

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.taken) if self.status is SeminarStatus.OPEN else 0


@dataclass(frozen=True, slots=True)
class Decision:
    """The fate of one new request: confirmed, waitlisted (with its sequence number and
    its position in the queue at that moment), or rejected with a reason."""

    kind: DecisionKind
    waitlist_seq: int | None = None
    position: int | None = None
    reason: str | None = None


class SeminarNotKnown(ValueError):
    """Requests for a seminar in state ``unknown`` are parked, not decided."""


def decide_requests(seats: Seats, count: int) -> tuple[Seats, list[Decision]]:
    """Decide ``count`` new requests in arrival order.

    Open seminar: confirmed while seats remain, then waitlisted with consecutive
    sequence numbers. Cancelled: rejected ``seminar_cancelled``; closed: rejected
    ``seminar_closed``. Never more confirmed than capacity. Not idempotent by itself:
    callers pass only requests not decided before (one registration per seminar and
    participant), and write the returned book with a conditional update.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    if seats.status is SeminarStatus.UNKNOWN:
        raise SeminarNotKnown("requests for an unknown seminar are parked")
    if seats.status is SeminarStatus.CANCELLED:
        return seats, [Decision(DecisionKind.REJECTED, reason=REASON_SEMINAR_CANCELLED)] * count
    if seats.status is SeminarStatus.CLOSED:
        return seats, [Decision(DecisionKind.REJECTED, reason=REASON_SEMINAR_CLOSED)] * count
    confirm = min(seats.free, count)
    decisions = [Decision(DecisionKind.CONFIRMED)] * confirm
    for i in range(count - confirm):
        decisions.append(
            Decision(
                DecisionKind.WAITLISTED,
                waitlist_seq=seats.next_waitlist_seq + i,
                position=seats.waitlisted + i + 1,
            )
        )
    waitlisted = count - confirm
    return (
        replace(
            seats,
            confirmed=seats.confirmed + confirm,
            waitlisted=seats.waitlisted + waitlisted,
            next_waitlist_seq=seats.next_waitlist_seq + waitlisted,
        ),
        decisions,
    )


def decide_for_countries(
    seats: Seats, countries: Sequence[str | None]
) -> tuple[Seats, list[Decision]]:
    """Decide new requests (arrival order) from participants of ``countries``: those the
    seminar's terms do not admit are rejected ``not_eligible`` and take nothing; the
    rest as ``decide_requests``. A seminar that is not open answers as
    ``decide_requests`` (its own reason comes first)."""
    if seats.status is not SeminarStatus.OPEN:
        return decide_requests(seats, len(countries))
    admitted = [seats.terms.admits(country) for country in countries]
    after, decided = decide_requests(seats, sum(admitted))
    ineligible = Decision(DecisionKind.REJECTED, reason=REASON_NOT_ELIGIBLE)
    queue = iter(decided)
    return after, [next(queue) if ok else ineligible for ok in admitted]


def release(seats: Seats, previous: RegistrationStatus) -> Seats:
    """A registration in ``previous`` status was cancelled: its seat or its place in
    the queue is freed. Cancelling what holds neither changes nothing."""
    if previous is RegistrationStatus.CONFIRMED:
        return replace(seats, confirmed=max(0, seats.confirmed - 1))
    if previous is RegistrationStatus.WAITLISTED:
        return replace(seats, waitlisted=max(0, seats.waitlisted - 1))
    if previous is RegistrationStatus.OFFERED:
        return replace(seats, offered=max(0, seats.offered - 1))
    return seats


def promotable(seats: Seats) -> int:
    """How many waitlisted registrations can be promoted now: as many as fit in the
    free seats of an open seminar, at most as many as wait."""
    return min(seats.free, seats.waitlisted)


def promote(seats: Seats, count: int) -> Seats:
    """``count`` registrations move from the head of the queue to a seat: confirmed, or
    offered it under ``offer`` promotion (``seats.terms.offers``).

    Raises ``ValueError`` if that would overbook or promote more than wait: the
    invariant is checked here, not trusted to the caller.
    """
    if count < 0 or count > promotable(seats):
        raise ValueError(f"cannot promote {count}: {promotable(seats)} promotable")
    if seats.terms.offers:
        return replace(seats, offered=seats.offered + count, waitlisted=seats.waitlisted - count)
    return replace(seats, confirmed=seats.confirmed + count, waitlisted=seats.waitlisted - count)


def accept_offer(seats: Seats) -> Seats:
    """An offered seat is accepted: it stays taken, now confirmed. Raises
    ``ValueError`` when no offer is outstanding (the caller checked the registration)."""
    if seats.offered < 1:
        raise ValueError("no offer outstanding")
    return replace(seats, offered=seats.offered - 1, confirmed=seats.confirmed + 1)


def excess_offers(seats: Seats) -> int:
    """How many outstanding offers no longer fit after a capacity decrease: they go
    back to the head of the queue (newest offers first), so that confirmed plus offered
    stays within capacity wherever confirmed alone does."""
    return max(0, min(seats.offered, seats.taken - seats.capacity))


def withdraw_offers(seats: Seats, count: int) -> Seats:
    """``count`` offers go back to the queue (they keep their place at its head)."""
    if count < 0 or count > seats.offered:
        raise ValueError(f"cannot withdraw {count} of {seats.offered} offers")
    return replace(seats, offered=seats.offered - count, waitlisted=seats.waitlisted + count)


def offer_expires_at(seats: Seats, *, now: datetime) -> datetime:
    """When an offer made ``now`` lapses."""
    return now + seats.terms.offer_period


def change_capacity(seats: Seats, new_capacity: int) -> Seats:
    """The seminar's capacity changed. An increase frees seats (the caller promotes
    ``promotable`` of the queue); a decrease never un-confirms anyone: new requests
    wait until enough confirmed ones cancel. Idempotent for the same capacity."""
    if new_capacity < 1:
        raise ValueError("capacity must be positive")
    return replace(seats, capacity=new_capacity)


def open_seminar(seats: Seats | None, capacity: int, terms: SeatTerms = DEFAULT_TERMS) -> Seats:
    """``seminar.scheduled.v1``: an unknown (or parked-for) seminar opens with its
    capacity and terms. Counters a placeholder already holds are kept."""
    if seats is None:
        return Seats(status=SeminarStatus.OPEN, capacity=capacity, terms=terms)
    return replace(seats, status=SeminarStatus.OPEN, capacity=capacity, parked=0, terms=terms)


def cancel_seminar(seats: Seats) -> Seats:
    """The seminar was cancelled: every active registration is cancelled with it, and
    kept cancellations are dropped (nothing can be registered any more)."""
    return replace(
        seats,
        status=SeminarStatus.CANCELLED,
        confirmed=0,
        waitlisted=0,
        offered=0,
        parked=0,
        pending_cancellations=0,
    )


def close_seminar(seats: Seats) -> Seats:
    """The seminar is completed: registration closes; registrations stay as they are;
    kept cancellations are dropped (new requests are rejected)."""
    return replace(seats, status=SeminarStatus.CLOSED, parked=0, pending_cancellations=0)


def unknown_seminar() -> Seats:
    """The placeholder book of a seminar that requests arrived for before it was known."""
    return Seats(status=SeminarStatus.UNKNOWN, capacity=0)


def park(seats: Seats, count: int) -> tuple[Seats, int, bool]:
    """Park ``count`` requests for a seminar that is not known yet, in arrival order.

    Returns the new book, the first of the ``count`` consecutive sequence numbers, and
    whether a new timeout timer must be started (nothing was parked before). Only for an
    unknown seminar; idempotency is the caller's (one parked request per registration id).
    """
    if seats.status is not SeminarStatus.UNKNOWN:
        raise ValueError("only requests for an unknown seminar are parked")
    start_timer = seats.parked == 0
    return (
        replace(
            seats,
            parked=seats.parked + count,
            next_park_seq=seats.next_park_seq + count,
            park_round=seats.park_round + (1 if start_timer and count else 0),
        ),
        seats.next_park_seq,
        start_timer and count > 0,
    )


def unpark(seats: Seats, count: int) -> Seats:
    """``count`` parked requests were decided, rejected or withdrawn."""
    return replace(seats, parked=max(0, seats.parked - count))


def next_park_round(seats: Seats, remaining: int) -> Seats:
    """A timeout timer ran: ``remaining`` requests are still parked (recounted), and a
    new round starts if any are."""
    return replace(seats, parked=remaining, park_round=seats.park_round + (1 if remaining else 0))


def expired(parked_at: datetime, *, now: datetime, timeout: timedelta) -> bool:
    """A parked request whose seminar stayed unknown for ``timeout`` is rejected."""
    return parked_at + timeout <= now


# ---- the order of a request and a cancellation ----------------------------------------
#
# A request and the cancellation of the same (seminar, participant) can be consumed in
# either order when they came on different partitions (producers with different
# partitioners). Their order is then the order of the CloudEvents ``time`` each carries
# (the producer's clock), and the outcome is the one publishing order gives: the first
# request registers, a cancellation published after it cancels, a request after that
# registers again (decided anew: confirmed, or waitlisted at the end of the queue), and
# a cancellation published before any request cancels nothing. So the registration is
# active exactly when its latest request was published after its latest cancellation,
# whatever order the two were consumed in.


def instant(moment: datetime) -> datetime:
    """``moment`` at the database's precision (milliseconds): times compared here are
    read back from the database as often as from an envelope, and must compare alike."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def cancellation_applies(*, cancelled_at: datetime, requested_at: datetime) -> bool:
    """Whether a cancellation published at ``cancelled_at`` cancels the registration whose
    latest request was published at ``requested_at``: only if it was published at or
    after that request. A cancellation published before the latest request was followed
    by that request, which registered the person again. At equal times the cancellation
    wins: one only refers to a request that exists, and producers' clocks often have a
    resolution of a second."""
    return instant(cancelled_at) >= instant(requested_at)


def registers_again(*, requested_at: datetime, cancelled_at: datetime) -> bool:
    """Whether a new request published at ``requested_at`` registers a person again whose
    registration a cancellation published at ``cancelled_at`` ended: only if it was
    published after it (an older request was cancelled by it)."""
    return not cancellation_applies(cancelled_at=cancelled_at, requested_at=requested_at)


def later_request(requested_at: datetime, than: datetime) -> bool:
    """Whether a request at ``requested_at`` was published after the latest request
    known so far (``than``): only then does a repeat change what a cancellation finds."""
    return instant(requested_at) > instant(than)


def supersedes(cancelled_at: datetime, kept: datetime | None) -> bool:
    """Of two cancellations of the same registration, the later one is kept: it cancels
    everything the earlier one would (``cancellation_applies``), and more."""
    return kept is None or instant(cancelled_at) > instant(kept)


def keep_cancellation(seats: Seats) -> Seats:
    """A cancellation was kept for a registration that does not exist yet (the book of
    a seminar not known yet starts as ``unknown_seminar()``)."""
    return replace(seats, pending_cancellations=seats.pending_cancellations + 1)


def drop_cancellations(seats: Seats, count: int) -> Seats:
    """``count`` kept cancellations were applied, set aside or expired."""
    return replace(seats, pending_cancellations=max(0, seats.pending_cancellations - count))
