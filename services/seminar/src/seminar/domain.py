"""The seminar rules: what a valid seminar is, how it moves through its lifecycle, who
counts as an attendee, and when reminders are due.

Pure: no database, broker, settings or clock. Time (``now``) and ids come in as
arguments; every function here gives the same answer for the same input.

Time zones: every instant is stored and compared in UTC. A naive datetime given by an
operator (typical of spreadsheets) is read as wall-clock time in the seminar's own IANA
time zone; a wall-clock time that does not exist there (skipped by a DST change) or
exists twice (repeated by one) is refused with a message asking for a UTC offset, rather
than guessed.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import itertools
import json
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from seminarops_shared.errors import Conflict, FieldProblem, Invalid
from seminarops_shared.events.vocabulary import Kind, Programme, Promotion

MAX_SESSIONS = 100
MAX_CAPACITY = 20_000
# seminar.completed.v1 carries every attendee id in one record (< 1 MiB): 20,000 ids of
# up to ~40 characters stay well below it. Attendance beyond this is refused.
MAX_ATTENDEES = 20_000
MAX_SESSION_LENGTH = timedelta(days=366)
MAX_TITLE_LENGTH = 300
MAX_THEME_LENGTH = 300
MAX_REASON_LENGTH = 500
ATTENDANCE_EVENT_CHUNK = 1000
# A moderator opens the online room up to this long before the first session starts;
# a seminar "going live" earlier than that cannot be the seminar running.
GO_LIVE_LEAD = timedelta(minutes=60)

# How long a freed seat stays offered when a seminar promotes by offer and names no
# ``offer_hours``: two days reach a teacher who checks mail on alternate days.
DEFAULT_OFFER_HOURS = 48
MAX_OFFER_HOURS = 168

_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Z]{2})?$")


class InvalidSeminar(Invalid):
    """Input that can never make a valid seminar (nothing stored). About the seminar
    as a whole: the message says which field."""

    def __init__(self, message: str) -> None:
        super().__init__(message, fields=[FieldProblem((), message)])


class IllegalTransition(Conflict):
    """The seminar's state does not allow this (nothing changed)."""


class NotYet(IllegalTransition):
    """The step cannot have happened yet: the sessions it needs lie ahead of ``now``
    (nothing changed). Past seminars are unaffected: their sessions have started."""


class AttendanceLimitExceeded(IllegalTransition):
    """Recording these attendees would pass ``MAX_ATTENDEES``."""


class SeminarStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({SeminarStatus.COMPLETED, SeminarStatus.CANCELLED})


class RosterStatus(enum.StrEnum):
    """A registrant's status as the registration service last reported it."""

    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"


