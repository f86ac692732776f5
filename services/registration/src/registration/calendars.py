"""The participant's calendar: which of their seminars it shows, and how. Pure: no
database, broker or clock; ``calendar_ics`` writes it as RFC 5545.

Shown: every seminar the person holds a seat in (``confirmed``) or is offered one
(``offered``), and, marked cancelled, every such seminar that was cancelled since (so a
calendar that subscribed to it learns of the cancellation instead of silently losing
the event). A waitlisted person's seminar is not theirs yet and is not shown; nor is
one they cancelled themselves (a calendar client drops an event that disappears).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .seminar_facts import SeminarFacts

# Registration statuses that hold or are offered a seat. ``offered`` is the seat offer
# of the participant journey; as a plain string, so this works before and after it.
_SEAT_HOLDING = frozenset({"confirmed", "offered"})
REASON_SEMINAR_CANCELLED = "seminar_cancelled"


class EntryStatus(enum.StrEnum):
    """RFC 5545 ``STATUS`` of an event."""

    CONFIRMED = "CONFIRMED"
    TENTATIVE = "TENTATIVE"  # a seat offered, not accepted yet
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class HeldRegistration:
    """A registration as the calendar needs it. ``previous_status``: what it was before
    its seminar was cancelled (``None`` for registrations cancelled before that was
    kept: they are shown, a cancelled entry too many being harmless)."""

    seminar_id: str
    status: str
    reason: str | None = None
    previous_status: str | None = None


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    seminar: SeminarFacts
    status: EntryStatus


def entry_status(registration: HeldRegistration, facts: SeminarFacts) -> EntryStatus | None:
    """How the registration's seminar shows in the calendar, or ``None`` if not at all."""
    if registration.status in _SEAT_HOLDING:
        if facts.cancelled:
            return EntryStatus.CANCELLED
        if registration.status == "offered":
            return EntryStatus.TENTATIVE
        return EntryStatus.CONFIRMED
    seminar_cancelled = registration.reason == REASON_SEMINAR_CANCELLED or facts.cancelled
    held_a_seat = registration.previous_status is None or registration.previous_status in (
        _SEAT_HOLDING
    )
    if registration.status == "cancelled" and seminar_cancelled and held_a_seat:
        return EntryStatus.CANCELLED
    return None


def entries(
    registrations: Iterable[HeldRegistration], facts: Mapping[str, SeminarFacts]
) -> list[CalendarEntry]:
    """The calendar's entries, earliest first. A seminar whose sessions this service
    does not know (known from before its facts were kept) has nothing to show."""
    shown: list[CalendarEntry] = []
    for registration in registrations:
        known = facts.get(registration.seminar_id)
        if known is None or not known.sessions:
            continue
        status = entry_status(registration, known)
        if status is not None:
            shown.append(CalendarEntry(seminar=known, status=status))
    return sorted(shown, key=lambda e: (e.seminar.starts_at, e.seminar.seminar_id))
