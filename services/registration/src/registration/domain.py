"""The registration rules: seats, the waiting list, promotion, parking. Pure: no
database, broker, settings or clock; time and ids come in as arguments.

A seminar's *seat book* (``Seats``) holds its capacity and counters. Every change to it
goes through one function here that returns the new book, and the repository writes
the change with one atomic conditional update pinned to the old values, so two
writers can never both take the last seat.

Invariant everywhere: ``confirmed`` never grows beyond ``capacity`` (it may stay above
it after a capacity decrease: nobody confirmed is ever un-confirmed).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from seminarops_shared.events.registration import RegistrationStatus

REGISTRATION_ID_PREFIX = "reg-"

# Reasons carried by registration.rejected.v1 / registration.cancelled.v1.
REASON_SEMINAR_UNKNOWN = "seminar_unknown"
REASON_SEMINAR_CANCELLED = "seminar_cancelled"
REASON_SEMINAR_CLOSED = "seminar_closed"
REASON_PARTICIPANT = "participant_request"


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


ACTIVE_STATUSES = frozenset({RegistrationStatus.CONFIRMED, RegistrationStatus.WAITLISTED})


def registration_id(seminar_id: str, participant_id: str) -> str:
    """The one id of (seminar, participant): every duplicate, from any source or path,
    resolves to it."""
    digest = hashlib.sha256(f"{seminar_id}\x1f{participant_id}".encode()).hexdigest()
    return f"{REGISTRATION_ID_PREFIX}{digest[:24]}"


@dataclass(frozen=True, slots=True)
class Seats:
    """A seminar's seat book.

    ``next_waitlist_seq`` is the sequence number the next waitlisted request gets
    (arrival order, never reused); ``waitlisted`` is how many are waiting now.
    """

    status: SeminarStatus
    capacity: int
    confirmed: int = 0
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

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.confirmed) if self.status is SeminarStatus.OPEN else 0


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


def release(seats: Seats, previous: RegistrationStatus) -> Seats:
    """A registration in ``previous`` status was cancelled: its seat or its place in
    the queue is freed. Cancelling what holds neither changes nothing."""
    if previous is RegistrationStatus.CONFIRMED:
        return replace(seats, confirmed=max(0, seats.confirmed - 1))
    if previous is RegistrationStatus.WAITLISTED:
        return replace(seats, waitlisted=max(0, seats.waitlisted - 1))
    return seats


def promotable(seats: Seats) -> int:
    """How many waitlisted registrations can be promoted now: as many as fit in the
    free seats of an open seminar, at most as many as wait."""
    return min(seats.free, seats.waitlisted)


def promote(seats: Seats, count: int) -> Seats:
    """``count`` registrations move from the head of the queue to a seat.

    Raises ``ValueError`` if that would overbook or promote more than wait: the
    invariant is checked here, not trusted to the caller.
    """
    if count < 0 or count > promotable(seats):
        raise ValueError(f"cannot promote {count}: {promotable(seats)} promotable")
    return replace(seats, confirmed=seats.confirmed + count, waitlisted=seats.waitlisted - count)


def change_capacity(seats: Seats, new_capacity: int) -> Seats:
    """The seminar's capacity changed. An increase frees seats (the caller promotes
    ``promotable`` of the queue); a decrease never un-confirms anyone: new requests
    wait until enough confirmed ones cancel. Idempotent for the same capacity."""
    if new_capacity < 1:
        raise ValueError("capacity must be positive")
    return replace(seats, capacity=new_capacity)


def open_seminar(seats: Seats | None, capacity: int) -> Seats:
    """``seminar.scheduled.v1``: an unknown (or parked-for) seminar opens with its
    capacity. Counters a placeholder already holds are kept."""
    if seats is None:
        return Seats(status=SeminarStatus.OPEN, capacity=capacity)
    return replace(seats, status=SeminarStatus.OPEN, capacity=capacity, parked=0)


def cancel_seminar(seats: Seats) -> Seats:
    """The seminar was cancelled: every active registration is cancelled with it, and
    kept cancellations are dropped (nothing can be registered any more)."""
    return replace(
        seats,
        status=SeminarStatus.CANCELLED,
        confirmed=0,
        waitlisted=0,
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
# request registers, a cancellation published after it cancels, a request after that is
# a repeat (re-registering after a cancellation is not supported in v1), and a
# cancellation published before any request cancels nothing.


def instant(moment: datetime) -> datetime:
    """``moment`` at the database's precision (milliseconds): times compared here are
    read back from the database as often as from an envelope, and must compare alike."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def cancellation_applies(*, cancelled_at: datetime, requested_at: datetime) -> bool:
    """Whether a cancellation published at ``cancelled_at`` cancels the registration whose
    earliest request was published at ``requested_at``: only if it was published at or
    after that request. An earlier cancellation was published before there was anything
    to cancel, and never cancels a registration requested after it. At equal times the
    cancellation wins: one only refers to a request that exists, and producers' clocks
    often have a resolution of a second."""
    return instant(cancelled_at) >= instant(requested_at)


def earlier_request(requested_at: datetime, than: datetime) -> bool:
    """Whether a request at ``requested_at`` was published before the earliest request
    known so far (``than``): only then does a repeat change what a cancellation finds."""
    return instant(requested_at) < instant(than)


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