# ---- time zones and sessions -------------------------------------------------------------


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Brussels``); ``InvalidSeminar`` if the IANA
    database does not list it (no file paths, no made-up abbreviations)."""
    if name not in _known_zones():
        raise InvalidSeminar(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Brussels'"
        )
    return zoneinfo.ZoneInfo(name)


def to_utc(value: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """``value`` as a UTC instant, to the second. An aware value keeps its instant; a
    naive one is wall-clock time in ``zone`` and must name exactly one instant there."""
    value = value.replace(microsecond=0)
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value.astimezone(UTC)
    earlier = value.replace(tzinfo=zone, fold=0)
    instant = earlier.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != value:
        raise InvalidSeminar(
            f"{value.isoformat()} does not exist in {zone.key} (the clocks go forward then)"
        )
    if earlier.utcoffset() != value.replace(tzinfo=zone, fold=1).utcoffset():
        raise InvalidSeminar(
            f"{value.isoformat()} happens twice in {zone.key} (the clocks go back then): "
            "give it with a UTC offset"
        )
    return instant


@dataclass(frozen=True, slots=True)
class Session:
    """One live session, in UTC. ``ends_at`` is after ``starts_at``."""

    starts_at: datetime
    ends_at: datetime


def sessions_from(
    raw: Sequence[tuple[datetime, datetime]], *, kind: Kind, zone: zoneinfo.ZoneInfo
) -> tuple[Session, ...]:
    """Validate and normalise sessions: in UTC, each ending after it starts, sorted and
    not overlapping; an online seminar has exactly one."""
    if not raw:
        raise InvalidSeminar("a seminar needs at least one session (starts_at and ends_at)")
    if len(raw) > MAX_SESSIONS:
        raise InvalidSeminar(f"at most {MAX_SESSIONS} sessions")
    if kind is Kind.ONLINE_SEMINAR and len(raw) != 1:
        raise InvalidSeminar("an online seminar has exactly one session")
    sessions = []
    for index, (start, end) in enumerate(raw):
        starts_at, ends_at = to_utc(start, zone), to_utc(end, zone)
        where = "" if len(raw) == 1 else f"session {index + 1}: "
        if ends_at <= starts_at:
            raise InvalidSeminar(f"{where}ends_at must be after starts_at")
        if ends_at - starts_at > MAX_SESSION_LENGTH:
            raise InvalidSeminar(f"{where}a session lasts at most {MAX_SESSION_LENGTH.days} days")
        sessions.append(Session(starts_at=starts_at, ends_at=ends_at))
    sessions.sort(key=lambda s: s.starts_at)
    for before, after in itertools.pairwise(sessions):
        if after.starts_at < before.ends_at:
            raise InvalidSeminar("sessions must not overlap")
    return tuple(sessions)


def year_of(sessions: Sequence[Session], zone: zoneinfo.ZoneInfo) -> int:
    """The seminar's year: when its first session starts, in its own time zone."""
    return sessions[0].starts_at.astimezone(zone).year


# ---- what a seminar is -------------------------------------------------------------------


def language_code(value: str) -> str:
    """An ISO 639 language code, optionally with a region (``en``, ``pt-BR``), normalised."""
    parts = value.strip().replace("_", "-").split("-")
    normalised = "-".join([parts[0].lower(), *(p.upper() for p in parts[1:])])
    if not _LANGUAGE.match(normalised):
        raise InvalidSeminar(f"language {value!r} is not an ISO 639 code such as 'en' or 'pt-BR'")
    return normalised


def _text(value: str | None, *, field: str, limit: int, required: bool) -> str | None:
    cleaned = (value or "").strip()
    if not cleaned:
        if required:
            raise InvalidSeminar(f"{field} must not be empty")
        return None
    if len(cleaned) > limit:
        raise InvalidSeminar(f"{field} is longer than {limit} characters")
    return cleaned


def _capacity(value: int) -> int:
    if not 0 < value <= MAX_CAPACITY:
        raise InvalidSeminar(f"capacity must be between 1 and {MAX_CAPACITY}")
    return value


def offer_hours_for(promotion: Promotion, offer_hours: int | None) -> int | None:
    """How long an offered seat stands: ``offer_hours`` (1-168) for ``offer``, else
    ``DEFAULT_OFFER_HOURS``; ``None`` for ``automatic``, which offers nothing, so an
    ``offer_hours`` with it is refused rather than silently dropped."""
    if promotion is Promotion.AUTOMATIC:
        if offer_hours is not None:
            raise InvalidSeminar("offer_hours applies only with promotion 'offer'")
        return None
    hours = DEFAULT_OFFER_HOURS if offer_hours is None else offer_hours
    if not 1 <= hours <= MAX_OFFER_HOURS:
        raise InvalidSeminar(f"offer_hours must be between 1 and {MAX_OFFER_HOURS}")
    return hours


def country_list(codes: Iterable[str] | None) -> tuple[str, ...] | None:
    """Eligible countries upper-cased, each once, in the order first given; ``None``
    (everyone may register) when not given. An empty list would let nobody register:
    refused. (That each is an ISO 3166-1 code is checked where the input is read.)"""
    if codes is None:
        return None
    unique = tuple(dict.fromkeys(code.strip().upper() for code in codes))
    if not unique:
        raise InvalidSeminar("eligible_countries must name at least one country (or be left out)")
    return unique


