"""The participant's calendar as RFC 5545 text (``text/calendar``), written with the
``icalendar`` library: one VEVENT per session, in the seminar's own time zone (with its
VTIMEZONE), UID ``<seminar_id>-<session_index>@seminar-ops``, SEQUENCE = reschedules
(every one) plus one once cancelled, STATUS CONFIRMED / TENTATIVE (a seat
offered) / CANCELLED: UID and SEQUENCE as in the seminar service's own calendar."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar

from .calendars import CalendarEntry
from .seminar_facts import SeminarFacts, session_uid

PRODUCT_ID = "-//seminar-ops//registration//EN"
MEDIA_TYPE = "text/calendar; charset=utf-8"


def _zone(name: str | None) -> tzinfo:
    # A name the seminar service accepted but this machine's zone database lacks is
    # shown in UTC rather than not at all.
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _description(seminar: SeminarFacts, index: int) -> str:
    parts = [seminar.kind, seminar.programme]
    if len(seminar.sessions) > 1:
        parts.append(f"session {index + 1} of {len(seminar.sessions)}")
    return " · ".join(p.replace("_", " ") for p in parts if p)


def render(entries: Sequence[CalendarEntry], *, name: str, now: datetime) -> bytes:
    """The calendar of ``entries``. DTSTAMP is when this service last learned of a
    change of the seminar (``now`` if it cannot say), so the same facts give the same
    text. Each time zone used gets one VTIMEZONE covering the sessions' years."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    years: list[int] = []
    for entry in entries:
        seminar = entry.seminar
        zone = _zone(seminar.timezone)
        for index, session in enumerate(seminar.sessions):
            event = icalendar.Event()
            event.add("uid", session_uid(seminar.seminar_id, index))
            event.add("dtstamp", (seminar.updated_at or now).astimezone(UTC))
            event.add("dtstart", session.starts_at.astimezone(zone))
            event.add("dtend", session.ends_at.astimezone(zone))
            event.add("summary", seminar.title or seminar.seminar_id)
            if description := _description(seminar, index):
                event.add("description", description)
            event.add("sequence", seminar.sequence)
            event.add("status", entry.status.value)
            calendar.add_component(event)
            years += [session.starts_at.year, session.ends_at.year]
    if years:
        # Only the years the sessions need: the default (1970-2038) is ~3 KB per zone,
        # and some readers misread its long RDATE lists.
        calendar.add_missing_timezones(
            first_date=date(min(years) - 1, 1, 1), last_date=date(max(years) + 1, 12, 31)
        )
    text: bytes = calendar.to_ical()
    return text
