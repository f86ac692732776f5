"""What the registration service knows of a seminar beyond its seat book: title, kind,
programme, time zone, sessions and how often it was rescheduled, for the participant's
calendar and the certificates of attendance. Pure: no database, broker or clock.

The facts come from ``seminar.scheduled.v1`` / ``.rescheduled.v1`` / ``.cancelled.v1``.
A seminar known from before these facts were kept has none (its calendar entries are
left out, its certificates carry what the completion event says); every field but the
id may therefore be missing, and every reader copes with that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

# The calendar UID of a seminar's session, the same the seminar service gives it, so a
# person subscribed to both calendars sees one event, not two.
SESSION_UID_DOMAIN = "seminar-ops"


@dataclass(frozen=True, slots=True)
class Session:
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class SeminarFacts:
    """A seminar as this service knows it. ``reschedules``: how many
    ``seminar.rescheduled.v1`` it saw."""

    seminar_id: str
    title: str | None = None
    kind: str | None = None
    programme: str | None = None
    timezone: str | None = None
    sessions: tuple[Session, ...] = ()
    reschedules: int = 0
    cancelled: bool = False
    updated_at: datetime | None = None

    @property
    def sequence(self) -> int:
        """The calendar revision (RFC 5545 SEQUENCE): one per reschedule, one more once
        cancelled; never goes back. The same as the seminar service's own calendar."""
        return self.reschedules + self.cancelled

    @property
    def starts_at(self) -> datetime | None:
        return min((s.starts_at for s in self.sessions), default=None)

    @property
    def ends_at(self) -> datetime | None:
        return max((s.ends_at for s in self.sessions), default=None)


def session_uid(seminar_id: str, index: int) -> str:
    """``<seminar_id>-<session_index>@seminar-ops``: stable across reschedules (the
    seminar service's calendar uses the same scheme)."""
    return f"{seminar_id}-{index}@{SESSION_UID_DOMAIN}"


def scheduled(
    known: SeminarFacts | None,
    *,
    seminar_id: str,
    title: str,
    kind: str,
    programme: str,
    timezone: str,
    sessions: Sequence[Session],
    now: datetime,
) -> SeminarFacts:
    """``seminar.scheduled.v1``. Reschedules counted before (events of a seminar known
    before its facts were kept) and a cancellation stay."""
    base = known or SeminarFacts(seminar_id=seminar_id)
    return replace(
        base,
        title=title,
        kind=kind,
        programme=programme,
        timezone=timezone,
        sessions=tuple(sessions),
        updated_at=now,
    )


def rescheduled(
    known: SeminarFacts | None, *, seminar_id: str, sessions: Sequence[Session], now: datetime
) -> SeminarFacts:
    """``seminar.rescheduled.v1``: the new sessions, and one reschedule more. Every
    reschedule counts, a capacity-only one too (the contract: SEQUENCE grows with each
    reschedule); the seminar service counts the same events, so both calendars give a
    session the same SEQUENCE. Not idempotent by itself: the consumer's processed-event
    marker is."""
    base = known or SeminarFacts(seminar_id=seminar_id)
    return replace(
        base,
        sessions=tuple(sessions) or base.sessions,
        reschedules=base.reschedules + 1,
        updated_at=now,
    )


def cancelled(known: SeminarFacts | None, *, seminar_id: str, now: datetime) -> SeminarFacts:
    """``seminar.cancelled.v1``: terminal. Idempotent."""
    base = known or SeminarFacts(seminar_id=seminar_id)
    return base if base.cancelled else replace(base, cancelled=True, updated_at=now)


def total_hours(sessions: Sequence[Session]) -> float | None:
    """The hours of all sessions together, to a tenth; ``None`` when no session is known
    (hours cannot be computed) or the times make no sense."""
    if not sessions:
        return None
    seconds = sum((s.ends_at - s.starts_at).total_seconds() for s in sessions)
    if seconds <= 0:
        return None
    return round(seconds / 3600, 1)