@dataclass(frozen=True, slots=True)
class SeminarDefinition:
    """What an operator says a seminar is; validated by ``define_seminar``."""

    title: str
    kind: Kind
    programme: Programme
    theme: str | None
    language: str
    timezone: str
    sessions: tuple[Session, ...]
    capacity: int
    moderator: str | None
    host_school_id: str | None
    open_to_other_schools: bool
    promotion: Promotion = Promotion.AUTOMATIC
    offer_hours: int | None = None
    eligible_countries: tuple[str, ...] | None = None

    def fingerprint(self) -> str:
        """A digest of the definition: the same seminar imported twice has the same one."""
        canonical: dict[str, object] = {
            "title": self.title,
            "kind": self.kind.value,
            "programme": self.programme.value,
            "theme": self.theme,
            "language": self.language,
            "timezone": self.timezone,
            "sessions": [[s.starts_at.isoformat(), s.ends_at.isoformat()] for s in self.sessions],
            "capacity": self.capacity,
            "moderator": self.moderator,
            "host_school_id": self.host_school_id,
            "open_to_other_schools": self.open_to_other_schools,
        }
        # Only when set: seminars defined before these fields existed keep their digest
        # (and their derived ids), so re-importing an old file is still "unchanged".
        if self.promotion is not Promotion.AUTOMATIC:
            canonical["promotion"] = self.promotion.value
            canonical["offer_hours"] = self.offer_hours
        if self.eligible_countries is not None:
            canonical["eligible_countries"] = list(self.eligible_countries)
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def define_seminar(
    *,
    title: str,
    kind: Kind,
    programme: Programme,
    theme: str | None,
    language: str,
    timezone: str,
    sessions: Sequence[tuple[datetime, datetime]],
    capacity: int,
    moderator: str | None = None,
    host_school_id: str | None = None,
    open_to_other_schools: bool = True,
    promotion: Promotion = Promotion.AUTOMATIC,
    offer_hours: int | None = None,
    eligible_countries: Iterable[str] | None = None,
) -> SeminarDefinition:
    """Validate a seminar as an operator describes it. Raises ``InvalidSeminar`` with the
    first problem found; a returned definition is always valid."""
    zone = time_zone(timezone)
    return SeminarDefinition(
        title=_text(title, field="title", limit=MAX_TITLE_LENGTH, required=True) or "",
        kind=kind,
        programme=programme,
        theme=_text(theme, field="theme", limit=MAX_THEME_LENGTH, required=False),
        language=language_code(language),
        timezone=zone.key,
        sessions=sessions_from(sessions, kind=kind, zone=zone),
        capacity=_capacity(capacity),
        moderator=moderator,
        host_school_id=host_school_id,
        open_to_other_schools=open_to_other_schools,
        promotion=promotion,
        offer_hours=offer_hours_for(promotion, offer_hours),
        eligible_countries=country_list(eligible_countries),
    )


@dataclass(frozen=True, slots=True)
class Seminar:
    """A seminar and where it is in its lifecycle.

    ``fingerprint`` is that of the definition it was created with (re-importing the
    same row later is recognised even after a reschedule); ``version`` grows by one with
    every change.
    """

    id: str
    title: str
    kind: Kind
    programme: Programme
    theme: str | None
    language: str
    timezone: str
    sessions: tuple[Session, ...]
    capacity: int
    moderator: str | None
    host_school_id: str | None
    open_to_other_schools: bool
    status: SeminarStatus
    fingerprint: str
    version: int
    created_at: datetime
    updated_at: datetime
    went_live_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    completed_at: datetime | None = None
    attendee_count: int = 0
    promotion: Promotion = Promotion.AUTOMATIC
    offer_hours: int | None = None
    eligible_countries: tuple[str, ...] | None = None
    # How often it was rescheduled (times or capacity): calendars number their
    # revisions with it (CONTRACT.md: SEQUENCE grows with each reschedule).
    reschedules: int = 0

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def year(self) -> int:
        return year_of(self.sessions, self.zone)

    @property
    def starts_at(self) -> datetime:
        return self.sessions[0].starts_at

    @property
    def ends_at(self) -> datetime:
        return self.sessions[-1].ends_at

    def local(self, moment: datetime) -> str:
        """``moment`` as the seminar's own wall-clock time, with its UTC offset."""
        return moment.astimezone(self.zone).isoformat()


