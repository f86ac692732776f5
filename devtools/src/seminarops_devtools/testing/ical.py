"""Reading calendars back with vobject, a parser independent of the icalendar library
that writes them."""

from __future__ import annotations

from typing import Any

import vobject
import vobject.icalendar


def read_calendar(text: str | bytes) -> Any:
    """The parsed calendar ``text``, its time zones taken from its own VTIMEZONEs.

    vobject keeps every TZID it has seen in one process-wide map and reuses the first
    definition of a name for every later calendar. Our VTIMEZONEs cover only the years
    their sessions need, so a Europe/Brussels read earlier for other years would put a
    May session in winter time. Forgetting the map first makes each read independent
    of the tests that ran before it."""
    if isinstance(text, bytes):
        text = text.decode()
    registry: dict[str, Any] = vars(vobject.icalendar)["__tzidMap"]
    utc = registry.get("UTC")
    registry.clear()
    if utc is not None:
        registry["UTC"] = utc
    return vobject.readOne(text)
