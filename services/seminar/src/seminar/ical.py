"""A seminar as an RFC 5545 calendar: one VEVENT per session.

Pure: the same seminar gives the same bytes (no clock, no random ids), so a calendar
client polling the feed sees a change only when the seminar changed.

- ``UID`` is ``<seminar_id>-<session_index>@seminar-ops``: unchanged by reschedules, so a
  client moves the event instead of adding a second one. The registration service's
  participant calendars use the same scheme, so both feeds name the same events.
- ``SEQUENCE`` is the number of reschedules, plus one once the seminar is cancelled: it
  grows with every revision (RFC 5545 3.8.7.4), a capacity-only reschedule included
  (the contract: it grows with each reschedule; a client applies it harmlessly).
- ``DTSTART``/``DTEND`` are wall-clock times in the seminar's own time zone (``TZID``),
  with a ``VTIMEZONE`` covering the sessions' dates.
- ``DTSTAMP`` and ``LAST-MODIFIED`` are when the seminar last changed.
"""

from __future__ import annotations

from datetime import timedelta

from icalendar import Calendar, Event
from icalendar.enums import STATUS

from .domain import Seminar, SeminarStatus

PRODID = "-//seminar-ops//seminar service//EN"
UID_DOMAIN = "seminar-ops"


def session_uid(seminar_id: str, session_index: int) -> str:
    """The stable iCalendar UID of one session of a seminar."""
    return f"{seminar_id}-{session_index}@{UID_DOMAIN}"


def calendar_sequence(seminar: Seminar) -> int:
    """The revision a calendar client compares: grows with each reschedule and with
    the cancellation, never goes back."""
    return seminar.reschedules + (seminar.status is SeminarStatus.CANCELLED)


def seminar_calendar(seminar: Seminar) -> bytes:
    """The seminar's sessions as an iCalendar document (CRLF lines, folded at 75
    octets, UTF-8). A cancelled seminar keeps its events with ``STATUS:CANCELLED``, so
    clients that already hold them strike them out rather than keep them."""
    zone = seminar.zone
    status = STATUS.CANCELLED if seminar.status is SeminarStatus.CANCELLED else STATUS.CONFIRMED
    sequence = calendar_sequence(seminar)
    events = [
        Event.new(
            uid=session_uid(seminar.id, index),
            summary=seminar.title,
            start=session.starts_at.astimezone(zone),
            end=session.ends_at.astimezone(zone),
            sequence=sequence,
            status=status,
            stamp=seminar.updated_at,
            last_modified=seminar.updated_at,
            description=(
                None
                if len(seminar.sessions) == 1
                else f"Session {index + 1} of {len(seminar.sessions)}"
            ),
        )
        for index, session in enumerate(seminar.sessions)
    ]
    calendar = Calendar.new(
        prodid=PRODID,
        uid=f"{seminar.id}@{UID_DOMAIN}",
        name=seminar.title,
        subcomponents=events,
    )
    calendar.add_missing_timezones(
        first_date=seminar.starts_at.astimezone(zone).date(),
        last_date=seminar.ends_at.astimezone(zone).date() + timedelta(days=1),
    )
    document: bytes = calendar.to_ical()
    return document