def _stamp(now: datetime) -> datetime:
    """A moment as it is recorded: to the millisecond (what the database keeps)."""
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def schedule(*, seminar_id: str, definition: SeminarDefinition, now: datetime) -> Seminar:
    """A new seminar in status ``scheduled``. Past dates are allowed (earlier seasons)."""
    now = _stamp(now)
    return Seminar(
        id=seminar_id,
        title=definition.title,
        kind=definition.kind,
        programme=definition.programme,
        theme=definition.theme,
        language=definition.language,
        timezone=definition.timezone,
        sessions=definition.sessions,
        capacity=definition.capacity,
        moderator=definition.moderator,
        host_school_id=definition.host_school_id,
        open_to_other_schools=definition.open_to_other_schools,
        promotion=definition.promotion,
        offer_hours=definition.offer_hours,
        eligible_countries=definition.eligible_countries,
        status=SeminarStatus.SCHEDULED,
        fingerprint=definition.fingerprint(),
        version=1,
        created_at=now,
        updated_at=now,
    )


def _refuse_if_terminal(seminar: Seminar, action: str) -> None:
    if seminar.status in TERMINAL:
        raise IllegalTransition(f"cannot {action} a {seminar.status.value} seminar")


def reschedule(
    seminar: Seminar,
    *,
    sessions: Sequence[tuple[datetime, datetime]] | None,
    capacity: int | None,
    now: datetime,
) -> Seminar | None:
    """New times and/or capacity for a scheduled or live seminar. Naive times are read
    in the seminar's time zone. Returns ``None`` when nothing changes (idempotent:
    the same reschedule twice changes once)."""
    now = _stamp(now)
    _refuse_if_terminal(seminar, "reschedule")
    if sessions is None and capacity is None:
        raise InvalidSeminar("give new sessions (or starts_at/ends_at) and/or a new capacity")
    new_sessions = (
        seminar.sessions
        if sessions is None
        else sessions_from(sessions, kind=seminar.kind, zone=seminar.zone)
    )
    new_capacity = seminar.capacity if capacity is None else _capacity(capacity)
    if new_sessions == seminar.sessions and new_capacity == seminar.capacity:
        return None
    return replace(
        seminar,
        sessions=new_sessions,
        capacity=new_capacity,
        version=seminar.version + 1,
        reschedules=seminar.reschedules + 1,
        updated_at=now,
    )


def go_live(seminar: Seminar, *, now: datetime) -> Seminar | None:
    """``scheduled`` -> ``live``, at the earliest ``GO_LIVE_LEAD`` before the first
    session starts (else ``NotYet``). ``None`` if it is live already (idempotent)."""
    now = _stamp(now)
    if seminar.status is SeminarStatus.LIVE:
        return None
    _refuse_if_terminal(seminar, "start")
    opens_at = seminar.starts_at - GO_LIVE_LEAD
    if now < opens_at:
        raise NotYet(
            f"cannot start before {seminar.local(opens_at)}: the first session starts at "
            f"{seminar.local(seminar.starts_at)} and a seminar goes live at most "
            f"{GO_LIVE_LEAD // timedelta(minutes=1)} minutes early"
        )
    return replace(
        seminar,
        status=SeminarStatus.LIVE,
        went_live_at=now,
        version=seminar.version + 1,
        updated_at=now,
    )


def cancel(seminar: Seminar, *, reason: str | None, now: datetime) -> Seminar | None:
    """``scheduled``/``live`` -> ``cancelled`` (terminal). ``None`` if it is cancelled
    already (idempotent); a completed seminar cannot be cancelled."""
    now = _stamp(now)
    if seminar.status is SeminarStatus.CANCELLED:
        return None
    _refuse_if_terminal(seminar, "cancel")
    return replace(
        seminar,
        status=SeminarStatus.CANCELLED,
        cancelled_at=now,
        cancel_reason=_text(reason, field="reason", limit=MAX_REASON_LENGTH, required=False),
        version=seminar.version + 1,
        updated_at=now,
    )


def complete(seminar: Seminar, *, now: datetime) -> Seminar | None:
    """``live`` or ``scheduled`` -> ``completed`` (terminal), once its last session has
    started (else ``NotYet``): a seminar cannot be over, and count as a participation
    of its year, before it took place. Straight from ``scheduled`` is allowed (imported
    past seasons never went live here). ``None`` if it is completed already
    (idempotent)."""
    now = _stamp(now)
    if seminar.status is SeminarStatus.COMPLETED:
        return None
    _refuse_if_terminal(seminar, "complete")
    last_start = seminar.sessions[-1].starts_at
    if now < last_start:
        raise NotYet(
            f"cannot complete the seminar before its last session starts at "
            f"{seminar.local(last_start)}"
        )
    return replace(
        seminar,
        status=SeminarStatus.COMPLETED,
        completed_at=now,
        version=seminar.version + 1,
        updated_at=now,
    )


# ---- attendance --------------------------------------------------------------------------


def check_attendance_open(seminar: Seminar, *, now: datetime) -> None:
    """Attendance is recorded once the first session has started (else ``NotYet``),
    live or not (an imported past seminar never went live here); never for a cancelled
    seminar, and no longer once it is completed (its completion already told everyone
    who attended)."""
    if seminar.status is SeminarStatus.CANCELLED:
        raise IllegalTransition("cannot record attendance for a cancelled seminar")
    if seminar.status is SeminarStatus.COMPLETED:
        raise IllegalTransition("attendance is closed: the seminar is completed")
    if now < seminar.starts_at:
        raise NotYet(
            "cannot record attendance before the seminar starts: its first session "
            f"starts at {seminar.local(seminar.starts_at)}"
        )


def unique_in_order(ids: Iterable[str]) -> list[str]:
    """Each id once, in the order first given."""
    return list(dict.fromkeys(ids))


@dataclass(frozen=True, slots=True)
class AttendanceDecision:
    """``recorded``: newly recorded now; ``already_recorded``: recorded before (counted
    once); ``rejected``: not confirmed registrants, with the reason, never stored."""

    recorded: list[str]
    already_recorded: list[str]
    rejected: dict[str, str]


def decide_attendance(
    *,
    requested: Sequence[str],
    roster: Mapping[str, RosterStatus],
    already_recorded: Set[str],
    attendee_count: int,
) -> AttendanceDecision:
    """Who of ``requested`` becomes an attendee: confirmed registrants not recorded yet.

    Invariants: only a confirmed registrant is ever recorded; nobody twice (duplicates in
    ``requested`` and earlier records count once); the total stays within
    ``MAX_ATTENDEES`` (else ``AttendanceLimitExceeded``, nothing recorded).
    """
    recorded: list[str] = []
    again: list[str] = []
    rejected: dict[str, str] = {}
    for participant_id in unique_in_order(requested):
        if participant_id in already_recorded:
            again.append(participant_id)
            continue
        status = roster.get(participant_id)
        if status is RosterStatus.CONFIRMED:
            recorded.append(participant_id)
        else:
            rejected[participant_id] = "not_registered" if status is None else status.value
    if attendee_count + len(recorded) > MAX_ATTENDEES:
        raise AttendanceLimitExceeded(
            f"a seminar has at most {MAX_ATTENDEES} attendees; this would make "
            f"{attendee_count + len(recorded)}"
        )
    return AttendanceDecision(recorded=recorded, already_recorded=again, rejected=rejected)


def chunked(ids: Sequence[str], size: int = ATTENDANCE_EVENT_CHUNK) -> list[list[str]]:
    """``ids`` in consecutive pieces of at most ``size``."""
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


# ---- rosters and erasure -----------------------------------------------------------------


def supersedes(incoming_version: int, current_version: int | None) -> bool:
    """A registration change applies only if it is newer than what the roster holds:
    records may arrive out of order or twice, the outcome is the same."""
    return current_version is None or incoming_version > current_version


# ---- reminders ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reminder:
    job_id: str
    session_index: int
    session_starts_at: datetime
    offset_minutes: int
    due_at: datetime


def reminder_job_id(*, seminar_id: str, session_index: int, offset_minutes: int) -> str:
    """The stable id of one reminder: planning it again moves it, never doubles it."""
    return f"reminder:{seminar_id}:{session_index}:{offset_minutes}"


def reminders_for(
    seminar: Seminar,
    *,
    offsets_minutes: Sequence[int],
    now: datetime,
    sent: Set[tuple[int, datetime]] = frozenset(),
) -> list[Reminder]:
    """The reminders still to send, for sessions that have not started: one per offset
    whose time is still ahead, due ``offset`` before the session starts.

    A session scheduled (or moved) inside its reminder lead time, so that every offset's
    time has passed, gets ONE reminder due at once (``offset_minutes`` = the whole
    minutes actually left, at least 1), unless one was already sent for it at this start
    time (``sent``: (session index, start) pairs). A session with an offset still ahead
    gets that one, not a late extra. None for a session that has started (an imported
    past season sends nothing), nor for a cancelled or completed seminar."""
    if seminar.status in TERMINAL or not offsets_minutes:
        return []
    offsets = sorted(set(offsets_minutes), reverse=True)
    reminders = []
    for index, session in enumerate(seminar.sessions):
        if session.starts_at <= now:
            continue
        on_time = [
            _reminder(seminar.id, index, session, job_offset=offset, offset=offset, due_at=due_at)
            for offset in offsets
            if (due_at := session.starts_at - timedelta(minutes=offset)) > now
        ]
        if on_time:
            reminders.extend(on_time)
        elif (index, session.starts_at) not in sent:
            # Under the stable id of the shortest offset: planning it again moves it.
            minutes_left = max(1, (session.starts_at - now) // timedelta(minutes=1))
            reminders.append(
                _reminder(
                    seminar.id,
                    index,
                    session,
                    job_offset=offsets[-1],
                    offset=minutes_left,
                    due_at=now,
                )
            )
    return reminders


def _reminder(
    seminar_id: str, index: int, session: Session, *, job_offset: int, offset: int, due_at: datetime
) -> Reminder:
    return Reminder(
        job_id=reminder_job_id(
            seminar_id=seminar_id, session_index=index, offset_minutes=job_offset
        ),
        session_index=index,
        session_starts_at=session.starts_at,
        offset_minutes=offset,
        due_at=due_at,
    )


def reminder_still_due(
    seminar: Seminar, *, session_index: int, session_starts_at: datetime, now: datetime
) -> bool:
    """A reminder fires only for a seminar still going ahead, for a session that still
    starts when the reminder was planned for, and before that session starts (a service
    that was down past the start does not send a stale reminder)."""
    if seminar.status in TERMINAL or session_index >= len(seminar.sessions):
        return False
    starts_at = seminar.sessions[session_index].starts_at
    return starts_at == session_starts_at and now < starts_at
